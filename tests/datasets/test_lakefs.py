"""`LakeFSCommitStore` through the real ``lakefs`` SDK, against a lakeFS named by
``LAKEFS_ENDPOINT`` or else the in-repo fake server (``tests/datasets/lakefs_fake.py``)."""

from __future__ import annotations

import hashlib
import io
import socket
import sys
from collections.abc import Iterator
from typing import IO

import pytest

from prefect_mlops.core.errors import InvalidInput, NotFound, StorageError
from prefect_mlops.datasets.entities import FileEntry
from prefect_mlops.datasets.objects.lakefs import (
    DATASET_KEY,
    PREFIX_KEY,
    VERSION_KEY,
    LakeFSCommitStore,
    parse_lakefs_uri,
)
from tests.datasets.lakefs_fake import LakeFSTarget, open_lakefs_target

lakefs = pytest.importorskip("lakefs")


@pytest.fixture(scope="module")
def lakefs_target() -> Iterator[LakeFSTarget]:
    with open_lakefs_target() as target:
        yield target


@pytest.fixture
def fake_paging(lakefs_target: LakeFSTarget) -> Iterator[None]:
    """Pages of two on the fake, so listings and the log take several requests."""
    if lakefs_target.fake is None:
        yield
        return
    lakefs_target.fake.page_size = 2
    yield
    lakefs_target.fake.page_size = 100


def _entries(files: dict[str, bytes], modes: dict[str, int] | None = None) -> list[FileEntry]:
    modes = modes or {}
    return [
        FileEntry(path, len(data), hashlib.sha256(data).hexdigest(), modes.get(path, 0o644))
        for path, data in sorted(files.items())
    ]


def _reader(files: dict[str, bytes]):
    def read(entry: FileEntry) -> IO[bytes]:
        return io.BytesIO(files[entry.path])

    return read


def _commit(store: LakeFSCommitStore, version: str, files: dict[str, bytes], **kw) -> str:
    return store.commit_version(
        "flowers", version, _entries(files, kw.pop("modes", None)), _reader(files),
        kw.pop("message", f"version {version}"), kw.pop("metadata", {}),
    )  # fmt: skip


def _uploads(target: LakeFSTarget, since: int) -> list[str] | None:
    return None if target.fake is None else target.fake.uploaded[since:]


def _upload_count(target: LakeFSTarget) -> int:
    return 0 if target.fake is None else len(target.fake.uploaded)


def _physical(target: LakeFSTarget, repo: str, ref: str, path: str) -> str:
    return str(
        lakefs.repository(repo, client=target.client())
        .ref(ref)
        .object(path)
        .stat()
        .physical_address
    )


V1 = {
    "labels.csv": b"id,label\n1,rose\n2,tulip\n",
    "images/rose 1.png": b"\x89PNG rose" * 100,
    "ünïcode/façade ✓.txt": "ça va — ✓\n".encode(),
    "old/notes.txt": b"to be removed",
}
V2 = {
    "labels.csv": b"id,label\n1,rose\n2,tulip\n3,iris\n",  # changed
    "images/rose 1.png": V1["images/rose 1.png"],
    "ünïcode/façade ✓.txt": V1["ünïcode/façade ✓.txt"],
    "images/iris.png": b"\x89PNG iris",  # added; old/notes.txt removed
}


def test_two_versions_upload_only_what_changed(lakefs_target: LakeFSTarget, fake_paging) -> None:
    uri = lakefs_target.new_branch_uri("datasets/flowers")
    store = lakefs_target.store(uri)
    repo, branch, prefix = parse_lakefs_uri(uri)

    before = _upload_count(lakefs_target)
    c1 = _commit(store, "v1-id", V1, metadata={"source": "camera"})
    assert _uploads(lakefs_target, before) in (None, [f"{prefix}/{p}" for p in sorted(V1)])

    before = _upload_count(lakefs_target)
    c2 = _commit(store, "v2-id", V2)
    assert c2 != c1
    assert _uploads(lakefs_target, before) in (
        None,
        [f"{prefix}/images/iris.png", f"{prefix}/labels.csv"],
    )
    # an unchanged file keeps its stored bytes; a changed one got new ones
    for path, same in [("images/rose 1.png", True), ("ünïcode/façade ✓.txt", True)]:
        key = f"{prefix}/{path}"
        assert (
            _physical(lakefs_target, repo, c1, key) == _physical(lakefs_target, repo, c2, key)
        ) is same
    key = f"{prefix}/labels.csv"
    assert _physical(lakefs_target, repo, c1, key) != _physical(lakefs_target, repo, c2, key)

    for ref, files in [(c1, V1), (c2, V2)]:
        want = [(p, len(b), hashlib.sha256(b).hexdigest()) for p, b in files.items()]
        assert store.list_files(ref) == sorted(want)

    # the old version reads as it was after the branch moved on
    for ref, files in [(c1, V1), (c2, V2)]:
        for entry in _entries(files):
            with store.open_file(ref, entry) as f:
                assert f.read() == files[entry.path]
    assert store.find_version("v1-id") == c1
    assert store.find_version("v2-id") == c2
    assert store.find_version("v3-id") is None

    sdk_repo = lakefs.repository(repo, client=lakefs_target.client())
    meta1 = sdk_repo.commit(c1).get_commit().metadata
    assert meta1 == {
        DATASET_KEY: "flowers",
        VERSION_KEY: "v1-id",
        PREFIX_KEY: "datasets/flowers",
        "source": "camera",
    }
    commit2 = sdk_repo.commit(c2).get_commit()
    assert commit2.metadata[VERSION_KEY] == "v2-id"
    assert commit2.message == "version v2-id"
    assert commit2.parents == [c1]
    assert sdk_repo.branch(branch).head.id == c2


