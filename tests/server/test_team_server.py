"""The team setup: artifacts on S3 through the server, several server processes, one
PostgreSQL database behind two servers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import (
    POSTGRES_URL,
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
    assert answer.data["multipart_uploads_enabled"] is False  # uploads stream in one request
