"""Turning a folder into stored objects and entries: every file hashed once (or not at all
when the stat cache knows it), stored unless already present, in parallel, with a progress
bar of bytes per second. Large files are chunked as they are read."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from prefect_mlops.datasets.entities import CHUNK_THRESHOLD, FileEntry
from prefect_mlops.datasets.hashing import (
    StatCache,
    chunk_file,
    encode_recipe,
    read_small,
)
from prefect_mlops.datasets.objects.base import ObjectStore
from prefect_mlops.datasets.scan import LocalFile

Progress = Callable[[int], object]


@dataclass
class IngestResult:
    """The entries of the tree and what storing them cost."""

    entries: list[FileEntry]
    hashed_files: int
    hashed_bytes: int
    stored_objects: int
    stored_bytes: int


def _workers() -> int:
    return min(32, (os.cpu_count() or 2) * 4)


def ingest(
    files: list[LocalFile],
    store: ObjectStore,
    cache: StatCache | None,
    known: set[str],
    chunk_threshold: int = CHUNK_THRESHOLD,
    advance: Progress | None = None,
) -> IngestResult:
    """Store ``files``; ``known`` holds digests already in ``store`` (a parent's)."""
    entries: dict[str, FileEntry] = {}
    seen: list[tuple[LocalFile, str]] = []
    counters = {"hashed_files": 0, "hashed_bytes": 0, "stored_objects": 0, "stored_bytes": 0}

    lock = threading.Lock()

    def count(**amounts: int) -> None:
        with lock:
            for key, amount in amounts.items():
                counters[key] += amount

    def put(digest: str, data: bytes | memoryview) -> None:
        if digest in known:
            return
        if store.put_bytes(digest, data):
            count(stored_objects=1, stored_bytes=len(data))

    def done(f: LocalFile, digest: str, chunked: bool) -> None:
        entries[f.path] = FileEntry(f.path, f.size, digest, f.mode, chunked)
        seen.append((f, digest))
        if advance is not None:
            advance(f.size)

    def small(f: LocalFile) -> None:
        digest = cache.lookup(f) if cache else None
        if digest is not None and (digest in known or store.has(digest)):
            done(f, digest, False)
            return
        f, data = read_small(f)
        digest = hashlib.sha256(data).hexdigest()
        count(hashed_files=1, hashed_bytes=len(data))
        put(digest, data)
        done(f, digest, False)

    def large(f: LocalFile) -> None:
        digest = cache.lookup(f) if cache else None
        if digest is not None and (digest in known or store.get_recipe(digest) is not None):
            done(f, digest, True)
            return
        f, digest, chunks = chunk_file(f, put)
        count(hashed_files=1, hashed_bytes=f.size)
        store.put_recipe(digest, encode_recipe(chunks))
        done(f, digest, True)

    smalls = [f for f in files if f.size <= chunk_threshold]
    larges = [f for f in files if f.size > chunk_threshold]
    with ThreadPoolExecutor(_workers(), thread_name_prefix="prefect-mlops-ingest") as pool:
        futures = [pool.submit(small, f) for f in smalls]
        try:
            for f in larges:  # one at a time: memory stays two blocks per large file
                large(f)
        finally:
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [x for x in finished if x.exception() is not None]
            if failed:
                for x in futures:
                    x.cancel()
                raise failed[0].exception()  # type: ignore[misc]
    if cache is not None:
        cache.save(seen)
    return IngestResult([entries[f.path] for f in files], **counters)


def digests_of(entries: Iterable[FileEntry]) -> set[str]:
    return {e.digest for e in entries if not e.chunked}


def local_file(path: Path) -> LocalFile:
    st = path.stat()
    return LocalFile(path.name, str(path), st.st_size, st.st_mtime_ns, st.st_ino, 0o644)
