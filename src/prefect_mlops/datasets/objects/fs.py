"""Object stores on a local folder (hardlinks, atomic renames) and on any fsspec file system
(S3 and the like: conditional ``If-None-Match`` PUTs where the file system offers them)."""

from __future__ import annotations

import os
import posixpath
import stat
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from prefect_mlops.core.errors import NotFound, StorageError
from prefect_mlops.datasets.objects.base import StoredObject, object_key, recipe_key

_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


class LocalObjectStore:
    """Objects as read-only files under a local folder, each written to a temporary name and
    renamed into place, so a reader never sees part of one."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)
        self._dirs: set[str] = set()

    def _path(self, digest: str) -> str:
        return os.path.join(self.uri, object_key(digest))

    def has(self, digest: str) -> bool:
        try:
            os.utime(self._path(digest))  # recently used: a concurrent gc keeps it
        except FileNotFoundError:
            return False
        except PermissionError:
            return os.path.exists(self._path(digest))
        return True

    def has_many(self, digests: list[str]) -> set[str]:
        return {d for d in digests if self.has(d)}

    def _write(self, final: str, write: Any) -> None:
        parent = os.path.dirname(final)
        if parent not in self._dirs:
            os.makedirs(parent, exist_ok=True)
            self._dirs.add(parent)
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
            os.chmod(tmp, _READ_ONLY)
            os.replace(tmp, final)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def put_bytes(self, digest: str, data: bytes | memoryview) -> bool:
        final = self._path(digest)
        if self.has(digest):
            return False
        try:
            self._write(final, lambda out: out.write(data))
        except OSError as exc:
            raise StorageError(f"Writing object {digest} to {self.uri} failed: {exc}") from exc
        return True

    def put_file(self, digest: str, path: Path, offset: int = 0, length: int | None = None) -> bool:
        if self.has(digest):
            return False

        def copy(out: IO[bytes]) -> None:
            with open(path, "rb") as src:
                src.seek(offset)
                remaining = length
                while remaining is None or remaining > 0:
                    block = src.read(1 << 20 if remaining is None else min(1 << 20, remaining))
                    if not block:
                        break
                    out.write(block)
                    if remaining is not None:
                        remaining -= len(block)

        try:
            self._write(self._path(digest), copy)
        except OSError as exc:
            raise StorageError(f"Writing object {digest} to {self.uri} failed: {exc}") from exc
        return True

    def open(self, digest: str) -> IO[bytes]:
        try:
            return open(self._path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"Object {digest} is missing from {self.uri}.") from None

    def local_path(self, digest: str) -> Path | None:
        return Path(self._path(digest))

    def _list(self, top: str) -> Iterator[StoredObject]:
        base = os.path.join(self.uri, top, "sha256")
        if not os.path.isdir(base):
            return
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                st = os.stat(os.path.join(dirpath, name))
                yield StoredObject(name, st.st_size, st.st_mtime)

    def list_objects(self) -> Iterator[StoredObject]:
        return self._list("objects")

    def delete(self, digest: str) -> None:
        try:
            os.unlink(self._path(digest))
        except FileNotFoundError:
            pass

    def put_recipe(self, digest: str, data: bytes) -> None:
        final = os.path.join(self.uri, recipe_key(digest))
        if os.path.exists(final):
            os.utime(final)
            return
        self._write(final, lambda out: out.write(data))

    def get_recipe(self, digest: str) -> bytes | None:
        try:
            with open(os.path.join(self.uri, recipe_key(digest)), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def list_recipes(self) -> Iterator[StoredObject]:
        return self._list("recipes")

    def delete_recipe(self, digest: str) -> None:
        try:
            os.unlink(os.path.join(self.uri, recipe_key(digest)))
        except FileNotFoundError:
            pass


class FsspecObjectStore:
    """Objects on an fsspec file system (``s3://bucket/prefix``). A PUT is one request, so
    an object appears whole or not at all; where the file system supports it (S3), the write
    is conditional (``If-None-Match: *``) and never replaces an object."""

    def __init__(self, uri: str, fs: Any = None) -> None:
        from fsspec.core import url_to_fs

        self.uri = uri.rstrip("/")
        if fs is None:
            fs, root = url_to_fs(self.uri)
        else:
            root = self.uri.split("://", 1)[-1]
        self.fs = fs
        self.root = root.rstrip("/")
        self._create_mode = True

    def _full(self, key: str) -> str:
        return posixpath.join(self.root, key)

    def _fail(self, what: str, exc: BaseException) -> StorageError:
        return StorageError(f"{what} on {self.uri} failed: {exc}. Check the credentials and URL.")

    def has(self, digest: str) -> bool:
        try:
            return bool(self.fs.exists(self._full(object_key(digest))))
        except OSError as exc:
            raise self._fail(f"Looking up object {digest}", exc) from exc

    def has_many(self, digests: list[str]) -> set[str]:
        if not digests:
            return set()
        with ThreadPoolExecutor(16, thread_name_prefix="prefect-mlops-has") as pool:
            found = pool.map(self.has, digests)
            return {d for d, ok in zip(digests, found, strict=True) if ok}

    def _put(self, key: str, data: bytes) -> None:
        path = self._full(key)
        try:
            if self._create_mode:
                try:
                    self.fs.pipe_file(path, data, mode="create")
                    return
                except FileExistsError:
                    return
                except (TypeError, NotImplementedError, ValueError):
                    self._create_mode = False  # this file system has no conditional writes
            self.fs.pipe_file(path, data)
        except OSError as exc:
            if "PreconditionFailed" in str(exc) or "412" in str(exc):
                return  # written by someone else meanwhile: same bytes
            raise self._fail(f"Writing {key}", exc) from exc

    def put_bytes(self, digest: str, data: bytes | memoryview) -> bool:
        if self.has(digest):
            return False
        self._put(object_key(digest), bytes(data))
        return True

    def put_file(self, digest: str, path: Path, offset: int = 0, length: int | None = None) -> bool:
        if self.has(digest):
            return False
        with open(path, "rb") as src:
            src.seek(offset)
            data = src.read() if length is None else src.read(length)
        self._put(object_key(digest), data)
        return True

    def open(self, digest: str) -> IO[bytes]:
        try:
            return self.fs.open(self._full(object_key(digest)), "rb")
        except FileNotFoundError:
            raise NotFound(f"Object {digest} is missing from {self.uri}.") from None
        except OSError as exc:
            raise self._fail(f"Reading object {digest}", exc) from exc

    def local_path(self, digest: str) -> Path | None:
        return None

    def _list(self, top: str) -> Iterator[StoredObject]:
        base = self._full(f"{top}/sha256")
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._fail(f"Listing {top}", exc) from exc
        for path, info in found.items():
            modified = info.get("LastModified") or info.get("mtime") or info.get("created")
            when = modified.timestamp() if hasattr(modified, "timestamp") else float(modified or 0)
            yield StoredObject(posixpath.basename(path), int(info.get("size") or 0), when)

    def list_objects(self) -> Iterator[StoredObject]:
        return self._list("objects")

    def delete(self, digest: str) -> None:
        try:
            self.fs.rm_file(self._full(object_key(digest)))
        except FileNotFoundError:
            pass

    def put_recipe(self, digest: str, data: bytes) -> None:
        self._put(recipe_key(digest), data)

    def get_recipe(self, digest: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._full(recipe_key(digest)))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._fail(f"Reading the chunk list of {digest}", exc) from exc

    def list_recipes(self) -> Iterator[StoredObject]:
        return self._list("recipes")

    def delete_recipe(self, digest: str) -> None:
        try:
            self.fs.rm_file(self._full(recipe_key(digest)))
        except FileNotFoundError:
            pass
