"""Datasets end to end on real files, SQLite (and PostgreSQL), local folders, S3 on loopback
and lakeFS (real or the fake, through the real SDK)."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from prefect_mlops import InvalidInput, NotFound, StorageError, datasets
from prefect_mlops.datasets import DatasetClient
from prefect_mlops.datasets import hashing as hashing_mod
from prefect_mlops.datasets.entities import CHUNK_THRESHOLD
from prefect_mlops.datasets.objects import object_store
from prefect_mlops.datasets.rules import FileCount, NotNull, RequiredColumns, ValidationFailed


def write(root: Path, files: dict[str, bytes | str]) -> Path:
    """Files under ``root``, dated a minute ago: the stat cache does not trust a file
    modified within a moment of its own writing (a change in the same tick would not show)."""
    import time

    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        os.utime(path, (time.time() - 60, time.time() - 60))
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write(
        tmp_path / "iris",
        {
            "train/part-0.csv": "id,sepal,species\n1,5.1,setosa\n2,4.9,setosa\n3,,virginica\n",
            "test/part-0.csv": "id,sepal,species\n4,6.3,virginica\n",
            "README with spaces é.txt": "Iris, from UCI\n",
        },
    )


@pytest.fixture
def ds_home(tracking_db: str, mlops_home: Path) -> Path:
    """A fresh home on both database backends; objects in ``<home>/datasets``."""
    return mlops_home


def objects_dir(home: Path) -> Path:
    return home / "datasets" / "objects" / "sha256"


def object_files(home: Path) -> list[Path]:
    return [p for p in objects_dir(home).rglob("*") if p.is_file()]


def flip_byte(path: Path, offset: int = 0) -> None:
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


# -- identity and re-versioning ------------------------------------------------------------


def test_same_content_gives_the_same_version_wherever_it_lies(
    ds_home: Path, tree: Path, tmp_path: Path
) -> None:
    v1 = datasets.create("iris", tree, message="raw", metadata={"source": "uci"})
    assert len(v1.version_id) == 64 and v1.number == 1
    assert v1.file_count == 3 and v1.metadata["source"] == "uci" and v1.message == "raw"
    copy = write(
        tmp_path / "elsewhere",
        {p.relative_to(tree).as_posix(): p.read_bytes() for p in tree.rglob("*") if p.is_file()},
    )
    again = datasets.create("iris", copy)
    assert again.version_id == v1.version_id and again.number == 1
    assert again.ingest is not None and again.ingest.stored_objects == 0
    assert [v.version_id for v in datasets.list_versions("iris")] == [v1.version_id]


def test_reversioning_hashes_and_stores_only_the_changed_file(ds_home: Path, tree: Path) -> None:
    v1 = datasets.create("iris", tree)
    assert v1.ingest is not None and v1.ingest.hashed_files == 3
    (tree / "test/part-0.csv").write_text("id,sepal,species\n4,6.4,virginica\n")
    v2 = datasets.create("iris", tree, parents=[v1], message="fix")
    assert v2.ingest is not None
    assert (v2.ingest.hashed_files, v2.ingest.stored_objects) == (1, 1)
    assert v2.parents == (v1.version_id,) and v2.number == 2
    d = datasets.diff(v1, v2)
    assert [c.path for c in d.modified] == ["test/part-0.csv"] and not d.added and not d.removed
    (tree / "new.txt").write_text("x")
    (tree / "README with spaces é.txt").unlink()
    v3 = datasets.create("iris", tree, parents=[v2])
    d = datasets.diff("iris@v2", "iris@latest")
    assert [(c.path, c.new_size) for c in d.added] == [("new.txt", 1)]
    assert [(c.path, c.old_size) for c in d.removed] == [("README with spaces é.txt", 15)]
    lin = datasets.lineage(v3)
    assert [a.version_id for a in lin.ancestors] == [v2.version_id, v1.version_id]


def test_appending_to_a_large_file_stores_only_new_chunks(ds_home: Path, tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    payload = os.urandom(CHUNK_THRESHOLD + (12 << 20))
    (big / "blob.bin").write_bytes(payload)
    v1 = datasets.create("blobs", big)
    assert v1.files()[0].chunked and v1.ingest is not None
    assert v1.ingest.stored_objects > 5  # cut into ~1 MiB chunks
    with open(big / "blob.bin", "ab") as f:
        f.write(b"z" * (1 << 20))
    v2 = datasets.create("blobs", big, parents=[v1])
    assert v2.ingest is not None
    assert v2.ingest.stored_bytes < 8 << 20  # the tail chunks, not 21 MiB again
    with v2.open("blob.bin") as f:
        assert f.read() == payload + b"z" * (1 << 20)
    assert v2.files()[0].digest == hashing_mod.file_digest(big / "blob.bin")


# -- finding versions ----------------------------------------------------------------------


def test_versions_by_latest_number_prefix_alias_and_tag(ds_home: Path, tree: Path) -> None:
    v1 = datasets.create("iris", tree, tags={"stage": "raw"})
    (tree / "extra.txt").write_text("more")
    v2 = datasets.create("iris", tree, parents=[v1])
    assert datasets.get("iris").version_id == v2.version_id
    assert datasets.get("iris", "latest") == v2
    assert datasets.get("iris", "v1") == v1
    assert datasets.get("iris", v1.version_id[:10]) == v1
    assert datasets.get("iris", "stage=raw") == v1
    datasets.set_alias(v1, "prod")
    assert datasets.get("iris", "prod") == v1
    datasets.set_alias(v2, "prod")  # aliases move
    assert datasets.get("iris", "prod") == v2
    assert "prod" in datasets.get("iris", "v2").info.aliases
    datasets.tag(v2, "reviewed", "yes")
    assert datasets.get("iris", "reviewed=yes").info.tags == {"reviewed": "yes"}
    listed = datasets.list_datasets()
    assert [(d.name, d.version_count, d.latest_version) for d in listed] == [
        ("iris", 2, v2.version_id)
    ]


def test_unknown_datasets_and_versions_are_named(ds_home: Path, tree: Path) -> None:
    with pytest.raises(NotFound, match=r"No dataset named 'nope'"):
        datasets.get("nope")
    datasets.create("iris", tree)
    missing = "f" * 64
    with pytest.raises(NotFound, match=rf"no version '{missing}'.*alias"):
        datasets.get("iris", missing)
    with pytest.raises(NotFound, match=r"no version 'v9'"):
        datasets.get("iris", "v9")
    with pytest.raises(InvalidInput, match=r"Dataset name 'bad name!'"):
        datasets.create("bad name!", tree)
    with pytest.raises(InvalidInput, match=r"Alias 'v2'"):
        datasets.set_alias("iris@latest", "v2")


# -- reading -------------------------------------------------------------------------------


def test_local_copy_is_verified_cached_and_read_only(
    ds_home: Path, tree: Path, tmp_path: Path
) -> None:
    v = datasets.create("iris", tree)
    path = v.local_copy()
    assert (path / "train/part-0.csv").read_bytes() == (tree / "train/part-0.csv").read_bytes()
    assert (path / "README with spaces é.txt").read_text() == "Iris, from UCI\n"
    assert not os.access(path / "train/part-0.csv", os.W_OK) or os.geteuid() == 0
    assert not (os.stat(path / "train/part-0.csv").st_mode & stat.S_IWUSR)
    assert datasets.get("iris").local_copy() == path  # instant the second time
    assert not list(path.parent.glob(".tmp-*"))
    mine = v.local_copy(tmp_path / "mine")
    (mine / "train/part-0.csv").write_text("edited")  # a writable copy
    assert (path / "train/part-0.csv").read_bytes() == (tree / "train/part-0.csv").read_bytes()


def test_open_streams_one_file_and_tabular_splits(ds_home: Path, tree: Path) -> None:
    v = datasets.create("iris", tree, splits={"train": "train/**", "test": "test/**"})
    with v.open("test/part-0.csv") as f:
        assert f.read() == b"id,sepal,species\n4,6.3,virginica\n"
    frame = v.to_pandas(split="train")
    assert list(frame["id"]) == [1, 2, 3]
    assert v.to_arrow(split="test").num_rows == 1
    s = v.stats["train/part-0.csv"]
    assert s["rows"] == 3
    sepal = next(c for c in s["columns"] if c["name"] == "sepal")
    assert (sepal["nulls"], sepal["min"], sepal["max"]) == (1, 4.9, 5.1)
    with pytest.raises(InvalidInput, match=r"no split 'valid'"):
        v.files(split="valid")
    with pytest.raises(NotFound, match=r"no file 'nope.csv'"):
        v.open("nope.csv")
    # a child keeps its parent's splits
    (tree / "train/part-1.csv").write_text("id,sepal,species\n5,5.0,setosa\n")
    child = datasets.create("iris", tree, parents=[v])
    assert list(child.to_pandas("train")["id"]) == [1, 2, 3, 5]


# -- validation ----------------------------------------------------------------------------


def test_failing_rules_create_nothing_and_report_every_violation(ds_home: Path, tree: Path) -> None:
    rules = [FileCount(min=10), RequiredColumns(columns=["petal"]), NotNull(columns=["sepal"])]
    with pytest.raises(ValidationFailed) as caught:
        datasets.create("iris", tree, rules=rules)
    assert len(caught.value.violations) >= 3
    assert "petal" in str(caught.value) and "sepal" in str(caught.value)
    with pytest.raises(NotFound):
        datasets.list_versions("iris")
    assert object_files(ds_home) == []  # checked before anything was stored
    v = datasets.create("iris", tree, rules=[RequiredColumns(columns=["id", "sepal"])])
    assert v.validate([NotNull(columns=["id"])]) == []
    assert [x.path for x in v.validate([NotNull(columns=["sepal"])])] == ["train/part-0.csv"]


# -- integrity -----------------------------------------------------------------------------


def test_a_flipped_byte_is_caught_on_read_and_by_verify(ds_home: Path, tree: Path) -> None:
    v = datasets.create("iris", tree)
    assert datasets.verify(v) == 3
    entry = next(e for e in v.files() if e.path == "test/part-0.csv")
    obj = next(p for p in object_files(ds_home) if p.name == entry.digest)
    flip_byte(obj, 3)
    with pytest.raises(StorageError, match=r"'test/part-0.csv' of dataset version iris@"):
        v.open("test/part-0.csv")
    with pytest.raises(StorageError, match=r"(?s)1 of 3 files .*damaged.*test/part-0.csv"):
        datasets.verify(v)
    with pytest.raises(StorageError, match=r"test/part-0.csv"):
        v.local_copy()
    assert not (ds_home / "cache/datasets/versions" / v.version_id).exists()
    obj.unlink()
    with pytest.raises(StorageError, match=r"missing"):
        datasets.verify(v)


def test_gc_deletes_only_old_unreferenced_objects(ds_home: Path, tree: Path) -> None:
    v1 = datasets.create("iris", tree)
    (tree / "test/part-0.csv").write_text("changed\n")
    datasets.create("iris", tree, parents=[v1])
    store = object_store(str(ds_home / "datasets"))
    orphan = b"an object no version references"
    import hashlib

    digest = hashlib.sha256(orphan).hexdigest()
    store.put_bytes(digest, orphan)
    report = datasets.gc()  # a dry run by default
    assert report.dry_run and report.unreferenced == (digest,) and report.kept_young == (digest,)
    assert report.deleted == ()
    report = datasets.gc(dry_run=False)  # young: a writer may be about to record it
    assert report.deleted == () and store.has(digest)
    path = objects_dir(ds_home) / digest[:2] / digest[2:4] / digest
    os.utime(path, (1, 1))
    report = datasets.gc(dry_run=False, grace_seconds=60)
    assert report.deleted == (digest,) and report.freed_bytes == len(orphan)
    assert not store.has(digest)
    assert datasets.verify("iris@v1") == 3 and datasets.verify("iris@v2") == 3
    with pytest.raises(InvalidInput, match="grace_seconds"):
        datasets.gc(grace_seconds=-1)


def test_an_interrupted_upload_leaves_nothing_visible_and_a_retry_finishes(
    ds_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write(tmp_path / "many", {f"f{i:03}.txt": f"file {i}\n" for i in range(40)})
    from prefect_mlops.datasets.objects.fs import LocalObjectStore

    real = LocalObjectStore.put_bytes
    calls = {"n": 0}

    def flaky(self: LocalObjectStore, digest: str, data: bytes | memoryview) -> bool:
        calls["n"] += 1
        if calls["n"] == 20:
            raise StorageError("connection reset while uploading")
        return real(self, digest, data)

    monkeypatch.setattr(LocalObjectStore, "put_bytes", flaky)
    with pytest.raises(StorageError, match="connection reset"):
        datasets.create("many", src)
    with pytest.raises(NotFound):
        datasets.list_versions("many")
    assert not [p for p in objects_dir(ds_home).rglob(".tmp-*")]
    before = len(object_files(ds_home))
    assert 0 < before < 40
    monkeypatch.setattr(LocalObjectStore, "put_bytes", real)
    v = datasets.create("many", src)
    assert v.ingest is not None and v.ingest.stored_objects == 40 - before
    assert datasets.verify(v) == 40


# -- bad input -----------------------------------------------------------------------------


def test_symlinks_leading_outside_are_refused_inside_are_read(
    ds_home: Path, tmp_path: Path, tree: Path
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the dataset")
    (tree / "inner-link.csv").symlink_to(tree / "test/part-0.csv")
    v = datasets.create("iris", tree)
    assert next(e for e in v.files() if e.path == "inner-link.csv").size == 33
    (tree / "escape.txt").symlink_to(outside)
    with pytest.raises(InvalidInput, match=r"escape.txt: a symlink to .*secret.txt, outside"):
        datasets.create("iris", tree)
    assert len(datasets.list_versions("iris")) == 1
    assert datasets.create("iris", tree, exclude=["escape.txt"]).version_id == v.version_id


def test_empty_missing_and_unreadable_sources(
    ds_home: Path, tmp_path: Path, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match=r"holds no files.*Nothing was created"):
        datasets.create("e", tmp_path / "empty")
    with pytest.raises(NotFound, match=r"does not exist"):
        datasets.create("e", tmp_path / "nowhere")
    real_open = open
    locked = str(tree / "test/part-0.csv")

    def guarded(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(file) == locked:
            raise PermissionError(13, "Permission denied", file)
        return real_open(file, *args, **kwargs)

    import builtins

    monkeypatch.setattr(builtins, "open", guarded)
    with pytest.raises(InvalidInput, match=r"'test/part-0.csv' .* cannot be read"):
        datasets.create("iris", tree, progress=False)


def test_a_file_changing_while_hashed_is_retried_then_refused(
    ds_home: Path, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_stat = os.stat
    moving = str(tree / "train/part-0.csv")
    state = {"left": 1}

    class Moved:
        """The file's stat as if it were written again meanwhile."""

        def __init__(self, st: os.stat_result) -> None:
            self._st = st
            self.st_mtime_ns = st.st_mtime_ns + state["left"]  # a new time at every look

        def __getattr__(self, name: str) -> object:
            return getattr(self._st, name)

    def stat_(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        st = real_stat(path, *args, **kwargs)
        if str(path) == moving and state["left"] > 0:
            state["left"] -= 1
            return Moved(st)
        return st

    monkeypatch.setattr(hashing_mod.os, "stat", stat_)
    v = datasets.create("iris", tree)  # moved once: read again, then stored
    assert v.file_count == 3
    state["left"] = 100
    (tree / "train/part-0.csv").write_text("id\n9\n")
    with pytest.raises(InvalidInput, match=r"'train/part-0.csv' changed while it was read"):
        datasets.create("iris", tree)
    assert len(datasets.list_versions("iris")) == 1


def test_paths_with_tabs_newlines_and_unicode_round_trip(ds_home: Path, tmp_path: Path) -> None:
    src = write(tmp_path / "odd", {"a\tb.txt": "tab", "ünï cødé/ß.txt": "u", "back\\slash": "b"})
    v = datasets.create("odd", src)
    names = sorted(e.path for e in datasets.get("odd").files())
    assert names == sorted(["a\tb.txt", "ünï cødé/ß.txt", "back\\slash"])
    copy = v.local_copy()
    assert (copy / "a\tb.txt").read_text() == "tab" and (copy / "ünï cødé/ß.txt").exists()


# -- other backends ------------------------------------------------------------------------


def test_datasets_on_s3(
    s3_server: str, mlops_home: Path, monkeypatch: pytest.MonkeyPatch, tree: Path
) -> None:
    prefix = f"s3://mlops/datasets-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PREFECT_MLOPS_DATASET_STORAGE", prefix)
    from prefect_mlops.core.settings import reset_settings

    reset_settings()
    client = DatasetClient()
    v1 = client.create("iris", tree)
    assert v1.stored.storage == prefix
    (tree / "test/part-0.csv").write_text("id,sepal,species\n4,7.0,virginica\n")
    v2 = client.create("iris", tree, parents=[v1])
    assert v2.ingest is not None and v2.ingest.stored_objects == 1
    path = v2.local_copy()
    assert (path / "test/part-0.csv").read_text().endswith("7.0,virginica\n")
    assert client.verify(v2) == 3
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_server})
    keys = fs.find(prefix.removeprefix("s3://") + "/objects")
    assert len(keys) == 3 + 1 + 2  # three files, one changed file, two manifests
    entry = next(e for e in v2.files() if e.path == "test/part-0.csv")
    key = next(k for k in keys if k.endswith(entry.digest))
    fs.pipe_file(key, b"tampered")
    client.local_objects.delete(entry.digest)  # drop the local cached copy
    with pytest.raises(StorageError, match="test/part-0.csv"):
        client.verify(v2)


