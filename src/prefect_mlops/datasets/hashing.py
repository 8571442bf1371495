"""Content digests of files, fast: whole small files in one read, large files streamed once
while content-defined chunking cuts them (pyfastcdc), and a stat cache so that re-versioning
a tree hashes only what changed.

A file that changes while it is read (its size or mtime moved) is read again, up to three
times, then refused: a digest always describes bytes that were really there.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from prefect_mlops.core.errors import InvalidInput, StorageError
from prefect_mlops.datasets.entities import Chunk
from prefect_mlops.datasets.scan import LocalFile

#: Chunks average about 1 MiB (between 256 KiB and 4 MiB), so a 1 MiB append to a large
#: file stores a few MiB of new chunks, and a 1 GiB file is about a thousand objects.
CHUNK_AVG = 1 << 20
_BLOCK = 32 << 20
_RETRIES = 3
RECIPE_HEADER = b"prefect-mlops-chunks 1\n"


class FileChanged(InvalidInput):
    """A file kept changing while it was read."""


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 hex of a file's bytes, read through one reused 4 MiB buffer."""
    digest = hashlib.sha256()
    buffer = bytearray(4 << 20)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as source:
        while n := source.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def _same(f: LocalFile, st: os.stat_result) -> bool:
    return st.st_size == f.size and st.st_mtime_ns == f.mtime_ns


def _changed(f: LocalFile) -> FileChanged:
    return FileChanged(
        f"{f.path!r} changed while it was read ({_RETRIES} tries); nothing was created. "
        "Version it once whatever writes it has finished."
    )


def read_small(f: LocalFile) -> tuple[LocalFile, bytes]:
    """The bytes of a small file and its stat as they were read (re-read if it moved)."""
    for _ in range(_RETRIES):
        try:
            with open(f.abs_path, "rb") as src:
                data = src.read()
            st = os.stat(f.abs_path)
        except PermissionError:
            raise InvalidInput(
                f"{f.path!r} ({f.abs_path}) cannot be read: permission denied; nothing was "
                "created. Make it readable or exclude it."
            ) from None
        except FileNotFoundError:
            raise _changed(f) from None
        if len(data) == st.st_size and _same(f, st):
            return f, data
        f = LocalFile(f.path, f.abs_path, st.st_size, st.st_mtime_ns, st.st_ino, f.mode)
    raise _changed(f)


def encode_recipe(chunks: list[Chunk]) -> bytes:
    return RECIPE_HEADER + "".join(f"{c.digest}\t{c.size}\n" for c in chunks).encode()


def decode_recipe(data: bytes, digest: str) -> list[Chunk]:
    if not data.startswith(RECIPE_HEADER):
        raise StorageError(f"The chunk list of {digest} is damaged; run `datasets verify`.")
    out = []
    for line in data[len(RECIPE_HEADER) :].decode().splitlines():
        d, size = line.split("\t")
        out.append(Chunk(d, int(size)))
    return out


def chunk_file(
    f: LocalFile, put: Callable[[str, memoryview], object]
) -> tuple[LocalFile, str, list[Chunk]]:
    """Stream a large file once: its content digest (on a second core) and its chunks, each
    handed to ``put(digest, bytes)`` as it is cut. Memory: two blocks of 32 MiB."""
    from pyfastcdc import FastCDC

    for _ in range(_RETRIES):
        cdc = FastCDC(CHUNK_AVG)
        whole = hashlib.sha256()
        chunks: list[Chunk] = []
        with ThreadPoolExecutor(1, thread_name_prefix="prefect-mlops-digest") as pool:
            try:
                src = open(f.abs_path, "rb", buffering=0)  # noqa: SIM115
            except PermissionError:
                raise InvalidInput(
                    f"{f.path!r} ({f.abs_path}) cannot be read: permission denied; nothing "
                    "was created. Make it readable or exclude it."
                ) from None
            with src:
                carry = b""
                pending = None
                while True:
                    block = src.read(_BLOCK)
                    eof = not block
                    if block:
                        if pending is not None:
                            pending.result()
                        pending = pool.submit(whole.update, block)
                    buf = carry + block if carry else block
                    if not buf:
                        break
                    view = memoryview(buf)
                    cuts = list(cdc.cut_buf(buf))
                    if not eof and len(cuts) > 1:
                        last = cuts.pop()
                        carry = bytes(view[last.offset :])
                    elif not eof:
                        carry, cuts = bytes(buf), []
                    else:
                        carry = b""
                    for c in cuts:
                        piece = view[c.offset : c.offset + c.length]
                        d = hashlib.sha256(piece).hexdigest()
                        put(d, piece)
                        chunks.append(Chunk(d, c.length))
                    if eof:
                        break
                if pending is not None:
                    pending.result()
            st = os.stat(f.abs_path)
        size = sum(c.size for c in chunks)
        if size == st.st_size and _same(f, st):
            return f, whole.hexdigest(), chunks
        f = LocalFile(f.path, f.abs_path, st.st_size, st.st_mtime_ns, st.st_ino, f.mode)
    raise _changed(f)


@dataclass
class _Cached:
    inode: int
    size: int
    mtime_ns: int
    digest: str


class StatCache:
    """(path, size, mtime_ns, inode) → digest for one source folder, in one file under the
    home. An entry modified within ``RACY_NS`` of when the cache was written is not trusted
    (a second write in the same timestamp tick would not show)."""

    RACY_NS = 100_000_000

    def __init__(self, home: Path, root: str) -> None:
        key = hashlib.sha256(root.encode()).hexdigest()[:24]
        self.file = home / "datasets" / "statcache" / f"{key}.tsv"
        self._entries: dict[str, _Cached] = {}
        self._written_ns = 0
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        try:
            lines = self.file.read_text("utf-8").split("\n")
        except (FileNotFoundError, UnicodeDecodeError):
            return
        try:
            self._written_ns = int(lines[0])
            for line in lines[1:]:
                if line:
                    ino, size, mtime, digest, path = line.split("\t", 4)
                    self._entries[path] = _Cached(int(ino), int(size), int(mtime), digest)
        except ValueError:
            self._entries.clear()  # a damaged cache only costs re-hashing

    def lookup(self, f: LocalFile) -> str | None:
        c = self._entries.get(f.path)
        if (
            c is None
            or c.size != f.size
            or c.mtime_ns != f.mtime_ns
            or c.inode != f.inode
            or f.mtime_ns + self.RACY_NS >= self._written_ns
        ):
            return None
        return c.digest

    def save(self, files: list[tuple[LocalFile, str]]) -> None:
        """Replace the cache with ``files`` (the tree as just versioned)."""
        if any("\n" in f.path or "\t" in f.path for f, _ in files):
            files = [(f, d) for f, d in files if "\n" not in f.path and "\t" not in f.path]
        lines = [str(time.time_ns())]
        lines.extend(f"{f.inode}\t{f.size}\t{f.mtime_ns}\t{d}\t{f.path}" for f, d in files)
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text("\n".join(lines) + "\n", "utf-8")
            os.replace(tmp, self.file)
        except OSError:
            pass  # the cache is an optimisation: failing to save it loses nothing
