"""Dataset versions kept as lakeFS commits: ``lakefs://<repo>/<branch>[/<prefix>]``.

Each version is one commit on the branch whose tree under the prefix holds exactly the version's
files. A file's object carries user metadata ``mlops-digest`` (the `FileEntry` digest) and
``mlops-mode`` (``0o644``), so a file that is already on the branch is not uploaded again; the
commit carries ``mlops-dataset``, ``mlops-version-id`` and ``mlops-prefix``.

The branch should belong to the store: a commit takes everything staged on the branch.

Bytes go through the lakeFS server (no pre-signed URLs), so only lakeFS needs to be reachable.
An upload passes through the SDK's writer, which holds up to 32 MiB in memory and spills a larger
file to a temporary file before sending it; a read fetches 8 MiB ranges.

Needs the optional ``lakefs`` SDK: ``pip install 'prefect-mlops[lakefs]'``.
"""

from __future__ import annotations

import io
import os
import posixpath
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from prefect_mlops.core.errors import InvalidInput, MlopsError, NotFound, StorageError
from prefect_mlops.datasets.entities import FileEntry

if TYPE_CHECKING:
    import lakefs

SCHEME = "lakefs://"
DIGEST_KEY = "mlops-digest"
MODE_KEY = "mlops-mode"
DATASET_KEY = "mlops-dataset"
VERSION_KEY = "mlops-version-id"
PREFIX_KEY = "mlops-prefix"

_INSTALL = "pip install 'prefect-mlops[lakefs]'"
_READ_BUFFER = 8 << 20
_COPY_BUFFER = 1 << 20
_DELETE_BATCH = 1000  # the most paths lakeFS deletes in one request
#: each setting: the keyword, then the environment variables read in order
_SETTINGS = {
    "endpoint": ("LAKEFS_ENDPOINT", "LAKECTL_SERVER_ENDPOINT_URL"),
    "access_key_id": ("LAKEFS_ACCESS_KEY_ID", "LAKECTL_CREDENTIALS_ACCESS_KEY_ID"),
    "secret_access_key": ("LAKEFS_SECRET_ACCESS_KEY", "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY"),
}


def _import_lakefs() -> Any:
    try:
        import lakefs
    except ImportError as exc:
        raise InvalidInput(
            f"A lakefs:// dataset store needs the lakeFS SDK, which is not installed: {_INSTALL}"
        ) from exc
    return lakefs


def parse_lakefs_uri(uri: str) -> tuple[str, str, str]:
    """``lakefs://repo/branch/a/b`` -> ``("repo", "branch", "a/b")`` (prefix ``""`` if none)."""
    if not uri.startswith(SCHEME):
        raise InvalidInput(
            f"{uri!r} is not a lakeFS URI; write lakefs://<repo>/<branch>[/<prefix>]"
        )
    repo, _, rest = uri[len(SCHEME) :].partition("/")
    branch, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not repo or not branch:
        raise InvalidInput(
            f"lakeFS URI {uri!r} must name a repository and a branch: "
            "lakefs://<repo>/<branch>[/<prefix>]"
        )
    if prefix and (prefix != posixpath.normpath(prefix) or prefix.split("/")[0] == ".."):
        raise InvalidInput(
            f"lakeFS URI {uri!r} has prefix {prefix!r}; write it without '.' or '..'"
        )
    return repo, branch, prefix


def _setting(name: str, given: str | None) -> str | None:
    if given:
        return given
    for var in _SETTINGS[name]:
        if os.environ.get(var):
            return os.environ[var]
    return None


