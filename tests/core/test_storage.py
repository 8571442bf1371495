"""Artifact storage: local folders, fsspec URLs and Prefect storage blocks, streamed."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from prefect_mlops import InvalidInput, StorageError, TrackingClient
from prefect_mlops.core.storage import CHUNK, ArtifactLocation, artifact_root_uri


class CountingReader(io.RawIOBase):
    """A source that produces ``size`` bytes and records the largest read request."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.largest = 0
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        self.largest = max(self.largest, n)
        take = self.left if n < 0 else min(n, self.left)
        self.left -= take
        data = (b"0123456789abcdef" * (take // 16 + 1))[:take]
        self.digest.update(data)
        return data


def test_root_uri_resolution(tmp_path: Path) -> None:
    assert artifact_root_uri(str(tmp_path)) == str(tmp_path.resolve())
    assert artifact_root_uri("s3://bucket/prefix/") == "s3://bucket/prefix"
    assert artifact_root_uri("local-file-system/mlops-artifacts") == (
        "block://local-file-system/mlops-artifacts"
    )


def test_streams_in_chunks_and_hashes(tmp_path: Path) -> None:
    location = ArtifactLocation(str(tmp_path / "root"))
    source = CountingReader(5 * CHUNK + 123)
    size, digest = location.write_stream("big/file.bin", source)  # type: ignore[arg-type]
    assert size == 5 * CHUNK + 123
    assert digest == source.digest.hexdigest()
    assert source.largest == CHUNK  # never asked for the whole file
    stored = tmp_path / "root" / "big" / "file.bin"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == digest
    assert not [p for p in stored.parent.iterdir() if p.name.startswith(".upload-")]


def test_failed_upload_leaves_no_partial_file(tmp_path: Path) -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            raise OSError("source vanished")

    location = ArtifactLocation(str(tmp_path / "root"))
    with pytest.raises(StorageError, match="source vanished"):
        location.write_stream("x.bin", Broken())  # type: ignore[arg-type]
    assert list((tmp_path / "root").iterdir()) == []


def test_fsspec_memory_url(mlops_home: Path, tmp_path: Path) -> None:
    client = TrackingClient(artifact_storage="memory://mlops-test")
    exp = client.get_or_create_experiment("mem")
    run_id = client.create_run(exp.experiment_id).info.run_id
    info = client.log_text(run_id, "hello", "notes/a.txt")
    assert client.get_run(run_id).info.artifact_uri.startswith("memory://mlops-test/")
    with client.open_artifact(run_id, "notes/a.txt") as fh:
        assert fh.read() == b"hello"
    assert info.sha256 == hashlib.sha256(b"hello").hexdigest()
    out = client.download_artifacts(run_id, "notes", tmp_path / "dl")
    assert (out / "a.txt").read_text() == "hello"


def test_prefect_local_file_system_block(
    prefect_server: str, mlops_home: Path, tmp_path: Path
) -> None:
    from prefect.filesystems import LocalFileSystem

    LocalFileSystem(basepath=str(tmp_path / "block-root")).save(
        "mlops-test-artifacts", overwrite=True
    )
    client = TrackingClient(artifact_storage="local-file-system/mlops-test-artifacts")
    exp = client.get_or_create_experiment("blocks")
    run_id = client.create_run(exp.experiment_id).info.run_id
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(3 * CHUNK))
    info = client.log_artifact(run_id, source, "models")
    assert info.path == "models/model.bin" and info.file_size == 3 * CHUNK
    uri = client.get_run(run_id).info.artifact_uri
    assert uri.startswith("block://local-file-system/mlops-test-artifacts/")
    stored = (
        tmp_path / "block-root" / exp.experiment_id / run_id / "artifacts" / "models" / "model.bin"
    )
    assert stored.read_bytes() == source.read_bytes()
    # a fresh client (another process would do the same) finds the files through the block
    fresh = TrackingClient(artifact_storage=str(tmp_path / "unused"))
    out = fresh.download_artifacts(run_id, "models/model.bin", tmp_path / "dl")
    assert out.read_bytes() == source.read_bytes()


def test_prefect_remote_file_system_block(prefect_server: str, mlops_home: Path) -> None:
    from prefect.filesystems import RemoteFileSystem

    RemoteFileSystem(basepath="memory://remote-block").save("mlops-remote", overwrite=True)
    client = TrackingClient(artifact_storage="remote-file-system/mlops-remote")
    exp = client.get_or_create_experiment("remote")
    run_id = client.create_run(exp.experiment_id).info.run_id
    client.log_dict(run_id, {"a": 1}, "cfg.json")
    with client.open_artifact(run_id, "cfg.json") as fh:
        assert fh.read() == b'{\n  "a": 1\n}'


def test_missing_block_is_a_clear_error(prefect_server: str, mlops_home: Path) -> None:
    client = TrackingClient(artifact_storage="local-file-system/does-not-exist")
    exp = client.get_or_create_experiment("x")
    run_id = client.create_run(exp.experiment_id).info.run_id
    with pytest.raises(StorageError, match="'local-file-system/does-not-exist'"):
        client.log_text(run_id, "x", "x.txt")


@pytest.mark.parametrize("bad", ["../escape.txt", "a/../../b", "/etc/passwd", "C:/x", "s3://b/k"])
def test_paths_escaping_the_run_folder_are_refused(
    mlops_home: Path, tmp_path: Path, bad: str
) -> None:
    client = TrackingClient()
    exp = client.get_or_create_experiment("x")
    run_id = client.create_run(exp.experiment_id).info.run_id
    with pytest.raises(InvalidInput, match="relative|escape"):
        client.log_text(run_id, "x", bad)
    source = tmp_path / "f.txt"
    source.write_text("x")
    with pytest.raises(InvalidInput, match="relative|escape"):
        client.log_artifact(run_id, source, bad)
    assert client.list_artifacts(run_id) == []
    assert not list(mlops_home.rglob("escape.txt"))


def test_local_file_copy_is_verified_by_its_digest(tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    data = os.urandom(3 * CHUNK + 7)
    source.write_bytes(data)
    location = ArtifactLocation(str(tmp_path / "root"))
    size, digest = location.write_file("model/weights.bin", source)
    assert (size, digest) == (len(data), hashlib.sha256(data).hexdigest())
    assert (tmp_path / "root" / "model" / "weights.bin").read_bytes() == data


def test_a_file_changing_while_it_is_stored_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    source = tmp_path / "growing.log"
    source.write_bytes(b"x" * CHUNK)
    real_copy = shutil.copyfile

    def copy_then_append(src: str, dst: str) -> str:
        result = real_copy(src, dst)
        with open(src, "ab") as more:  # the writer was still busy
            more.write(b"late line\n")
        return result

    monkeypatch.setattr(shutil, "copyfile", copy_then_append)
    location = ArtifactLocation(str(tmp_path / "root"))
    with pytest.raises(StorageError, match="changed while it was stored"):
        location.write_file("logs/growing.log", source)
    assert not list((tmp_path / "root" / "logs").iterdir())  # no file, no temporary left
