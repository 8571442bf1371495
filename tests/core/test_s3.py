"""Artifacts on S3, through fsspec, against a real S3-compatible server on loopback."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from prefect_mlops import TrackingClient
from prefect_mlops.core.storage import CHUNK, ArtifactLocation, clear_backend_cache


@pytest.fixture
def s3_client(s3_server: str, mlops_home: Path) -> TrackingClient:
    clear_backend_cache()
    return TrackingClient(artifact_storage="s3://mlops/artifacts")


def test_artifacts_round_trip_through_s3(s3_client: TrackingClient, tmp_path: Path) -> None:
    import boto3

    run = s3_client.create_run(s3_client.create_experiment("s3"))
    run_id = run.info.run_id
    assert run.info.artifact_uri.startswith("s3://mlops/artifacts/")
    data = os.urandom(3 * CHUNK + 11)  # several chunks: a multipart write
    (tmp_path / "model.bin").write_bytes(data)
    info = s3_client.log_artifact(run_id, tmp_path / "model.bin", "model")
    assert info.sha256 == hashlib.sha256(data).hexdigest() and info.file_size == len(data)
    s3_client.log_dict(run_id, {"lr": 0.1}, "config.json")
    assert [f.path for f in s3_client.list_artifacts(run_id)] == ["config.json", "model"]
    key = run.info.artifact_uri.removeprefix("s3://mlops/") + "/model/model.bin"
    stored = boto3.client("s3").get_object(Bucket="mlops", Key=key)["Body"].read()
    assert stored == data  # really in the bucket, byte for byte
    out = s3_client.download_artifacts(run_id, "model", tmp_path / "down")
    assert (out / "model.bin").read_bytes() == data
    with s3_client.open_artifact(run_id, "config.json") as stream:
        assert b'"lr": 0.1' in stream.read()


def test_a_failed_s3_upload_leaves_no_object(s3_server: str, tmp_path: Path) -> None:
    import boto3

    class Broken:
        def __init__(self) -> None:
            self.sent = 0

        def read(self, n: int = -1) -> bytes:
            if self.sent >= 2 * CHUNK:
                raise OSError("connection reset by peer")
            self.sent += CHUNK
            return b"x" * CHUNK

    clear_backend_cache()
    location = ArtifactLocation("s3://mlops/partial")
    with pytest.raises(Exception, match="connection reset"):
        location.write_stream("big.bin", Broken())  # type: ignore[arg-type]
    listed = boto3.client("s3").list_objects_v2(Bucket="mlops", Prefix="partial/")
    assert listed.get("KeyCount", 0) == 0