def test_object_metadata_holds_digest_and_mode(lakefs_target: LakeFSTarget) -> None:
    uri = lakefs_target.new_branch_uri()
    store = lakefs_target.store(uri)
    repo, branch, _ = parse_lakefs_uri(uri)
    files = {"run.sh": b"#!/bin/sh\necho hi\n", "data.bin": b"\x00\x01"}
    commit = _commit(store, "v1", files, modes={"run.sh": 0o755})
    stat = lakefs.repository(repo, client=lakefs_target.client()).ref(commit)
    meta = stat.object("run.sh").stat().metadata
    assert meta == {
        "mlops-digest": hashlib.sha256(files["run.sh"]).hexdigest(),
        "mlops-mode": "0o755",
    }
    assert stat.object("data.bin").stat().metadata["mlops-mode"] == "0o644"

    # a mode change alone re-uploads that file (the mode lives on the object)
    before = _upload_count(lakefs_target)
    commit2 = _commit(store, "v2", files)
    assert _uploads(lakefs_target, before) in (None, ["run.sh"])
    assert stat.object("run.sh").stat().metadata["mlops-mode"] == "0o755"  # v1 is unchanged
    sdk_ref = lakefs.repository(repo, client=lakefs_target.client()).ref(commit2)
    assert sdk_ref.object("run.sh").stat().metadata["mlops-mode"] == "0o644"
    assert store.list_files(branch) == store.list_files(commit2)


def test_committing_the_head_version_again_commits_nothing(lakefs_target: LakeFSTarget) -> None:
    uri = lakefs_target.new_branch_uri("ds")
    store = lakefs_target.store(uri)
    repo, branch, _ = parse_lakefs_uri(uri)
    c1 = _commit(store, "v1", V1)
    before = _upload_count(lakefs_target)
    assert _commit(store, "v1", V1) == c1
    assert _uploads(lakefs_target, before) in (None, [])
    sdk_branch = lakefs.repository(repo, client=lakefs_target.client()).branch(branch)
    assert sdk_branch.head.id == c1

    # the same files under another version id still get a commit of their own
    c2 = _commit(store, "v1-again", V1)
    assert c2 != c1
    assert _uploads(lakefs_target, before) in (None, [])
    assert store.list_files(c2) == store.list_files(c1)
    assert store.find_version("v1") == c1
    assert store.find_version("v1-again") == c2


def test_branch_is_made_from_the_default_branch(lakefs_target: LakeFSTarget) -> None:
    uri = lakefs_target.new_branch_uri()
    repo = parse_lakefs_uri(uri)[0]
    sdk_repo = lakefs.repository(repo, client=lakefs_target.client())
    default_head = sdk_repo.branch(sdk_repo.properties.default_branch).head.id
    store = lakefs_target.store(uri)
    assert store.find_version("v1") is None  # no branch yet: no versions
    commit = _commit(store, "v1", {"a.txt": b"a"})
    assert sdk_repo.commit(commit).get_commit().parents == [default_head]


