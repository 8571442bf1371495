"""The dataset metadata store interface: plain values in and out. Files are not here: they
are each version's manifest object in the object store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from prefect_mlops.datasets.entities import Dataset, RunLink, VersionInfo


@dataclass(frozen=True)
class NewVersion:
    """What `DatasetStore.record_version` records (its objects are already stored)."""

    dataset: str
    version_id: str
    parents: Sequence[str]
    message: str
    metadata: Mapping[str, Any]
    file_count: int
    total_size: int
    created_by_run: str | None
    storage: str
    chunk_threshold: int
    splits: Mapping[str, str] = field(default_factory=dict)
    stats: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    storage_ref: str | None = None


@dataclass(frozen=True)
class StoredVersion:
    """A version as the store keeps it: its info plus where its bytes are."""

    info: VersionInfo
    storage: str
    storage_ref: str | None
    chunk_threshold: int


class DatasetStore(Protocol):
    """Datasets, versions, aliases, tags and run links."""

    def record_version(self, new: NewVersion) -> tuple[StoredVersion, bool]:
        """Record a version (creating its dataset) and move the ``latest`` alias to it;
        returns it and True, or the existing version with the same id and False."""
        ...

    def get_version(self, dataset: str, version_id: str) -> StoredVersion:
        """A version by full id; `NotFound` names the dataset and id."""
        ...

    def resolve(self, dataset: str, ref: str) -> str:
        """The version id ``ref`` names: a full id, a unique prefix (8+ characters), ``v3``
        (the third), an alias, or a tag ``key=value``. `NotFound` lists what exists."""
        ...

    def list_datasets(self) -> list[Dataset]: ...

    def list_versions(self, dataset: str) -> list[VersionInfo]:
        """The dataset's versions, newest first."""
        ...

    def set_alias(self, dataset: str, alias: str, version_id: str) -> None: ...

    def delete_alias(self, dataset: str, alias: str) -> None: ...

    def set_tag(self, dataset: str, version_id: str, key: str, value: str) -> None: ...

    def delete_tag(self, dataset: str, version_id: str, key: str) -> None: ...

    def link_run(self, dataset: str, version_id: str, run_id: str, direction: str) -> None:
        """Record that a run read (``input``) or produced (``output``) a version."""
        ...

    def run_links(self, dataset: str, version_id: str) -> list[RunLink]: ...

    def runs_datasets(self, run_id: str) -> list[RunLink]:
        """The versions a run read or produced."""
        ...

    def all_versions(self) -> list[StoredVersion]:
        """Every version of every dataset (for `gc`)."""
        ...
