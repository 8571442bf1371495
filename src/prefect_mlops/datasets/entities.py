"""Dataset values returned to users: a file of a version, a version, a diff, lineage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: A file at most this large is stored whole; a larger one as content-defined chunks.
CHUNK_THRESHOLD = 8 << 20


@dataclass(frozen=True)
class FileEntry:
    """One file of a version: its path (posix, relative to the dataset root), size, content
    digest (sha256 hex of the bytes, or for a chunked file of its chunk list), permission
    bits (``0o644`` or ``0o755``) and whether it is stored as chunks."""

    path: str
    size: int
    digest: str
    mode: int = 0o644
    chunked: bool = False


@dataclass(frozen=True)
class Chunk:
    """A piece of a chunked file: its digest and size, in file order."""

    digest: str
    size: int


@dataclass(frozen=True)
class Dataset:
    """A named dataset: how many versions it has and its newest."""

    name: str
    created_time: int
    version_count: int
    latest_version: str | None


@dataclass(frozen=True)
class VersionInfo:
    """An immutable version of a dataset. ``version_id`` is the sha256 of its canonical
    manifest, so the same files always give the same id; ``number`` counts the dataset's
    versions from 1 (``v3`` names the third)."""

    dataset: str
    version_id: str
    number: int
    parents: tuple[str, ...]
    message: str
    metadata: Mapping[str, Any]
    file_count: int
    total_size: int
    created_time: int
    created_by_run: str | None
    splits: Mapping[str, str] = field(default_factory=dict)
    stats: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def short_id(self) -> str:
        return self.version_id[:12]


@dataclass(frozen=True)
class RunLink:
    """A run that read (``input``) or produced (``output``) a version."""

    dataset: str
    version_id: str
    run_id: str
    direction: str
    created_time: int


@dataclass(frozen=True)
class FileChange:
    """A file that differs between two versions; sizes are None where it is absent."""

    path: str
    old_size: int | None
    new_size: int | None


@dataclass(frozen=True)
class VersionDiff:
    """What changed from version ``a`` to version ``b``."""

    a: str
    b: str
    added: tuple[FileChange, ...]
    removed: tuple[FileChange, ...]
    modified: tuple[FileChange, ...]

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.removed or self.modified)


@dataclass(frozen=True)
class Lineage:
    """A version's ancestors (nearest first), the runs that produced it and those that
    consumed it."""

    version: VersionInfo
    ancestors: tuple[VersionInfo, ...]
    produced_by: tuple[RunLink, ...]
    consumed_by: tuple[RunLink, ...]


@dataclass(frozen=True)
class GcReport:
    """What `gc` found: unreferenced objects (deleted unless a dry run) and the young ones
    it kept for a writer that may still be recording them."""

    unreferenced: tuple[str, ...]
    deleted: tuple[str, ...]
    kept_young: tuple[str, ...]
    freed_bytes: int
    dry_run: bool
