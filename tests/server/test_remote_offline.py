"""The remote store when the server is away: spooled, replayed once, in order, never lost."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

import prefect_mlops as mlops
from prefect_mlops import TrackingClient
from prefect_mlops.core.errors import InvalidInput
from prefect_mlops.core.ids import new_id
from prefect_mlops.core.settings import get_settings
from prefect_mlops.tracking.entities import Metric
from prefect_mlops.tracking.store import RestTrackingStore, SqlTrackingStore
from tests.conftest import (
    POSTGRES_URL,
    _free_port,
    _reset_mlops,
    _truncate_postgres,
    start_tracking_server,
    stop_tracking_server,
)


@pytest.fixture
def server_home(tmp_path: Path) -> Path:
    home = tmp_path / "server-home"
    home.mkdir()
    return home


def remote_client(url: str, monkeypatch: pytest.MonkeyPatch, **env: str) -> TrackingClient:
    monkeypatch.setenv("PREFECT_MLOPS_TRACKING_URI", url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _reset_mlops()
    return TrackingClient()


def reader(url: str) -> RestTrackingStore:
    return RestTrackingStore(url, get_settings().model_copy(update={"offline": False}))


def test_server_stopped_mid_loop_every_point_arrives_once_in_order(
    mlops_home: Path, server_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc, url = start_tracking_server(server_home)
    client = remote_client(url, monkeypatch)
    run_id = client.create_run(client.get_or_create_experiment("outage").experiment_id).info.run_id
    slowest = 0.0
    for step in range(3000):
        if step == 1000:
            client.flush()
            stop_tracking_server(proc)
        if step == 2000:
            time.sleep(0.5)  # background flushes meet the stopped server and spool
        started = time.perf_counter()
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
        if step >= 1000:
            slowest = max(slowest, time.perf_counter() - started)
        if step % 100 == 0:
            time.sleep(0.02)
    assert slowest < 0.05  # logging never waits on the network
    time.sleep(0.5)
    assert client.store.spool.pending()  # type: ignore[attr-defined]

    proc, url = start_tracking_server(server_home)  # back, on another port
    try:
        client = remote_client(url, monkeypatch)
        history = client.get_metric_history(run_id, "loss")
        assert list(history.steps) == list(range(3000))
        assert history.values[2999] == 1.0 / 3000
        assert not client.store.spool.pending()  # type: ignore[attr-defined]
    finally:
        stop_tracking_server(proc)


def test_replay_after_a_lost_acknowledgement_stores_nothing_twice(tracking_server: str) -> None:
    api = f"{tracking_server}/api/mlops/v1"
    exp = httpx.post(
        f"{api}/experiments", json={"name": "acks"}, headers={"Idempotency-Key": new_id()}
    ).json()["result"]
    run_key, run_id = new_id(), new_id()
    body = {"experiment_id": exp, "run_name": "r", "run_id": run_id}
    first = httpx.post(f"{api}/runs", json=body, headers={"Idempotency-Key": run_key})
    again = httpx.post(f"{api}/runs", json=body, headers={"Idempotency-Key": run_key})
    assert (first.json()["applied"], again.json()["applied"]) == (True, False)
    assert again.json()["result"]["info"]["run_id"] == run_id
    rows = [[run_id, "m", float(i), 1, i] for i in range(100)]
    key = new_id()
    answers = [
        httpx.post(f"{api}/metrics", json={"rows": rows}, headers={"Idempotency-Key": key}).json()
        for _ in range(2)
    ]
    assert [a["applied"] for a in answers] == [True, False]
    history = httpx.get(f"{api}/runs/{run_id}/metrics/history", params={"key": "m"}).json()
    assert history["steps"] == list(range(100))
    summaries = httpx.get(f"{api}/runs/{run_id}/metrics/summaries").json()
    assert summaries[0]["count"] == 100


def test_server_killed_mid_batch_shows_nothing_half_written_and_replay_completes_it(
    mlops_home: Path, server_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc, url = start_tracking_server(server_home)
    client = remote_client(url, monkeypatch)
    run_id = client.create_run(client.get_or_create_experiment("killed").experiment_id).info.run_id
    points = 200_000
    batch = [Metric("m", float(i), 1, i) for i in range(points)]
    sender = threading.Thread(target=client.log_batch, args=(run_id,), kwargs={"metrics": batch})
    sender.start()
    time.sleep(0.8)
    proc.kill()  # SIGKILL, mid-request
    proc.wait()
    proc.log.close()
    sender.join(60)
    database = SqlTrackingStore(f"sqlite:///{server_home / 'mlops.db'}")
    stored = len(database.get_metric_history(run_id, "m"))
    assert stored in (0, points)  # the batch is there whole, or not at all
    database.engine.dispose()

    proc, url = start_tracking_server(server_home)
    try:
        client = remote_client(url, monkeypatch)
        history = client.get_metric_history(run_id, "m")
        assert list(history.steps) == list(range(points))
        assert client.get_metric_summaries(run_id)[0].count == points
    finally:
        stop_tracking_server(proc)


OFFLINE_SCRIPT = textwrap.dedent(
    """
    import prefect_mlops as mlops

    mlops.set_experiment("made-offline")
    with mlops.start_run(run_name="on-the-train") as run:
        mlops.log_param("lr", 0.1)
        mlops.set_tag("where", "train")
        for step in range(250):
            mlops.log_metric("loss", 1.0 / (step + 1), step=step)
        mlops.log_text("written offline", "notes.txt")
    print("RUN", run.info.run_id)
    """
)


def test_offline_with_no_server_then_sync_keeps_run_ids(
    mlops_home: Path, server_home: Path, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PREFECT_MLOPS_HOME": str(mlops_home),
        "PREFECT_MLOPS_TRACKING_URI": f"http://127.0.0.1:{_free_port()}",
        "PREFECT_MLOPS_OFFLINE": "true",
    }
    (tmp_path / "offline.py").write_text(OFFLINE_SCRIPT)
    done = subprocess.run(
        [sys.executable, "offline.py"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = done.stdout.split("RUN")[-1].strip()
    assert (mlops_home / "spool" / "journal.jsonl").stat().st_size > 0
    assert not (mlops_home / "mlops.db").exists()

    sync = [sys.executable, "-m", "prefect_mlops.cli.main", "sync"]
    refused = subprocess.run(sync, env=env, capture_output=True, text=True)
    assert refused.returncode == 1 and "unreachable" in refused.stdout + refused.stderr

    proc, url = start_tracking_server(server_home)
    try:
        env["PREFECT_MLOPS_TRACKING_URI"] = url
        sent = subprocess.run(sync, env=env, capture_output=True, text=True)
        assert sent.returncode == 0, sent.stderr
        assert "1 runs" in sent.stdout and "(250 points)" in sent.stdout
        assert "1 experiments, 1 artifacts" in sent.stdout
        store = reader(url)
        run = store.get_run(run_id)
        assert run.info.status.value == "FINISHED"
        assert store.get_experiment(run.info.experiment_id).name == "made-offline"
        assert run.data.params == {"lr": "0.1"} and run.data.tags["where"] == "train"
        assert list(store.get_metric_history(run_id, "loss").steps) == list(range(250))
        files = store.list_artifact_files(run_id)
        assert [f.path for f in files] == ["notes.txt"]
        with store.artifact_location(run.info).open_read("notes.txt") as fh:
            assert fh.read() == b"written offline"
        again = subprocess.run(sync, env=env, capture_output=True, text=True)
        assert "Nothing to send" in again.stdout
    finally:
        stop_tracking_server(proc)


def test_offline_experiment_joins_the_servers_experiment_of_that_name(
    mlops_home: Path, tracking_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    online = remote_client(tracking_server, monkeypatch)
    existing = online.create_experiment("shared")
    offline = remote_client(tracking_server, monkeypatch, PREFECT_MLOPS_OFFLINE="true")
    local = offline.get_or_create_experiment("shared")
    assert local.experiment_id != existing  # it could not ask the server
    run_id = offline.create_run(local.experiment_id).info.run_id
    report = reader(tracking_server).sync()
    assert (report.experiments, report.runs, report.rejected) == (1, 1, [])
    assert reader(tracking_server).get_run_info(run_id).experiment_id == existing


def test_spool_full_is_a_clear_error_and_loses_nothing_accepted(
    mlops_home: Path, tracking_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = remote_client(
        f"http://127.0.0.1:{_free_port()}",
        monkeypatch,
        PREFECT_MLOPS_OFFLINE="true",
        PREFECT_MLOPS_SPOOL_MAX_MB="0.02",
    )
    run_id = client.create_run(client.get_or_create_experiment("full").experiment_id).info.run_id
    accepted = 0
    with pytest.raises(InvalidInput) as refused:
        for _ in range(1000):
            client.log_batch(
                run_id, metrics=[Metric("m", 1.0, 1, accepted * 10 + i) for i in range(10)]
            )
            accepted += 1
    message = str(refused.value)
    assert "0.02 MB" in message and "prefect-mlops sync" in message
    assert accepted > 0
    report = reader(tracking_server).sync()
    assert (report.batches, report.points, report.rejected) == (accepted, accepted * 10, [])
    steps = reader(tracking_server).get_metric_history(run_id, "m").steps
    assert list(steps) == list(range(accepted * 10))


WRITER = textwrap.dedent(
    """
    import sys
    from prefect_mlops import TrackingClient

    client = TrackingClient()
    exp = client.get_or_create_experiment("concurrent").experiment_id
    run_id = client.create_run(exp).info.run_id
    for step in range(int(sys.argv[1])):
        client.log_metric(run_id, "m", float(step), step=step)
        if step % 500 == 0:
            client.flush()
    client.set_terminated(run_id)
    print("RUN", run_id)
    """
)


@pytest.mark.parametrize(
    ("backend", "writers"),
    [("sqlite", 4), ("postgresql", 16)],
)
def test_concurrent_writer_processes_store_every_point_once(
    backend: str, writers: int, mlops_home: Path, server_home: Path, tmp_path: Path
) -> None:
    env = {}
    if backend == "postgresql":
        if not POSTGRES_URL:
            pytest.skip("PREFECT_MLOPS_TEST_POSTGRES_URL is not set")
        _truncate_postgres(POSTGRES_URL)
        env["PREFECT_MLOPS_DATABASE_URL"] = POSTGRES_URL
    proc, url = start_tracking_server(server_home, env)
    try:
        (tmp_path / "writer.py").write_text(WRITER)
        client_env = {**os.environ, "PREFECT_MLOPS_TRACKING_URI": url}
        client_env["PREFECT_MLOPS_HOME"] = str(mlops_home)
        client_env.pop("PREFECT_MLOPS_DATABASE_URL", None)
        procs = [
            subprocess.Popen(
                [sys.executable, "writer.py", "3000"],
                cwd=tmp_path,
                env=client_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(writers)
        ]
        outputs = [p.communicate(timeout=240) for p in procs]
        assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outputs]
        run_ids = {out.split("RUN")[-1].strip() for out, _ in outputs}
        assert len(run_ids) == writers
        store = reader(url)
        for run_id in run_ids:
            assert list(store.get_metric_history(run_id, "m").steps) == list(range(3000))
            assert store.get_metric_summaries(run_id)[0].count == 3000
        exps = [e for e in store.search_experiments() if e.name == "concurrent"]
        assert len(exps) == 1
    finally:
        stop_tracking_server(proc)


def test_reads_while_offline_say_what_to_do(
    mlops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = remote_client(f"http://127.0.0.1:{_free_port()}", monkeypatch)
    run = client.create_run(client.get_or_create_experiment("away").experiment_id)
    assert client.get_run_info(run.info.run_id) == run.info  # known here
    with pytest.raises(mlops.MlopsError, match="prefect-mlops sync"):
        client.search_runs()
