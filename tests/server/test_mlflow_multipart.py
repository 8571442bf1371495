"""Large files through the artifacts proxy in parts, as the stock client uploads them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> int:
    """Make the stock client use multipart uploads for files over 1 MiB, in 1 MiB parts."""
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", str(1024 * 1024))
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", str(1024 * 1024))
    return 1024 * 1024


def test_stock_client_uploads_a_large_file_in_parts(
    mlflow_server: str, small_parts: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient
    from mlflow.store.artifact import http_artifact_repo

    seen: list[int] = []
    original = http_artifact_repo.HttpArtifactRepository._upload_part

    def counted(credential: object, local_file: str, size: int, start_byte: int) -> object:
        seen.append(start_byte)
        return original(
            credential=credential, local_file=local_file, size=size, start_byte=start_byte
        )  # type: ignore[call-arg]

    monkeypatch.setattr(
        http_artifact_repo.HttpArtifactRepository, "_upload_part", staticmethod(counted)
    )
    client = MlflowClient()
    run_id = client.create_run(client.create_experiment("parts")).info.run_id
    data = os.urandom(3 * small_parts + 12345)
    (tmp_path / "big.bin").write_bytes(data)
    client.log_artifact(run_id, str(tmp_path / "big.bin"), "model")
    assert sorted(seen) == [0, small_parts, 2 * small_parts, 3 * small_parts]  # 4 parts
    down = client.download_artifacts(run_id, "model/big.bin", str(tmp_path / "down"))
    assert hashlib.sha256(Path(down).read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert [f.path for f in client.list_artifacts(run_id, "model")] == ["model/big.bin"]


def test_a_part_that_does_not_match_its_etag_is_refused(mlflow_server: str) -> None:
    proxy = f"{mlflow_server}/api/2.0/mlflow-artifacts"
    created = httpx.post(f"{proxy}/mpu/create/x", json={"path": "/tmp/f.bin", "num_parts": 2})
    assert created.status_code == 200
    body = created.json()
    etags = []
    for credential, payload in zip(body["credentials"], (b"one", b"two"), strict=True):
        answer = httpx.put(credential["url"], content=payload)
        assert answer.status_code == 200
        etags.append(answer.headers["ETag"])
    parts = [{"part_number": 1, "etag": etags[1]}, {"part_number": 2, "etag": etags[1]}]
    refused = httpx.post(
        f"{proxy}/mpu/complete/x",
        json={"path": "/tmp/f.bin", "upload_id": body["upload_id"], "parts": parts},
    )
    assert refused.status_code == 400 and "does not match its ETag" in refused.json()["message"]
    gaps = [{"part_number": 2, "etag": etags[1]}]
    refused = httpx.post(
        f"{proxy}/mpu/complete/x",
        json={"path": "/tmp/f.bin", "upload_id": body["upload_id"], "parts": gaps},
    )
    assert refused.status_code == 400 and "without gaps" in refused.json()["message"]
    assert httpx.get(f"{proxy}/artifacts/x/f.bin").status_code == 404  # nothing visible
    aborted = httpx.post(
        f"{proxy}/mpu/abort/x", json={"path": "/tmp/f.bin", "upload_id": body["upload_id"]}
    )
    assert aborted.status_code == 200
    bad = httpx.post(f"{proxy}/mpu/create/x", json={"path": "/tmp/f.bin", "num_parts": 0})
    assert bad.status_code == 400
