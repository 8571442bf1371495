"""`DatasetVersion`: what `datasets.get` and `datasets.create` return — the version's
facts, its files, and reading them (one file streamed, the whole version materialised,
tabular splits as pandas or Arrow)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from prefect_mlops.core.errors import InvalidInput, NotFound
from prefect_mlops.datasets.entities import FileEntry, VersionInfo
from prefect_mlops.datasets.progress import bytes_bar
from prefect_mlops.datasets.reader import materialize

if TYPE_CHECKING:
    from prefect_mlops.datasets.entities import Lineage, VersionDiff
    from prefect_mlops.datasets.ingest import IngestResult
    from prefect_mlops.datasets.reader import ObjectReader
    from prefect_mlops.datasets.rules import Violation
    from prefect_mlops.datasets.store import StoredVersion


class VersionSource(Protocol):
    """What a `DatasetVersion` asks of the client that made it (`DatasetClient`)."""

    cache_dir: Path

    def _entries(self, stored: StoredVersion) -> list[FileEntry]: ...
    def reader(self, stored: StoredVersion) -> ObjectReader: ...
    def _lakefs(self, uri: str) -> Any: ...
    def resolve(self, ref: Any, name: str | None = None) -> DatasetVersion: ...
    def verify(self, ref: Any, progress: bool | None = None) -> int: ...
    def diff(self, a: Any, b: Any) -> VersionDiff: ...
    def lineage(self, ref: Any) -> Lineage: ...
    def set_alias(self, ref: Any, alias: str) -> None: ...
    def set_tag(self, ref: Any, key: str, value: str) -> None: ...


class DatasetVersion:
    """One immutable version of a dataset, bound to the client that found it."""

    def __init__(
        self, client: VersionSource, stored: StoredVersion, ingest: IngestResult | None = None
    ) -> None:
        self._client = client
        self.stored = stored
        self.info: VersionInfo = stored.info
        #: What creating this version cost (None for a version that was looked up).
        self.ingest = ingest

    # -- facts ------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.info.dataset

    @property
    def version_id(self) -> str:
        return self.info.version_id

    @property
    def digest(self) -> str:
        """The content digest (the version id): the same files always give the same one."""
        return self.info.version_id

    @property
    def number(self) -> int:
        return self.info.number

    @property
    def parents(self) -> tuple[str, ...]:
        return self.info.parents

    @property
    def message(self) -> str:
        return self.info.message

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self.info.metadata

    @property
    def stats(self) -> Mapping[str, Any]:
        """Per tabular file: rows, columns with types, nulls, min, max, mean."""
        return self.info.stats

    @property
    def splits(self) -> Mapping[str, str]:
        return self.info.splits

    @property
    def file_count(self) -> int:
        return self.info.file_count

    @property
    def total_size(self) -> int:
        return self.info.total_size

    def __repr__(self) -> str:
        return (
            f"DatasetVersion({self.name!r}, v{self.number}, {self.version_id[:12]}, "
            f"{self.file_count} files, {self.total_size} bytes)"
        )

    def __str__(self) -> str:
        return f"{self.name}@v{self.number} ({self.version_id[:12]})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatasetVersion) and (other.name, other.version_id) == (
            self.name,
            self.version_id,
        )

    def __hash__(self) -> int:
        return hash((self.name, self.version_id))

    # -- files ------------------------------------------------------------------------------

    def files(self, split: str | None = None) -> list[FileEntry]:
        """The version's files (in manifest order), or those of one split."""
        entries = self._client._entries(self.stored)
        if split is None:
            return list(entries)
        from prefect_mlops.datasets.rules import glob_match

        pattern = self.splits.get(split)
        if pattern is None:
            raise InvalidInput(
                f"{self} has no split {split!r}; its splits: {sorted(self.splits) or 'none'}. "
                "Define them with `datasets.create(..., splits={'train': 'train/**'})`."
            )
        return [e for e in entries if glob_match(pattern, e.path)]

    def _entry(self, path: str) -> FileEntry:
        path = path.strip("/")
        for e in self.files():
            if e.path == path:
                return e
        raise NotFound(f"{self} has no file {path!r}; `.files()` lists them.")

    def open(self, path: str) -> IO[bytes]:
        """Stream one file (verified against its digest) without materialising the version."""
        entry = self._entry(path)
        if self.stored.storage.startswith("lakefs://"):
            return self._lakefs_open(entry)
        return self._client.reader(self.stored).open(entry)

    def _lakefs_open(self, entry: FileEntry) -> IO[bytes]:
        import hashlib
        import io

        store = self._client._lakefs(self.stored.storage)
        with store.open_file(self.stored.storage_ref or "", entry) as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != entry.digest:
            from prefect_mlops.datasets.reader import Damaged

            raise Damaged(
                f"File {entry.path!r} of dataset version {self} in {self.stored.storage} does "
                "not match its digest; its bytes were not used."
            )
        return io.BytesIO(data)

    def local_copy(
        self, path: str | os.PathLike[str] | None = None, progress: bool | None = None
    ) -> Path:
        """The version's files on this machine. Without ``path``: a read-only copy in the
        cache, keyed by version (hardlinks to the local objects where possible), made once
        and then returned at once. With ``path``: a writable copy there (a new folder)."""
        entries = self.files()
        reader = self._client.reader(self.stored)
        if self.stored.storage.startswith("lakefs://"):
            return self._lakefs_copy(entries, path)
        if path is not None:
            target = Path(path).expanduser().resolve()
            with bytes_bar(f"Copying {self}", self.total_size, progress) as advance:
                return materialize(reader, entries, target, link=False, advance=advance)
        target = self._client.cache_dir / "versions" / self.version_id
        marker = target.parent / f"{self.version_id}.complete"
        if marker.exists() and target.is_dir():
            return target
        if target.exists():  # left by a copy that never completed
            import shutil

            shutil.rmtree(target, ignore_errors=True)
        with bytes_bar(f"Materialising {self}", self.total_size, progress) as advance:
            try:
                materialize(reader, entries, target, link=True, advance=advance)
            except InvalidInput:
                raise
            except FileExistsError:
                pass  # another process made it meanwhile
        marker.touch()
        return target

    def _lakefs_copy(
        self, entries: Sequence[FileEntry], path: str | os.PathLike[str] | None
    ) -> Path:
        import hashlib
        import shutil

        target = (
            Path(path).expanduser().resolve()
            if path is not None
            else self._client.cache_dir / "versions" / self.version_id
        )
        if path is None and (target.parent / f"{self.version_id}.complete").exists():
            return target
        tmp = target.parent / f".tmp-{target.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        for e in entries:
            dest = tmp.joinpath(*e.path.split("/"))
            dest.parent.mkdir(parents=True, exist_ok=True)
            with self._lakefs_open(e) as src:
                data = src.read()
            assert hashlib.sha256(data).hexdigest() == e.digest
            dest.write_bytes(data)
        os.replace(tmp, target)
        if path is None:
            (target.parent / f"{self.version_id}.complete").touch()
        return target

    # -- tabular ----------------------------------------------------------------------------

    def _tabular(self, split: str | None) -> list[tuple[str, Any]]:
        from prefect_mlops.datasets.stats import is_tabular

        chosen = [e for e in self.files(split) if is_tabular(e.path)]
        if not chosen:
            raise InvalidInput(
                f"{self} has no CSV or Parquet files{f' in split {split!r}' if split else ''}."
            )
        return [(e.path, lambda e=e: self.open(e.path)) for e in chosen]

    def to_arrow(self, split: str | None = None) -> Any:
        """The tabular files (of a split) as one `pyarrow.Table` (needs the tabular extra)."""
        from prefect_mlops.datasets.tabular import read_arrow

        return read_arrow(self._tabular(split))

    def to_pandas(self, split: str | None = None) -> Any:
        """The tabular files (of a split) as one `pandas.DataFrame`."""
        from prefect_mlops.datasets.tabular import read_pandas

        return read_pandas(self._tabular(split))

    # -- checks and relations ---------------------------------------------------------------

    def validate(self, rules: Any, raise_on_failure: bool = False) -> list[Violation]:
        """Every violation of ``rules`` by this version (an empty list when it passes)."""
        from prefect_mlops.datasets.rules import ValidationFailed, check_rules, parse_rules

        violations = check_rules(parse_rules(rules), self.files(), self.stats, self.open)
        if violations and raise_on_failure:
            raise ValidationFailed(violations)
        return violations

    def verify(self, progress: bool | None = None) -> int:
        """Re-hash every byte; returns the number of files checked."""
        return self._client.verify(self, progress)

    def diff(self, other: DatasetVersion | str) -> VersionDiff:
        """What changed from ``other`` to this version."""
        return self._client.diff(self._client.resolve(other, self.name), self)

    def lineage(self) -> Lineage:
        return self._client.lineage(self)

    def set_alias(self, alias: str) -> None:
        self._client.set_alias(self, alias)

    def set_tag(self, key: str, value: str) -> None:
        self._client.set_tag(self, key, value)