def _connect(endpoint: str | None, access_key_id: str | None, secret_access_key: str | None) -> Any:
    """A `lakefs.Client` from the arguments, then ``LAKEFS_*``, then ``LAKECTL_*``; with none
    of them set, the SDK's own search (``~/.lakectl.yaml``, a session token, an IAM role)."""
    lakefs = _import_lakefs()
    found = {
        "endpoint": _setting("endpoint", endpoint),
        "access_key_id": _setting("access_key_id", access_key_id),
        "secret_access_key": _setting("secret_access_key", secret_access_key),
    }
    missing = [name for name, value in found.items() if value is None]
    if not missing:
        return lakefs.Client(
            host=found["endpoint"],
            username=found["access_key_id"],
            password=found["secret_access_key"],
        )
    if len(missing) < len(found):
        names = ", ".join(f"{name}= (or {_SETTINGS[name][0]})" for name in missing)
        raise InvalidInput(f"The lakeFS connection is incomplete: {names} is not set; set it.")
    from lakefs.exceptions import LakeFSException

    try:
        client = lakefs.Client()
    except LakeFSException as exc:  # NoAuthenticationFound and kin
        raise InvalidInput(
            f"No lakeFS connection is configured ({type(exc).__name__}): set LAKEFS_ENDPOINT, "
            "LAKEFS_ACCESS_KEY_ID and LAKEFS_SECRET_ACCESS_KEY, or pass endpoint=, "
            "access_key_id= and secret_access_key=."
        ) from exc
    if not client.config.host:
        raise InvalidInput("No lakeFS endpoint is configured: set LAKEFS_ENDPOINT.")
    return client


