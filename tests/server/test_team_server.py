"""The team setup: artifacts on S3 through the server, several server processes, one
PostgreSQL database behind two servers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import (
    POSTGRES_URL,
    _free_port,
    _truncate_postgres,
    start_tracking_server,
    stop_tracking_server,
)


def test_stock_client_artifacts_land_in_s3_through_the_proxy(
    s3_server: str, tmp_path: Path
) -> None:
    import boto3
    from mlflow import MlflowClient

    home = tmp_path / "home"
    home.mkdir()
    proc, url = start_tracking_server(home, {"PREFECT_MLOPS_ARTIFACT_STORAGE": "s3://mlops/team"})
    try:
        client = MlflowClient(tracking_uri=url)
        run_id = client.create_run(client.create_experiment("s3-team")).info.run_id
        data = os.urandom(3 * 1024 * 1024 + 5)
        (tmp_path / "weights.bin").write_bytes(data)
        client.log_artifact(run_id, str(tmp_path / "weights.bin"), "model")
        assert [f.path for f in client.list_artifacts(run_id, "model")] == ["model/weights.bin"]
        down = client.download_artifacts(run_id, "model/weights.bin", str(tmp_path / "down"))
        assert Path(down).read_bytes() == data
        keys = [
            o["Key"]
            for o in boto3.client("s3").list_objects_v2(Bucket="mlops", Prefix="team/")["Contents"]
        ]
        (key,) = [k for k in keys if k.endswith(f"{run_id}/artifacts/model/weights.bin")]
        assert boto3.client("s3").get_object(Bucket="mlops", Key=key)["Body"].read() == data
    finally:
        stop_tracking_server(proc)


def test_workers_serve_from_several_processes(tmp_path: Path) -> None:
    import psutil
    from mlflow import MlflowClient

    home = tmp_path / "home"
    home.mkdir()
    proc, url = start_tracking_server(home, args=("--workers", "2"))
    try:
        assert len(psutil.Process(proc.pid).children(recursive=True)) >= 2
        client = MlflowClient(tracking_uri=url)
        experiment = client.create_experiment("workers")
        ids = {client.create_run(experiment).info.run_id for _ in range(6)}
        found = {r.info.run_id for r in client.search_runs([experiment])}
        assert found == ids
    finally:
        stop_tracking_server(proc)


@pytest.mark.postgres
def test_two_servers_on_one_postgres_serve_the_same_data(tmp_path: Path) -> None:
    if not POSTGRES_URL:
        pytest.skip("PREFECT_MLOPS_TEST_POSTGRES_URL is not set")
    from mlflow import MlflowClient

    _truncate_postgres(POSTGRES_URL)
    env = {
        "PREFECT_MLOPS_DATABASE_URL": POSTGRES_URL,
        "PREFECT_MLOPS_ARTIFACT_STORAGE": str(tmp_path / "shared-artifacts"),
    }
    servers = []
    for name in ("a", "b"):
        home = tmp_path / name
        home.mkdir()
        servers.append(start_tracking_server(home, env))
    (_, url_a), (_, url_b) = servers
    try:
        a, b = MlflowClient(tracking_uri=url_a), MlflowClient(tracking_uri=url_b)
        experiment = a.create_experiment("shared")
        run_id = a.create_run(experiment).info.run_id
        for step in range(5):
            a.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
        b.set_tag(run_id, "seen_by", "b")
        assert [m.value for m in b.get_metric_history(run_id, "loss")] == [
            1.0,
            0.5,
            1 / 3,
            0.25,
            0.2,
        ]
        assert a.get_run(run_id).data.tags["seen_by"] == "b"
        assert b.get_experiment_by_name("shared").experiment_id == experiment
    finally:
        for proc, _ in servers:
            stop_tracking_server(proc)


def test_server_info_describes_the_local_store_or_the_server(
    tracking_server: str, mlops_home: Path
) -> None:
    import json
    import subprocess
    import sys

    from mlflow import MlflowClient

    remote = MlflowClient(tracking_uri=tracking_server)
    experiment = remote.create_experiment("counted")
    for _ in range(3):
        remote.create_run(experiment)

    def info(**env: str) -> dict[str, object]:
        done = subprocess.run(
            [sys.executable, "-m", "prefect_mlops.cli.main", "server", "info", "--json"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    local = info()
    assert local["runs"] == 0 and str(local["store"]).startswith("sqlite:///")
    served = info(PREFECT_MLOPS_TRACKING_URI=tracking_server)
    assert served["store"] == tracking_server and served["runs"] == 3
    assert served["version"] == "0.1.0" and served["experiments"] == 1


def test_server_info_tells_the_stock_client_what_is_supported(tracking_server: str) -> None:
    from mlflow.utils.rest_utils import MlflowHostCreds
    from mlflow.utils.server_info import fetch_server_info

    answer = fetch_server_info(MlflowHostCreds(tracking_server))
    assert answer.status_code == 200
    assert answer.data["store_type"] == "SqlStore"
    assert answer.data["multipart_uploads_enabled"] is True  # parts through the proxy
    assert answer.data["multipart_downloads_enabled"] is False


def test_deleting_an_experiment_deletes_its_runs_and_restoring_restores_them(
    tracking_server: str,
) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(tracking_uri=tracking_server)
    experiment = client.create_experiment("doomed")
    ids = {client.create_run(experiment).info.run_id for _ in range(3)}
    client.delete_experiment(experiment)
    found = client.search_runs([experiment], run_view_type=ViewType.ALL)
    assert {r.info.run_id for r in found} == ids
    assert {r.info.lifecycle_stage for r in found} == {"deleted"}  # as MLflow's store does
    assert client.search_runs([experiment]) == []
    client.restore_experiment(experiment)
    assert {r.info.run_id for r in client.search_runs([experiment])} == ids


def test_deleting_through_the_proxy_forgets_the_files_records(
    tracking_server: str, tmp_path: Path
) -> None:
    import httpx
    from mlflow import MlflowClient

    from prefect_mlops import TrackingClient

    mlflow_client = MlflowClient(tracking_uri=tracking_server)
    run = mlflow_client.create_run(mlflow_client.create_experiment("proxied"))
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text(name)
        mlflow_client.log_artifact(run.info.run_id, str(tmp_path / name), "notes")
    ours = TrackingClient(
        database_url=f"sqlite:///{tmp_path / 'server-home' / 'mlops.db'}",
        artifact_storage=str(tmp_path / "server-home" / "artifacts"),
    )
    listed = [f.path for f in ours.list_artifact_files(run.info.run_id)]
    assert listed == ["notes/a.txt", "notes/b.txt"]
    rel = run.info.artifact_uri.removeprefix("mlflow-artifacts:/")
    answer = httpx.delete(f"{tracking_server}/api/2.0/mlflow-artifacts/artifacts/{rel}/notes/a.txt")
    assert answer.status_code == 200
    assert [f.path for f in ours.list_artifact_files(run.info.run_id)] == ["notes/b.txt"]
    assert [f.path for f in mlflow_client.list_artifacts(run.info.run_id, "notes")] == [
        "notes/b.txt"
    ]


def test_artifacts_go_straight_to_s3_when_the_client_is_told_to(
    s3_server: str, tmp_path: Path, mlops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With PREFECT_MLOPS_ARTIFACTS_DIRECT the client writes to the bucket the server's run
    points at, with its own credentials; the server only records the file. Here the server
    cannot reach S3 at all (a dead endpoint), so any byte through it would fail."""
    import boto3

    from prefect_mlops import TrackingClient
    from prefect_mlops.core.settings import reset_settings
    from prefect_mlops.core.storage import clear_backend_cache
    from prefect_mlops.tracking.client import close_all_clients

    home = tmp_path / "home"
    home.mkdir()
    dead = f"http://127.0.0.1:{_free_port()}"
    proc, url = start_tracking_server(
        home, {"PREFECT_MLOPS_ARTIFACT_STORAGE": "s3://mlops/direct", "AWS_ENDPOINT_URL": dead}
    )
    monkeypatch.setenv("PREFECT_MLOPS_TRACKING_URI", url)
    monkeypatch.setenv("PREFECT_MLOPS_ARTIFACTS_DIRECT", "true")
    reset_settings()
    close_all_clients()
    clear_backend_cache()
    try:
        client = TrackingClient()
        run = client.create_run(client.create_experiment("direct"))
        assert run.info.artifact_uri.startswith("s3://mlops/direct/")
        data = os.urandom(2 * 1024 * 1024 + 3)
        (tmp_path / "weights.bin").write_bytes(data)
        client.log_artifact(run.info.run_id, tmp_path / "weights.bin", "model")
        key = run.info.artifact_uri.removeprefix("s3://mlops/") + "/model/weights.bin"
        assert boto3.client("s3").get_object(Bucket="mlops", Key=key)["Body"].read() == data
        (recorded,) = client.list_artifact_files(run.info.run_id)  # recorded by the server
        assert (recorded.path, recorded.file_size) == ("model/weights.bin", len(data))
        down = client.download_artifacts(run.info.run_id, "model", tmp_path / "down")
        assert (down / "weights.bin").read_bytes() == data
    finally:
        close_all_clients()
        reset_settings()
        stop_tracking_server(proc)