def test_stale_staged_files_under_the_prefix_are_removed(lakefs_target: LakeFSTarget) -> None:
    uri = lakefs_target.new_branch_uri("ds")
    store = lakefs_target.store(uri)
    repo, branch, _ = parse_lakefs_uri(uri)
    c1 = _commit(store, "v1", {"a.txt": b"a"})
    sdk_branch = lakefs.repository(repo, client=lakefs_target.client()).branch(branch)
    sdk_branch.object("ds/left-over.tmp").upload(b"from a crashed writer")  # staged, not ours
    sdk_branch.object("dsx/outside.txt").upload(b"not under the prefix")
    c2 = _commit(store, "v1", {"a.txt": b"a"})
    assert c2 != c1  # the branch had changes, so the version is committed again
    assert store.list_files(c2) == [("a.txt", 1, hashlib.sha256(b"a").hexdigest())]
    assert not sdk_branch.object("ds/left-over.tmp").exists()
    assert sdk_branch.object("dsx/outside.txt").exists()


def test_files_read_in_pieces_and_empty_files(lakefs_target: LakeFSTarget) -> None:
    store = lakefs_target.store(lakefs_target.new_branch_uri())
    big = bytes(range(256)) * (12 << 12)  # 12 MiB: more than one 8 MiB range
    files = {"big.bin": big, "empty": b""}
    commit = _commit(store, "v1", files)
    entries = {e.path: e for e in _entries(files)}
    gets_before = _gets(lakefs_target)
    with store.open_file(commit, entries["big.bin"]) as f:
        pieces = []
        while piece := f.read(64 << 10):
            pieces.append(piece)
    assert b"".join(pieces) == big
    if lakefs_target.fake is not None:
        assert _gets(lakefs_target) - gets_before == 2  # two ranges of at most 8 MiB
    with store.open_file(commit, entries["empty"]) as f:
        assert f.read() == b""
        assert f.read(10) == b""
    assert ("empty", 0, hashlib.sha256(b"").hexdigest()) in store.list_files(commit)


def _gets(target: LakeFSTarget) -> int:
    if target.fake is None:
        return 0
    return sum(1 for m, p, _ in target.fake.requests if m == "GET" and p.endswith("/objects"))


def test_a_missing_path_or_ref_is_not_found(lakefs_target: LakeFSTarget) -> None:
    store = lakefs_target.store(lakefs_target.new_branch_uri("ds"))
    commit = _commit(store, "v1", {"a.txt": b"a"})
    with pytest.raises(NotFound) as err:
        store.open_file(commit, FileEntry("no such/file.txt", 1, "0" * 64))
    assert "'no such/file.txt'" in str(err.value)
    assert commit in str(err.value)
    with pytest.raises(NotFound, match="ref 'f{64}' does not exist"):
        store.list_files("f" * 64)


def test_a_missing_repository_is_not_found(lakefs_target: LakeFSTarget) -> None:
    store = lakefs_target.store("lakefs://no-such-repo-mlops/main/ds")
    with pytest.raises(NotFound) as err:
        _commit(store, "v1", {"a.txt": b"a"})
    message = str(err.value)
    assert "'no-such-repo-mlops' does not exist at" in message
    assert store.endpoint in message
    assert "lakectl repo create lakefs://no-such-repo-mlops" in message
    with pytest.raises(NotFound, match="no-such-repo-mlops"):
        store.find_version("v1")
    with pytest.raises(NotFound, match="no-such-repo-mlops"):
        store.open_file("main", FileEntry("a.txt", 1, "0" * 64))


def test_an_unreachable_endpoint_is_a_storage_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    store = LakeFSCommitStore(
        "lakefs://repo1/main",
        endpoint=f"http://127.0.0.1:{port}",
        access_key_id="AKIA",
        secret_access_key="secret",
    )
    for call in (
        lambda: _commit(store, "v1", {"a.txt": b"a"}),
        lambda: store.find_version("v1"),
        lambda: store.list_files("main"),
        lambda: store.open_file("main", FileEntry("a.txt", 1, "0" * 64)),
    ):
        with pytest.raises(
            StorageError, match=f"Cannot reach lakeFS at http://127.0.0.1:{port}/api/v1"
        ):
            call()


def test_wrong_credentials_are_a_storage_error(lakefs_target: LakeFSTarget) -> None:
    store = LakeFSCommitStore(
        lakefs_target.new_branch_uri(),
        endpoint=lakefs_target.endpoint,
        access_key_id="AKIAWRONG",
        secret_access_key="wrong",
    )
    with pytest.raises(StorageError, match="rejected access key 'AKIAWRONG'"):
        store.find_version("v1")


