"""Reading a version back: one file as a verified stream, the whole version materialised
into a cache keyed by version (hardlinks from the local objects where possible), and
`verify`, which re-hashes everything. Every byte handed out has been checked against its
digest; a damaged or missing object is an error naming the file and the version."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

from prefect_mlops.core.errors import MlopsError, NotFound, StorageError
from prefect_mlops.datasets.entities import Chunk, FileEntry
from prefect_mlops.datasets.hashing import decode_recipe
from prefect_mlops.datasets.objects.base import ObjectStore
from prefect_mlops.datasets.objects.fs import LocalObjectStore

_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


class Damaged(StorageError):
    """Stored bytes do not match their digest, or are missing."""


class ObjectReader:
    """Reads objects of one version with verification. ``where`` names the version in
    errors (``iris@3f2a...``). A remote store's objects pass through ``local_cache``."""

    def __init__(self, store: ObjectStore, where: str, local_cache: LocalObjectStore) -> None:
        self.store = store
        self.where = where
        self.cache = local_cache if store.local_path("0" * 64) is None else None

    def _damaged(self, entry: FileEntry, what: str) -> Damaged:
        return Damaged(
            f"File {entry.path!r} of dataset version {self.where} is damaged: {what}. Its "
            "bytes were not used. Re-create the version from the source, or restore the object "
            "from a backup; `prefect-mlops datasets verify` lists every damaged file."
        )

    def _read_object(self, entry: FileEntry, digest: str) -> bytes:
        try:
            if self.cache is not None and self.cache.has(digest):
                with self.cache.open(digest) as f:
                    data = f.read()
                if hashlib.sha256(data).hexdigest() == digest:
                    return data
                self.cache.delete(digest)  # a damaged cached copy: fetch it again
            with self.store.open(digest) as f:
                data = f.read()
        except NotFound:
            raise self._damaged(
                entry, f"object {digest} is missing from {self.store.uri}"
            ) from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise self._damaged(entry, f"object {digest} does not hash to its name")
        if self.cache is not None:
            self.cache.put_bytes(digest, data)
        return data

    def chunks(self, entry: FileEntry) -> list[Chunk]:
        recipe = self.store.get_recipe(entry.digest)
        if recipe is None:
            raise self._damaged(entry, f"the chunk list of {entry.digest} is missing")
        return decode_recipe(recipe, entry.digest)

    def iter_bytes(self, entry: FileEntry) -> Iterator[bytes]:
        """The file's bytes, piece by piece, each verified; the whole is checked at the end."""
        if not entry.chunked:
            data = self._read_object(entry, entry.digest)
            if len(data) != entry.size:
                raise self._damaged(entry, f"{len(data)} bytes stored, {entry.size} recorded")
            yield data
            return
        whole = hashlib.sha256()
        size = 0
        for c in self.chunks(entry):
            piece = self._read_object(entry, c.digest)
            whole.update(piece)
            size += len(piece)
            yield piece
        if whole.hexdigest() != entry.digest or size != entry.size:
            raise self._damaged(entry, "its chunks do not add up to its digest")

    def open(self, entry: FileEntry) -> IO[bytes]:
        """A stream of the file, verified as it goes (a small file before the first byte)."""
        if not entry.chunked:
            return io.BytesIO(b"".join(self.iter_bytes(entry)))
        return io.BufferedReader(_IterStream(self.iter_bytes(entry)), 1 << 20)

    def write_to(self, entry: FileEntry, dest: str) -> None:
        """Write the verified file to ``dest`` (a temporary name the caller renames)."""
        with open(dest, "wb") as out:
            for piece in self.iter_bytes(entry):
                out.write(piece)
        os.chmod(dest, entry.mode)

    def link_or_write(self, entry: FileEntry, dest: str) -> None:
        """Hardlink the local object (read-only, like the object) when that is safe: a plain
        file of mode 644 verified just now; else write a verified copy."""
        src = self.store.local_path(entry.digest) if not entry.chunked else None
        if src is None and self.cache is not None and not entry.chunked:
            src = self.cache.local_path(entry.digest)
            if not self.cache.has(entry.digest):
                self._read_object(entry, entry.digest)  # fetches into the local cache
        if src is not None and entry.mode == 0o644:
            try:
                with open(src, "rb") as f:
                    ok = hashlib.sha256(f.read()).hexdigest() == entry.digest
            except FileNotFoundError:
                ok = False
                if self.cache is None:
                    raise self._damaged(entry, f"object {entry.digest} is missing") from None
            if ok:
                try:
                    os.link(src, dest)
                    return
                except OSError:
                    pass  # another file system, or links not allowed: copy
            elif self.cache is None:
                raise self._damaged(entry, f"object {entry.digest} does not hash to its name")
        self.write_to(entry, dest)


class _IterStream(io.RawIOBase):
    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            try:
                self._buffer = next(self._pieces)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buffer))
        b[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def materialize(
    reader: ObjectReader,
    entries: Sequence[FileEntry],
    target: Path,
    link: bool,
    advance: Callable[[int], object] | None = None,
) -> Path:
    """Build the version at ``target`` through a temporary sibling renamed at the end, so a
    half-made copy is never visible under ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{target.name}-{secrets.token_hex(4)}"
    tmp.mkdir()
    made: set[str] = set()

    def one(entry: FileEntry) -> None:
        dest = os.path.join(tmp, *entry.path.split("/"))
        parent = os.path.dirname(dest)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        if link:
            reader.link_or_write(entry, dest)
        else:
            reader.write_to(entry, dest)
        if advance is not None:
            advance(entry.size)

    try:
        with ThreadPoolExecutor(min(32, (os.cpu_count() or 2) * 4)) as pool:
            for _ in pool.map(one, entries):
                pass
        if target.exists():
            raise StorageError(
                f"{target} already exists; pass an empty or new folder to `local_copy`."
            )
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def verify_entries(
    reader: ObjectReader,
    entries: Sequence[FileEntry],
    advance: Callable[[int], object] | None = None,
) -> list[str]:
    """Every damaged file's message (empty when all is well): re-hashes every byte."""
    problems: list[str] = []

    def one(entry: FileEntry) -> str | None:
        try:
            for _ in reader.iter_bytes(entry):
                pass
        except MlopsError as exc:
            return str(exc)
        finally:
            if advance is not None:
                advance(entry.size)
        return None

    with ThreadPoolExecutor(min(16, (os.cpu_count() or 2) * 2)) as pool:
        for problem in pool.map(one, entries):
            if problem:
                problems.append(problem)
    return problems
