"""Artifact storage: a local folder, any fsspec URL, or a Prefect storage block.

Files are streamed in 1 MiB chunks (never read whole into memory) and hashed on the way, so
every stored artifact has a size and a sha256. Roots are URIs:

- ``/abs/folder`` or ``file:///abs/folder`` — the local file system;
- ``s3://bucket/prefix``, ``memory://...`` — any fsspec protocol that is installed;
- ``block://local-file-system/my-block/sub/path`` — a Prefect ``LocalFileSystem``,
  ``RemoteFileSystem`` or other ``WritableFileSystem`` block, loaded by slug.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Protocol

from prefect_mlops.core.errors import InvalidInput, StorageError

CHUNK = 1 << 20
BLOCK_SCHEME = "block://"
_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]*/[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def artifact_root_uri(setting: str) -> str:
    """Turn the ``artifact_storage`` setting into a root URI."""
    if "://" in setting:
        return setting.rstrip("/")
    if _SLUG_RE.match(setting) and not Path(setting).exists():
        return BLOCK_SCHEME + setting
    return str(Path(setting).expanduser().resolve())


class Backend(Protocol):
    def open_write(self, path: str) -> IO[bytes]: ...
    def commit(self, handle: IO[bytes], path: str) -> None: ...
    def open_read(self, path: str) -> IO[bytes]: ...


class FsspecBackend:
    """Any fsspec file system; local paths get an atomic rename on commit."""

    def __init__(self, fs: Any, root: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))

    def _full(self, path: str) -> str:
        return f"{self.root}/{path}" if path else self.root

    def open_write(self, path: str) -> IO[bytes]:
        full = self._full(path)
        if self.local:
            os.makedirs(os.path.dirname(full), exist_ok=True)
            return tempfile.NamedTemporaryFile(
                dir=os.path.dirname(full), prefix=".upload-", delete=False
            )
        parent = posixpath.dirname(full)
        if parent:
            self.fs.makedirs(parent, exist_ok=True)
        return self.fs.open(full, "wb")

    def commit(self, handle: IO[bytes], path: str) -> None:
        handle.close()
        if self.local:
            os.replace(handle.name, self._full(path))

    def open_read(self, path: str) -> IO[bytes]:
        return self.fs.open(self._full(path), "rb")


class BlockBackend:
    """A ``WritableFileSystem`` block without fsspec access: whole-file ``write_path``."""

    def __init__(self, block: Any, root: str) -> None:
        self.block = block
        self.root = root.strip("/")

    def _full(self, path: str) -> str:
        return posixpath.join(self.root, path) if self.root else path

    def open_write(self, path: str) -> IO[bytes]:
        return tempfile.SpooledTemporaryFile(max_size=64 * CHUNK)

    def commit(self, handle: IO[bytes], path: str) -> None:
        handle.seek(0)
        self.block.write_path(self._full(path), handle.read(), _sync=True)
        handle.close()

    def open_read(self, path: str) -> IO[bytes]:
        return io.BytesIO(self.block.read_path(self._full(path), _sync=True))


def _block_backend(spec: str) -> Backend:
    from prefect.blocks.core import Block

    parts = spec.split("/")
    if len(parts) < 2:
        raise InvalidInput(
            f"Artifact storage {BLOCK_SCHEME + spec!r} must name a block as "
            "'block-type-slug/block-name', e.g. 'local-file-system/mlops-artifacts'."
        )
    slug, sub = "/".join(parts[:2]), "/".join(parts[2:])
    try:
        block: Any = Block.load(slug, _sync=True)  # type: ignore[call-arg]
    except (ValueError, RuntimeError) as exc:
        raise StorageError(
            f"Cannot load the Prefect storage block {slug!r}: {exc}. Create it first (e.g. "
            f"`LocalFileSystem(basepath=...).save('{parts[1]}')`) or set "
            "PREFECT_MLOPS_ARTIFACT_STORAGE to a folder."
        ) from exc
    basepath = getattr(block, "basepath", None)
    fs = getattr(block, "filesystem", None)
    type_slug = block.get_block_type_slug()
    if type_slug == "local-file-system":
        import fsspec

        base = str(Path(basepath or ".").expanduser().resolve())
        return FsspecBackend(fsspec.filesystem("file"), posixpath.join(base, sub).rstrip("/"))
    if fs is not None and basepath:
        from fsspec.core import split_protocol

        protocol, rest = split_protocol(basepath)
        root = posixpath.join(rest, sub) if sub else rest
        return FsspecBackend(fs, root if protocol in (None, "file") else f"{protocol}://{root}")
    if hasattr(block, "write_path") and hasattr(block, "read_path"):
        return BlockBackend(block, sub)
    raise InvalidInput(
        f"Prefect block {slug!r} ({type(block).__name__}) cannot store files; use a "
        "LocalFileSystem, RemoteFileSystem or another WritableFileSystem block."
    )


@lru_cache(maxsize=64)
def _backend_for_root(root: str) -> Backend:
    if root.startswith(BLOCK_SCHEME):
        return _block_backend(root[len(BLOCK_SCHEME) :])
    import fsspec
    from fsspec.core import url_to_fs

    if "://" not in root:
        return FsspecBackend(fsspec.filesystem("file"), root)
    fs, path = url_to_fs(root)
    if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        return FsspecBackend(fs, path)
    return FsspecBackend(fs, root)


def _split_root(uri: str) -> tuple[Backend, str]:
    """The backend for a storage root plus the path under it for ``uri``."""
    if uri.startswith(BLOCK_SCHEME):
        parts = uri[len(BLOCK_SCHEME) :].split("/")
        return _backend_for_root(BLOCK_SCHEME + "/".join(parts[:2])), "/".join(parts[2:])
    return _backend_for_root(uri), ""


class ArtifactLocation:
    """Files under one URI (a run's artifact folder), read and written by relative path."""

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/")
        self._backend, self._prefix = _split_root(self.uri)

    def _path(self, rel: str) -> str:
        return posixpath.join(self._prefix, rel) if self._prefix else rel

    def write_stream(self, rel: str, source: IO[bytes]) -> tuple[int, str]:
        """Copy ``source`` to ``rel`` in chunks; returns (size, sha256 hex)."""
        digest = hashlib.sha256()
        size = 0
        try:
            handle = self._backend.open_write(self._path(rel))
            try:
                if isinstance(source, (io.BufferedReader, io.FileIO)):
                    # Files: reuse one buffer instead of allocating a chunk per read.
                    buffer = bytearray(CHUNK)
                    view = memoryview(buffer)
                    while n := source.readinto(buffer):
                        digest.update(view[:n])
                        handle.write(view[:n])
                        size += n
                else:
                    while chunk := source.read(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        handle.write(chunk)
            except BaseException:
                _abandon(handle)
                raise
            self._backend.commit(handle, self._path(rel))
        except OSError as exc:
            raise StorageError(f"Writing artifact {rel!r} to {self.uri} failed: {exc}") from exc
        return size, digest.hexdigest()

    def write_file(self, rel: str, local_path: str | os.PathLike[str]) -> tuple[int, str]:
        """Copy a local file to ``rel``; returns (size, sha256 hex). Onto the local file
        system the kernel copies while this thread hashes (two cores, not one, so no slower
        than a plain copy); a file that changes meanwhile is refused, never stored with a
        digest that is not its content's."""
        backend = self._backend
        if not (isinstance(backend, FsspecBackend) and backend.local):
            with open(local_path, "rb") as source:
                return self.write_stream(rel, source)
        path = self._path(rel)
        try:
            before = os.stat(local_path)
            handle = backend.open_write(path)
            handle.close()
            try:
                with ThreadPoolExecutor(1, thread_name_prefix="prefect-mlops-copy") as pool:
                    copied = pool.submit(shutil.copyfile, local_path, handle.name)
                    size, digest = _hash_file(local_path)
                    copied.result()
                after = os.stat(local_path)
                if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or (
                    os.path.getsize(handle.name) != size
                ):
                    raise StorageError(
                        f"{os.fspath(local_path)!r} changed while it was stored as artifact "
                        f"{rel!r}; nothing was stored. Log it again once it is complete."
                    )
                backend.commit(handle, path)
            except BaseException:
                if os.path.exists(handle.name):
                    os.unlink(handle.name)
                raise
        except OSError as exc:
            raise StorageError(f"Writing artifact {rel!r} to {self.uri} failed: {exc}") from exc
        return size, digest

    def write_bytes(self, rel: str, data: bytes) -> tuple[int, str]:
        return self.write_stream(rel, io.BytesIO(data))

    def open_read(self, rel: str) -> IO[bytes]:
        try:
            return self._backend.open_read(self._path(rel))
        except (OSError, KeyError) as exc:
            raise StorageError(f"Reading artifact {rel!r} from {self.uri} failed: {exc}") from exc

    def download(self, rel: str, destination: str | os.PathLike[str]) -> Path:
        """Stream ``rel`` to ``destination`` (a file path); returns it."""
        return save_stream(self.open_read(rel), destination)


def save_stream(source: IO[bytes], destination: str | os.PathLike[str]) -> Path:
    """Copy ``source`` (closed afterwards) to the file ``destination`` in chunks."""
    dest = Path(destination)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with source as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, CHUNK)
    return dest


def _abandon(handle: IO[bytes]) -> None:
    """Drop a write that failed midway: never visible, not even in part. Closing an fsspec
    remote file would commit what it holds (an S3 object of the first chunks), so it is
    discarded instead (the multipart upload aborted); a local temporary file is removed."""
    discard = getattr(handle, "discard", None)
    if callable(discard):
        discard()
        return
    handle.close()
    name = getattr(handle, "name", None)
    if isinstance(name, str) and os.path.exists(name):
        os.unlink(name)


def _hash_file(path: str | os.PathLike[str]) -> tuple[int, str]:
    """(size, sha256 hex) of a local file, read through one reused buffer."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(CHUNK * 4)
    view = memoryview(buffer)
    with open(path, "rb") as source:
        while n := source.readinto(buffer):
            digest.update(view[:n])
            size += n
    return size, digest.hexdigest()


def clear_backend_cache() -> None:
    _backend_for_root.cache_clear()
