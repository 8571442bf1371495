"""The same behaviour through both stores: embedded (SQLite) and remote (a real tracking
server, reached through PREFECT_MLOPS_TRACKING_URI)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import prefect_mlops as mlops
from prefect_mlops import TrackingClient
from prefect_mlops.core.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from prefect_mlops.core.ids import new_id
from prefect_mlops.tracking.entities import Metric, Param, RunTag, ViewType
from prefect_mlops.tracking.store import RestTrackingStore, SqlTrackingStore
from tests.conftest import _reset_mlops, start_tracking_server, stop_tracking_server


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("server") / "home"
    home.mkdir()
    proc, url = start_tracking_server(home)
    yield url
    stop_tracking_server(proc)


@pytest.fixture(params=["embedded", "remote"])
def tc(
    request: pytest.FixtureRequest, mlops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> TrackingClient:
    """A TrackingClient over the embedded store or over the tracking server."""
    if request.param == "remote":
        monkeypatch.setenv("PREFECT_MLOPS_TRACKING_URI", request.getfixturevalue("server_url"))
    else:
        monkeypatch.delenv("PREFECT_MLOPS_TRACKING_URI", raising=False)
    _reset_mlops()
    client = TrackingClient()
    expected = RestTrackingStore if request.param == "remote" else SqlTrackingStore
    assert isinstance(client.store, expected)
    return client


def fresh(prefix: str) -> str:
    return f"{prefix}-{new_id()[-8:]}"


def test_experiments(tc: TrackingClient) -> None:
    name = fresh("exp")
    exp_id = tc.create_experiment(name, tags={"team": "cv"})
    got = tc.get_experiment(exp_id)
    assert (got.name, got.tags, got.lifecycle_stage) == (name, {"team": "cv"}, "active")
    assert tc.get_experiment_by_name(name) == got
    assert tc.get_experiment_by_name(fresh("missing")) is None
    with pytest.raises(AlreadyExists, match=name):
        tc.create_experiment(name)
    with pytest.raises(NotFound):
        tc.get_experiment("0" * 32)
    found = tc.search_experiments(filter_string=f"name = '{name}' AND tags.team = 'cv'")
    assert [e.experiment_id for e in found] == [exp_id]


def test_runs_params_tags(tc: TrackingClient) -> None:
    exp = tc.get_or_create_experiment(fresh("runs")).experiment_id
    run = tc.create_run(exp, run_name="first", tags={"stage": "dev"}, params={"lr": 0.1})
    run_id = run.info.run_id
    tc.log_param(run_id, "depth", 3)
    tc.log_param(run_id, "depth", 3)  # the same value again is fine
    with pytest.raises(Conflict, match="depth"):
        tc.log_param(run_id, "depth", 4)
    tc.set_tag(run_id, "note", "hello")
    tc.delete_tag(run_id, "stage")
    with pytest.raises(NotFound):
        tc.delete_tag(run_id, "stage")
    got = tc.get_run(run_id)
    assert got.info.run_name == "first"
    assert got.data.params == {"lr": "0.1", "depth": "3"}
    assert got.data.tags["note"] == "hello" and "stage" not in got.data.tags
    tc.update_run(run_id, run_name="renamed")
    tc.set_terminated(run_id, "FINISHED")
    info = tc.get_run_info(run_id)
    assert (info.run_name, info.status.value) == ("renamed", "FINISHED")
    assert info.end_time is not None
    with pytest.raises(InvalidInput, match="FINISHED"):
        tc.log_param(run_id, "late", 1)
    with pytest.raises(NotFound):
        tc.get_run("f" * 32)


def test_metrics_and_history_keep_nan_and_infinities(tc: TrackingClient) -> None:
    exp = tc.get_or_create_experiment(fresh("metrics")).experiment_id
    run_id = tc.create_run(exp).info.run_id
    values = [0.5, float("nan"), float("inf"), float("-inf"), 1e-300, 2.0]
    for step, value in enumerate(values):
        tc.log_metric(run_id, "loss", value, timestamp=1000 + step, step=step)
    history = tc.get_metric_history(run_id, "loss")
    assert list(history.steps) == list(range(len(values)))
    assert list(history.timestamps) == [1000 + s for s in range(len(values))]
    got = list(history.values)
    assert math.isnan(got[1])
    assert got[:1] + got[2:] == values[:1] + values[2:]
    (summary,) = tc.get_metric_summaries(run_id)
    assert (summary.last, summary.count, summary.step) == (2.0, 6, 5)
    assert tc.get_run(run_id).data.metrics == {"loss": 2.0}
    histories = tc.get_metric_histories(run_id, ["loss"])
    assert [m.step for m in histories["loss"]] == list(range(6))
    tc.log_histogram(run_id, "weights", [1, 2, 2, 3], bins=3)
    assert tc.list_histogram_keys(run_id) == ["weights"]
    assert tc.get_histograms(run_id, "weights")[0].counts == [1, 2, 1]


def test_batch(tc: TrackingClient) -> None:
    exp = tc.get_or_create_experiment(fresh("batch")).experiment_id
    run_id = tc.create_run(exp).info.run_id
    tc.log_batch(
        run_id,
        metrics=[Metric("acc", 0.1 * i, 5000 + i, i) for i in range(50)],
        params=[Param("opt", "adam")],
        tags=[RunTag("kind", "sweep")],
    )
    run = tc.get_run(run_id)
    assert run.data.params == {"opt": "adam"} and run.data.tags["kind"] == "sweep"
    assert len(tc.get_metric_history(run_id, "acc")) == 50
    with pytest.raises(InvalidInput, match="twice"):
        tc.log_batch(run_id, params=[Param("a", "1"), Param("a", "2")])


def _seed(tc: TrackingClient) -> tuple[str, dict[str, str]]:
    exp = tc.get_or_create_experiment(fresh("search")).experiment_id
    ids = {}
    for i, (model, acc) in enumerate([("cnn", 0.7), ("cnn", 0.9), ("mlp", 0.8), ("rf", 0.6)]):
        run = tc.create_run(exp, run_name=f"{model}-{i}", params={"model": model})
        tc.log_batch(run.info.run_id, metrics=[Metric("acc", acc, 1, 0)])
        ids[f"{model}-{i}"] = run.info.run_id
    return exp, ids


def test_search_count_aggregate(tc: TrackingClient) -> None:
    exp, ids = _seed(tc)
    found = tc.search_runs(
        [exp],
        "(params.model = 'cnn' AND metrics.acc > 0.8) OR params.model = 'rf'",
        order_by=["metrics.acc DESC"],
    )
    assert [r.info.run_name for r in found] == ["cnn-1", "rf-3"]
    assert (
        tc.search_runs(
            [exp], "NOT params.model = 'cnn'", order_by=["attributes.run_name"]
        ).__len__()
        == 2
    )
    first = tc.search_runs([exp], order_by=["metrics.acc ASC"], max_results=3)
    rest = tc.search_runs(
        [exp], order_by=["metrics.acc ASC"], max_results=3, page_token=first.token
    )
    assert [r.info.run_name for r in first] == ["rf-3", "cnn-0", "mlp-2"]
    assert [r.info.run_name for r in rest] == ["cnn-1"] and rest.token is None
    assert [r.info.run_id for r in tc.search_runs([exp], query="mlp")] == [ids["mlp-2"]]
    with pytest.raises(InvalidInput):
        tc.search_runs([exp], "metrics.acc >")
    assert tc.count_runs([exp], "metrics.acc >= 0.7") == 3
    rows = tc.aggregate_runs(
        experiment_ids=[exp], group_by=["params.model"], metrics={"acc": ["mean", "count"]}
    )
    by_model = {r["params.model"]: r for r in rows}
    assert by_model["cnn"]["runs"] == 2
    assert by_model["cnn"]["acc.mean"] == pytest.approx(0.8)


def test_saved_searches_and_compare(tc: TrackingClient) -> None:
    exp, ids = _seed(tc)
    name = fresh("best")
    saved = tc.save_search(name, "metrics.acc > 0.75", ["metrics.acc DESC"], [exp])
    assert saved.filter_string == "metrics.acc > 0.75"
    with pytest.raises(AlreadyExists):
        tc.save_search(name, "metrics.acc > 0")
    assert [r.info.run_name for r in tc.search_runs(saved=name)] == ["cnn-1", "mlp-2"]
    assert name in [s.name for s in tc.list_saved_searches()]
    tc.delete_saved_search(name)
    with pytest.raises(NotFound):
        tc.get_saved_search(name)
    comparison = tc.compare_runs([ids["cnn-0"], ids["mlp-2"]])
    assert comparison.params["model"] == ["cnn", "mlp"]


def test_artifacts_up_and_down(tc: TrackingClient, tmp_path: Path) -> None:
    exp = tc.get_or_create_experiment(fresh("art")).experiment_id
    run_id = tc.create_run(exp).info.run_id
    data = os.urandom(3 * 1024 * 1024 + 17)  # several chunks
    src = tmp_path / "model.bin"
    src.write_bytes(data)
    info = tc.log_artifact(run_id, src, "models")
    tc.log_text(run_id, "hello", "notes/readme.txt")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.txt").write_text("a")
    tc.log_artifacts(run_id, tree, "tree")
    assert info.path == "models/model.bin" and info.file_size == len(data)
    assert [f.path for f in tc.list_artifacts(run_id)] == ["models", "notes", "tree"]
    out = tc.download_artifacts(run_id, "models/model.bin", tmp_path / "out")
    assert out.read_bytes() == data
    with tc.open_artifact(run_id, "notes/readme.txt") as fh:
        assert fh.read() == b"hello"
    assert (tc.download_artifacts(run_id, "tree", tmp_path / "t2") / "sub" / "a.txt").exists()
    with pytest.raises(InvalidInput, match=r"\.\."):
        tc.log_text(run_id, "x", "../escape.txt")
    with pytest.raises(NotFound):
        tc.open_artifact(run_id, "missing.txt")


def test_delete_and_restore(tc: TrackingClient) -> None:
    exp = tc.get_or_create_experiment(fresh("life")).experiment_id
    run_id = tc.create_run(exp).info.run_id
    tc.delete_run(run_id)
    assert tc.search_runs([exp]) == []
    assert [r.info.run_id for r in tc.search_runs([exp], run_view_type=ViewType.DELETED_ONLY)] == [
        run_id
    ]
    with pytest.raises(InvalidInput, match="deleted"):
        tc.log_param(run_id, "x", 1)
    tc.restore_run(run_id)
    assert [r.info.run_id for r in tc.search_runs([exp])] == [run_id]


def test_native_api_documents_itself_and_refuses_unkeyed_writes(server_url: str) -> None:
    doc = httpx.get(f"{server_url}/api/mlops/v1/openapi.json").json()
    assert "/api/mlops/v1/metrics" in doc["paths"]
    assert "/api/mlops/v1/runs/search" in doc["paths"]
    refused = httpx.post(f"{server_url}/api/mlops/v1/metrics", json={"rows": []})
    assert refused.status_code == 400


def test_fluent_api_logs_remotely(
    server_url: str, mlops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_MLOPS_TRACKING_URI", server_url)
    _reset_mlops()
    mlops.set_experiment(fresh("fluent"))
    with mlops.start_run(run_name="fluent-run") as run:
        mlops.log_param("lr", 0.01)
        for step in range(20):
            mlops.log_metric("loss", 1.0 / (step + 1), step=step)
        mlops.log_text("done", "result.txt")
    monkeypatch.delenv("PREFECT_MLOPS_TRACKING_URI")
    _reset_mlops()
    # Read back with a fresh client straight over HTTP: the server holds it all.
    store = RestTrackingStore(server_url, mlops.get_settings())
    got = store.get_run(run.info.run_id)
    assert got.info.status.value == "FINISHED" and got.data.params == {"lr": "0.01"}
    assert len(store.get_metric_history(run.info.run_id, "loss")) == 20
    assert [f.path for f in store.list_artifact_files(run.info.run_id)] == ["result.txt"]


FLOW = textwrap.dedent(
    """
    from prefect import flow

    @flow(name="remote-tracked")
    def train(lr: float = 0.1) -> float:
        return lr * 2

    if __name__ == "__main__":
        state = train(return_state=True)
        print("FLOW_RUN", state.state_details.flow_run_id)
    """
)


@pytest.mark.usefixtures("prefect_server")
def test_zero_code_tracked_flow_logs_remotely(
    server_url: str, mlops_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    env = {
        **os.environ,
        "PREFECT_PLUGINS_ENABLED": "true",
        "PREFECT_MLOPS_AUTO_TRACK": "true",
        "PREFECT_MLOPS_HOME": str(tmp_path / "flow-home"),
        "PREFECT_MLOPS_TRACKING_URI": server_url,
        "PREFECT_MLOPS_TELEMETRY": "false",
        "PREFECT_MLOPS_CAPTURE_PACKAGES": "false",
    }
    done = subprocess.run(
        [sys.executable, "flow.py"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    flow_run_id = done.stdout.split("FLOW_RUN")[-1].strip()
    store = RestTrackingStore(server_url, mlops.get_settings())
    run_id = store.run_id_for_flow_run(flow_run_id)
    assert run_id is not None
    run = store.get_run(run_id)
    assert run.info.status.value == "FINISHED"
    assert run.data.params["lr"] == "0.1"
    assert not (tmp_path / "flow-home" / "mlops.db").exists()  # nothing logged locally