@pytest.fixture(scope="module")
def lakefs_target() -> Iterator[object]:
    from tests.datasets.lakefs_fake import open_lakefs_target

    with open_lakefs_target() as target:
        yield target


def test_datasets_on_lakefs_commits(
    lakefs_target: object, mlops_home: Path, monkeypatch: pytest.MonkeyPatch, tree: Path
) -> None:
    t = lakefs_target
    branch = f"ds-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PREFECT_MLOPS_DATASET_STORAGE", f"lakefs://{t.repo}/{branch}")  # type: ignore[attr-defined]
    monkeypatch.setenv("LAKEFS_ENDPOINT", t.endpoint)  # type: ignore[attr-defined]
    monkeypatch.setenv("LAKEFS_ACCESS_KEY_ID", t.access_key_id)  # type: ignore[attr-defined]
    monkeypatch.setenv("LAKEFS_SECRET_ACCESS_KEY", t.secret_access_key)  # type: ignore[attr-defined]
    from prefect_mlops.core.settings import reset_settings

    reset_settings()
    client = DatasetClient()
    v1 = client.create("iris", tree, message="raw")
    assert v1.stored.storage_ref  # the lakeFS commit
    (tree / "test/part-0.csv").write_text("id,sepal,species\n4,7.7,virginica\n")
    v2 = client.create("iris", tree, parents=[v1])
    assert v2.stored.storage_ref != v1.stored.storage_ref
    store = client._lakefs(v2.stored.storage)
    assert store.find_version(v1.version_id) == v1.stored.storage_ref
    with client.get("iris", "v1").open("test/part-0.csv") as f:
        assert f.read() == b"id,sepal,species\n4,6.3,virginica\n"
    path = client.get("iris", "v2").local_copy()
    assert (path / "test/part-0.csv").read_text().endswith("7.7,virginica\n")