def test_connection_settings_come_from_the_environment(
    lakefs_target: LakeFSTarget, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    for name in (
        "LAKEFS_ENDPOINT", "LAKEFS_ACCESS_KEY_ID", "LAKEFS_SECRET_ACCESS_KEY",
        "LAKECTL_SERVER_ENDPOINT_URL", "LAKECTL_CREDENTIALS_ACCESS_KEY_ID",
        "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY", "LAKECTL_CREDENTIALS_SESSION_TOKEN",
        "LAKECTL_CREDENTIALS_PROVIDER_TYPE",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LAKECTL_CONFIG_FILE", str(tmp_path / "no-lakectl.yaml"))
    uri = lakefs_target.new_branch_uri()
    with pytest.raises(InvalidInput, match="set LAKEFS_ENDPOINT, LAKEFS_ACCESS_KEY_ID"):
        LakeFSCommitStore(uri)

    monkeypatch.setenv("LAKEFS_ENDPOINT", lakefs_target.endpoint)
    with pytest.raises(InvalidInput, match=r"access_key_id= \(or LAKEFS_ACCESS_KEY_ID\)"):
        LakeFSCommitStore(uri)

    # the lakectl names, which the SDK reads itself, work on their own
    monkeypatch.delenv("LAKEFS_ENDPOINT")
    monkeypatch.setenv("LAKECTL_SERVER_ENDPOINT_URL", lakefs_target.endpoint)
    monkeypatch.setenv("LAKECTL_CREDENTIALS_ACCESS_KEY_ID", lakefs_target.access_key_id)
    monkeypatch.setenv("LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY", lakefs_target.secret_access_key)
    assert LakeFSCommitStore(uri).find_version("v1") is None

    monkeypatch.setenv("LAKEFS_ENDPOINT", lakefs_target.endpoint)
    monkeypatch.setenv("LAKEFS_ACCESS_KEY_ID", lakefs_target.access_key_id)
    monkeypatch.setenv("LAKEFS_SECRET_ACCESS_KEY", lakefs_target.secret_access_key)
    monkeypatch.setenv("LAKECTL_SERVER_ENDPOINT_URL", "http://127.0.0.1:9")  # LAKEFS_* win
    store = LakeFSCommitStore(uri)
    assert store.endpoint == lakefs_target.endpoint + "/api/v1"
    commit = _commit(store, "v1", {"a.txt": b"a"})
    assert store.find_version("v1") == commit


def test_uris_and_entries_are_checked(lakefs_target: LakeFSTarget) -> None:
    assert parse_lakefs_uri("lakefs://repo1/main") == ("repo1", "main", "")
    assert parse_lakefs_uri("lakefs://repo1/main/a/b/") == ("repo1", "main", "a/b")
    for bad in ("s3://repo1/main", "lakefs://repo1", "lakefs:///main", "lakefs://repo1/main/../x"):
        with pytest.raises(InvalidInput, match="lakefs://<repo>/<branch>|without"):
            parse_lakefs_uri(bad)
    store = lakefs_target.store(lakefs_target.new_branch_uri("ds/"))
    assert store.uri.endswith("/ds")
    for path in ("/abs.txt", "a/../b.txt", "../up.txt", "./a.txt", ""):
        with pytest.raises(InvalidInput, match="Dataset file path"):
            _commit(store, "v1", {path: b"x"})
    entry = FileEntry("a.txt", 1, "0" * 64)
    with pytest.raises(InvalidInput, match="appears twice"):
        store.commit_version("d", "v1", [entry, entry], _reader({"a.txt": b"a"}), "m", {})
    with pytest.raises(InvalidInput, match=r"\['mlops-version-id'\] are the store's own"):
        store.commit_version("d", "v1", [], _reader({}), "m", {"mlops-version-id": "x"})
    # an entry whose size disagrees with the bytes read uploads nothing
    before = _upload_count(lakefs_target)
    with pytest.raises(StorageError, match="gave 3 bytes where its entry says 1"):
        store.commit_version("d", "v1", [entry], _reader({"a.txt": b"abc"}), "m", {})
    assert _uploads(lakefs_target, before) in (None, [])

    # a source that cannot be read is named as such, not as a lakeFS failure
    def missing(entry: FileEntry) -> IO[bytes]:
        raise FileNotFoundError(2, "No such file or directory", entry.path)

    with pytest.raises(StorageError, match="Reading 'a.txt' to upload it to lakefs://"):
        store.commit_version("d", "v1", [entry], missing, "m", {})
    assert _uploads(lakefs_target, before) in (None, [])


def test_without_the_sdk_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lakefs", None)
    with pytest.raises(InvalidInput, match=r"pip install 'prefect-mlops\[lakefs\]'"):
        LakeFSCommitStore("lakefs://repo1/main", endpoint="http://x", access_key_id="a",
                          secret_access_key="b")  # fmt: skip
