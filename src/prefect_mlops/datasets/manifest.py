"""A version's canonical manifest: its files, one line each, sorted by path.

    prefect-mlops-manifest 1
    <sha256>\t<size>\t<mode, octal>\t<path>

Paths are NFC-normalised posix paths; a backslash, tab, newline or carriage return in one is
escaped (``\\\\``, ``\\t``, ``\\n``, ``\\r``). The version id is the sha256 of these bytes, so the
same files always give the same id whichever machine, backend or chunking stored them. The
manifest is itself stored as an object under that id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from prefect_mlops.core.errors import StorageError
from prefect_mlops.datasets.entities import FileEntry

HEADER = b"prefect-mlops-manifest 1\n"
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def _escape(path: str) -> str:
    if not any(c in path for c in _ESCAPES):
        return path
    return "".join(_ESCAPES.get(c, c) for c in path)


def _unescape(text: str) -> str:
    out: list[str] = []
    chars = iter(text)
    for c in chars:
        out.append(_UNESCAPES.get(next(chars, "\\"), "\\") if c == "\\" else c)
    return "".join(out)


def sort_entries(entries: Iterable[FileEntry]) -> list[FileEntry]:
    """Entries in canonical order: by the UTF-8 bytes of their paths."""
    return sorted(entries, key=lambda e: e.path.encode("utf-8"))


def encode(entries: Sequence[FileEntry]) -> bytes:
    """The canonical bytes of ``entries`` (sorted here)."""
    lines = [HEADER]
    for e in sort_entries(entries):
        lines.append(f"{e.digest}\t{e.size}\t{e.mode:o}\t{_escape(e.path)}\n".encode())
    return b"".join(lines)


def version_id(data: bytes) -> str:
    """The id of the version whose canonical manifest is ``data``."""
    return hashlib.sha256(data).hexdigest()


def decode(data: bytes, chunk_threshold: int, where: str = "") -> list[FileEntry]:
    """The entries of a manifest; files above ``chunk_threshold`` are marked chunked."""
    if not data.startswith(HEADER):
        raise StorageError(
            f"The manifest {where or '(unnamed)'} does not start with {HEADER!r}: it is not a "
            "prefect-mlops manifest, or it is damaged. Run `prefect-mlops datasets verify`."
        )
    entries: list[FileEntry] = []
    text = data[len(HEADER) :].decode("utf-8")
    for line in text.split("\n"):
        if not line:
            continue
        digest, size_text, mode_text, path = line.split("\t", 3)
        size = int(size_text)
        if "\\" in path:
            path = _unescape(path)
        entries.append(FileEntry(path, size, digest, int(mode_text, 8), size > chunk_threshold))
    return entries