class LakeFSCommitStore:
    """Dataset versions as commits on one lakeFS branch, files under an optional prefix."""

    uri: str

    def __init__(
        self,
        uri: str,
        *,
        endpoint: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        self.repo_id, self.branch_id, self.prefix = parse_lakefs_uri(uri)
        self.uri = f"{SCHEME}{self.repo_id}/{self.branch_id}"
        if self.prefix:
            self.uri += f"/{self.prefix}"
        self._client = _connect(endpoint, access_key_id, secret_access_key)
        #: the API URL requests go to, as messages name it
        self.endpoint: str = self._client.config.host
        self._branch_ready = False

    # -- writing ---------------------------------------------------------------------------

    def commit_version(
        self,
        dataset: str,
        version_id: str,
        entries: Sequence[FileEntry],
        read: Callable[[FileEntry], IO[bytes]],
        message: str,
        metadata: Mapping[str, str],
    ) -> str:
        """Make the branch hold exactly ``entries`` under the prefix and commit; returns the
        commit id. A file whose object already has this digest and mode is not uploaded; a
        head commit of this version with nothing changed since is returned as it is."""
        wanted = _check_entries(entries)
        reserved = sorted({DATASET_KEY, VERSION_KEY, PREFIX_KEY} & set(metadata))
        if reserved:
            raise InvalidInput(
                f"Commit metadata keys {reserved} are the store's own; rename them in metadata."
            )
        with self._calls(f"committing version {version_id!r} of dataset {dataset!r}"):
            branch = self._ensure_branch()
            present = self._stamps(branch)
            for entry in entries:
                if present.get(entry.path) != (entry.digest, oct(entry.mode)):
                    self._upload(branch, entry, read)
            stale = [self._key(path) for path in present if path not in wanted]
            for start in range(0, len(stale), _DELETE_BATCH):
                branch.delete_objects(stale[start : start + _DELETE_BATCH])
            changed = next(iter(branch.uncommitted(max_amount=1)), None) is not None
            if not changed:
                head = branch.get_commit()
                if self._is_version(head.metadata, version_id):
                    return str(head.id)
            commit_metadata = {
                DATASET_KEY: dataset,
                VERSION_KEY: version_id,
                PREFIX_KEY: self.prefix,
                **metadata,
            }
            ref = branch.commit(message, metadata=commit_metadata, allow_empty=True)
            return str(ref.id)

    def _ensure_branch(self) -> lakefs.Branch:
        from lakefs.exceptions import NotFoundException

        branch = self._repo().branch(self.branch_id)
        if self._branch_ready:
            return branch
        default = self._require_repo().default_branch
        try:
            _ = branch.head  # a GET of the branch
        except NotFoundException:
            branch.create(default, exist_ok=True)
        self._branch_ready = True
        return branch

    def _upload(
        self, branch: lakefs.Branch, entry: FileEntry, read: Callable[[FileEntry], IO[bytes]]
    ) -> None:
        stamp = {DIGEST_KEY: entry.digest, MODE_KEY: oct(entry.mode)}
        obj = branch.object(self._key(entry.path))
        try:
            src = read(entry)
        except OSError as exc:
            raise self._source_error(entry, exc) from exc
        with src, obj.writer(mode="wb", pre_sign=False, metadata=stamp) as dst:
            while True:  # raising inside the writer discards the upload
                try:
                    chunk = src.read(_COPY_BUFFER)
                except OSError as exc:
                    raise self._source_error(entry, exc) from exc
                if not chunk:
                    break
                dst.write(chunk)
            if dst.tell() != entry.size:
                raise StorageError(
                    f"{entry.path!r} gave {dst.tell()} bytes where its entry says {entry.size}; "
                    f"nothing was uploaded to {self.uri}. Rebuild the entry from the file as it "
                    "is now."
                )

    def _source_error(self, entry: FileEntry, exc: OSError) -> StorageError:
        return StorageError(
            f"Reading {entry.path!r} to upload it to {self.uri} failed: {exc}; nothing was "
            "uploaded for it. Check the file is still there and readable."
        )

    def _stamps(self, ref: lakefs.Reference) -> dict[str, tuple[str | None, str | None]]:
        """(digest, mode) metadata of each object under the prefix at ``ref``, by path."""
        return {
            rel: (_meta(info, DIGEST_KEY), _meta(info, MODE_KEY)) for rel, info in self._list(ref)
        }

    # -- reading ---------------------------------------------------------------------------

    def open_file(self, ref: str, entry: FileEntry) -> IO[bytes]:
        """A stream of ``entry``'s bytes at commit (or branch) ``ref``."""
        from lakefs.exceptions import NotFoundException

        obj = self._repo().ref(ref).object(self._key(entry.path))
        what = f"reading {entry.path!r} at {ref!r}"
        with self._calls(what):
            try:
                obj.stat()
            except NotFoundException:
                self._require_repo()
                raise NotFound(
                    f"{entry.path!r} is not in lakeFS ref {ref!r} of {self.uri} (at "
                    f"{self.endpoint}); the ref or the file does not exist. Use a commit id "
                    "that `find_version` returns."
                ) from None
            reader = obj.reader(mode="rb", pre_sign=False)
        return io.BufferedReader(_ObjectStream(reader, self, what), buffer_size=_READ_BUFFER)

    def find_version(self, version_id: str) -> str | None:
        """The id of the branch's newest commit of ``version_id`` (under this prefix), or None."""
        from lakefs.exceptions import NotFoundException

        with self._calls(f"looking for version {version_id!r}"):
            try:
                for commit in self._repo().branch(self.branch_id).log():
                    if self._is_version(commit.metadata, version_id):
                        return str(commit.id)
            except NotFoundException:
                self._require_repo()  # a missing branch holds no versions
        return None

    def list_files(self, ref: str) -> list[tuple[str, int, str | None]]:
        """(path under the prefix, size, ``mlops-digest`` or None) of each file at ``ref``."""
        from lakefs.exceptions import NotFoundException

        with self._calls(f"listing files at {ref!r}"):
            try:
                return [
                    (rel, info.size_bytes or 0, _meta(info, DIGEST_KEY))
                    for rel, info in self._list(self._repo().ref(ref))
                ]
            except NotFoundException:
                self._require_repo()
                raise NotFound(
                    f"lakeFS ref {ref!r} does not exist in {self.uri} (at {self.endpoint}); use a "
                    "commit id that `find_version` returns."
                ) from None

    # -- plumbing --------------------------------------------------------------------------

    def _repo(self) -> lakefs.Repository:
        return _import_lakefs().Repository(self.repo_id, client=self._client)

    def _require_repo(self) -> lakefs.RepositoryProperties:
        from lakefs.exceptions import NotFoundException

        try:
            return self._repo().properties
        except NotFoundException:
            raise NotFound(
                f"lakeFS repository {self.repo_id!r} does not exist at {self.endpoint}. Create "
                f"it first: `lakectl repo create lakefs://{self.repo_id} <storage-namespace>`, "
                f"or lakefs.repository({self.repo_id!r}).create(storage_namespace=...)."
            ) from None

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def _list(self, ref: lakefs.Reference) -> Iterator[tuple[str, lakefs.ObjectInfo]]:
        cut = len(self.prefix) + 1 if self.prefix else 0
        listing = ref.objects(prefix=self.prefix + "/" if self.prefix else None, user_metadata=True)
        for info in listing:
            if isinstance(info, _import_lakefs().ObjectInfo):
                yield info.path[cut:], info

    def _is_version(self, metadata: Mapping[str, str] | None, version_id: str) -> bool:
        meta = metadata or {}
        return meta.get(VERSION_KEY) == version_id and meta.get(PREFIX_KEY, "") == self.prefix

    @contextmanager
    def _calls(self, action: str) -> Iterator[None]:
        """Turn what the SDK and urllib3 raise into `StorageError` and `NotFound`."""
        import lakefs_sdk
        import urllib3
        from lakefs.exceptions import (
            ForbiddenException,
            LakeFSException,
            NotAuthorizedException,
            NotFoundException,
        )

        try:
            yield
        except MlopsError:
            raise
        except (NotAuthorizedException, ForbiddenException, NotFoundException) as exc:
            raise self._refused(exc, action) from exc  # before OSError: some are OSErrors too
        except (urllib3.exceptions.HTTPError, ConnectionError) as exc:
            raise StorageError(
                f"Cannot reach lakeFS at {self.endpoint} while {action}: {exc}. Check that the "
                "server is running and that LAKEFS_ENDPOINT names it."
            ) from exc
        except (LakeFSException, lakefs_sdk.ApiException, OSError) as exc:
            raise StorageError(f"lakeFS at {self.endpoint} failed while {action}: {exc}") from exc

    def _refused(self, exc: Exception, action: str) -> MlopsError:
        from lakefs.exceptions import ForbiddenException, NotAuthorizedException, NotFoundException

        if isinstance(exc, NotFoundException):
            return NotFound(f"lakeFS at {self.endpoint} found nothing while {action}: {exc}")
        if isinstance(exc, ForbiddenException):
            return StorageError(
                f"lakeFS at {self.endpoint} forbade {action} for access key "
                f"{self._client.config.username!r}; grant it access to repository "
                f"{self.repo_id!r}."
            )
        if isinstance(exc, NotAuthorizedException):
            return StorageError(
                f"lakeFS at {self.endpoint} rejected access key "
                f"{self._client.config.username!r} while {action}; check LAKEFS_ACCESS_KEY_ID "
                "and LAKEFS_SECRET_ACCESS_KEY."
            )
        return StorageError(f"lakeFS at {self.endpoint} failed while {action}: {exc}")


class _ObjectStream(io.RawIOBase):
    """The SDK's object reader as a raw stream: one ranged GET per `readinto`."""

    def __init__(self, reader: Any, store: LakeFSCommitStore, action: str) -> None:
        self._reader = reader
        self._store = store
        self._action = action

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not len(view):
            return 0
        with self._store._calls(self._action):
            data = self._reader.read(len(view))
        view[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        with self._store._calls(self._action):
            return bytes(self._reader.read())

    def close(self) -> None:
        self._reader.close()
        super().close()


def _meta(info: Any, key: str) -> str | None:
    """User metadata ``key`` of an object, whatever case the server gave the key."""
    for name, value in (info.metadata or {}).items():
        if name.lower() == key:
            return str(value)
    return None


def _check_entries(entries: Sequence[FileEntry]) -> set[str]:
    paths: set[str] = set()
    for entry in entries:
        path = entry.path
        if not path or path.startswith("/") or posixpath.normpath(path) != path or path == "..":
            raise InvalidInput(
                f"Dataset file path {path!r} must be relative and normalised (no leading '/', "
                "'.' or '..'); give it relative to the dataset root."
            )
        if path.startswith("../"):
            raise InvalidInput(f"Dataset file path {path!r} leaves the dataset root; remove '..'.")
        if path in paths:
            raise InvalidInput(f"Dataset file path {path!r} appears twice; list each file once.")
        paths.add(path)
    return paths
