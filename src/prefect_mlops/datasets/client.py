"""`DatasetClient`: create, find, compare, check and clean up dataset versions.

Ids in, `DatasetVersion` handles out; clear errors here. It depends on the store and object
store interfaces only and never on Prefect: the caller passes the run to link (the fluent
functions in ``fluent.py`` find the active one).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect_mlops.core.errors import InvalidInput, NotFound, StorageError
from prefect_mlops.core.settings import Settings, get_settings
from prefect_mlops.datasets import manifest
from prefect_mlops.datasets.entities import (
    CHUNK_THRESHOLD,
    Dataset,
    FileChange,
    FileEntry,
    GcReport,
    Lineage,
    RunLink,
    VersionDiff,
    VersionInfo,
)
from prefect_mlops.datasets.hashing import StatCache, decode_recipe
from prefect_mlops.datasets.ingest import IngestResult, ingest
from prefect_mlops.datasets.objects import object_store
from prefect_mlops.datasets.objects.base import ObjectStore
from prefect_mlops.datasets.objects.fs import LocalObjectStore
from prefect_mlops.datasets.progress import bytes_bar
from prefect_mlops.datasets.reader import ObjectReader, verify_entries
from prefect_mlops.datasets.scan import scan_tree
from prefect_mlops.datasets.store import DatasetStore, NewVersion, StoredVersion, dataset_store
from prefect_mlops.datasets.version import DatasetVersion

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,249}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,249}$")
GC_GRACE_SECONDS = 3600.0


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or "//" in name:
        raise InvalidInput(
            f"Dataset name {name!r} is not allowed: use 1-250 letters, digits, '_', '-', '.' "
            "or '/', starting with a letter or digit (e.g. 'iris' or 'vision/coco')."
        )
    return name


class DatasetClient:
    """Datasets in the metadata store (``settings.database_url`` or a tracking server) with
    their bytes in ``settings.dataset_storage``."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: DatasetStore | None = None,
        objects: ObjectStore | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        url = self.settings.tracking_uri or self.settings.resolved_database_url
        self.store = store or dataset_store(url)
        self.objects = objects or self._default_objects()
        self.cache_dir = self.settings.resolved_dataset_cache
        self.local_objects = LocalObjectStore(self.cache_dir / "objects")
        self._manifests: dict[str, list[FileEntry]] = {}

    def _default_objects(self) -> ObjectStore:
        uri = self.settings.resolved_dataset_storage
        if uri.startswith("lakefs://"):  # files live in lakeFS; manifests and chunks here
            return LocalObjectStore(self.settings.resolved_home / "datasets")
        remote = getattr(self.store, "object_store", None)
        if remote is not None and not self.settings.dataset_storage:
            return remote()
        return object_store(uri)

    def _objects_for(self, storage: str) -> ObjectStore:
        if storage == self.objects.uri or storage.startswith("lakefs://"):
            return self.objects
        return object_store(storage)

    # -- creating ---------------------------------------------------------------------------

    def create(
        self,
        name: str,
        from_path: str | Path,
        *,
        message: str = "",
        metadata: Mapping[str, Any] | None = None,
        parents: Sequence[Any] = (),
        tags: Mapping[str, str] | None = None,
        splits: Mapping[str, str] | None = None,
        rules: Any = None,
        exclude: Sequence[str] = (),
        run_id: str | None = None,
        progress: bool | None = None,
    ) -> DatasetVersion:
        """A version of ``name`` holding the files under ``from_path``. Only files the stat
        cache does not know are hashed, and only objects the store lacks are uploaded; the
        same files give the same version (returned as is, with nothing stored twice)."""
        from prefect_mlops.datasets.rules import ValidationFailed, check_rules, parse_rules
        from prefect_mlops.datasets.stats import file_stats, is_tabular

        check_name(name)
        meta = dict(metadata or {})
        splits = dict(splits or {})
        parent_ids = [self._version_id(name, p) for p in parents]
        files = scan_tree(from_path, exclude)
        if not files:
            raise InvalidInput(
                f"{str(from_path)!r} holds no files; a dataset version needs at least one. "
                "Nothing was created."
            )
        total = sum(f.size for f in files)
        parent_versions = [self._stored_any(name, p) for p in parent_ids]
        parent_entries = [e for v in parent_versions for e in self._entries(v)]
        known = {e.digest for e in parent_entries if not e.chunked}
        known.update(v.info.version_id for v in parent_versions)
        parent_stats = {k: s for v in parent_versions for k, s in v.info.stats.items()}
        by_path = {e.path: e for e in parent_entries}
        if not splits and parent_versions:  # a child keeps its first parent's splits
            splits = dict(parent_versions[0].info.splits)

        # statistics of tabular files (reused from a parent where the file did not change)
        stats: dict[str, Any] = {}
        for f in files:
            if is_tabular(f.path):
                old = by_path.get(f.path)
                if old is not None and old.size == f.size and f.path in parent_stats:
                    stats[f.path] = parent_stats[f.path]  # verified against digest below
                else:
                    stats[f.path] = file_stats(f.abs_path, f.path)
        for split, pattern in splits.items():
            from prefect_mlops.datasets.rules import glob_match

            if not any(glob_match(pattern, f.path) for f in files):
                raise InvalidInput(
                    f"Split {split!r} ({pattern!r}) matches no file under {str(from_path)!r}; "
                    "fix the pattern (e.g. 'train/**'). Nothing was created."
                )
        rule_list = parse_rules(rules) if rules is not None else []
        if rule_list:
            pre = [FileEntry(f.path, f.size, "", f.mode) for f in files]
            where = {f.path: f.abs_path for f in files}
            violations = check_rules(rule_list, pre, stats, lambda p: open(where[p], "rb"))  # noqa: SIM115
            if violations:
                raise ValidationFailed(violations)

        storage = self.settings.resolved_dataset_storage
        cache = StatCache(self.settings.resolved_home, str(Path(from_path).expanduser().resolve()))
        with bytes_bar(f"Storing {name}", total, progress) as advance:
            result: IngestResult = ingest(
                files, self.objects, cache, known, CHUNK_THRESHOLD, advance
            )
        entries = result.entries
        for f, e in zip(files, entries, strict=True):  # a reused statistic: same bytes only
            old = by_path.get(f.path)
            if f.path in stats and old is not None and old.digest != e.digest:
                stats[f.path] = file_stats(f.abs_path, f.path)
        data = manifest.encode(entries)
        vid = manifest.version_id(data)
        self.objects.put_bytes(vid, data)
        storage_ref = None
        if storage.startswith("lakefs://"):
            sources = {f.path: f.abs_path for f in files}
            storage_ref = self._lakefs(
                storage
            ).commit_version(
                name,
                vid,
                entries,
                lambda e: open(sources[e.path], "rb"),  # noqa: SIM115
                message or f"{name} {vid[:12]}",
                {"mlops-parents": ",".join(parent_ids)},
            )
        else:
            storage = self.objects.uri
        meta.setdefault("ingest", {})
        meta["ingest"] = {
            "hashed_files": result.hashed_files,
            "hashed_bytes": result.hashed_bytes,
            "stored_objects": result.stored_objects,
            "stored_bytes": result.stored_bytes,
        }
        stored, _created = self.store.record_version(
            NewVersion(
                dataset=name,
                version_id=vid,
                parents=[p for p in parent_ids if p != vid],
                message=message,
                metadata=meta,
                file_count=len(entries),
                total_size=total,
                created_by_run=run_id or None,
                storage=storage,
                chunk_threshold=CHUNK_THRESHOLD,
                splits=splits,
                stats=stats,
                tags=dict(tags or {}),
                storage_ref=storage_ref,
            )
        )
        self._manifests[vid] = manifest.decode(data, CHUNK_THRESHOLD)
        if run_id:
            self.store.link_run(name, vid, run_id, "output")
        return self._handle(stored, result)

    def _lakefs(self, uri: str) -> Any:
        from prefect_mlops.datasets.objects.lakefs import LakeFSCommitStore

        return LakeFSCommitStore(uri)

    # -- finding ----------------------------------------------------------------------------

    def _handle(self, stored: StoredVersion, ingest: IngestResult | None = None) -> DatasetVersion:
        return DatasetVersion(self, stored, ingest)

    def _version_id(self, name: str, ref: Any) -> str:
        if isinstance(ref, DatasetVersion):
            return ref.version_id
        if isinstance(ref, VersionInfo):
            return ref.version_id
        if isinstance(ref, str) and "@" in ref:
            other, _, sub = ref.partition("@")
            return self.store.resolve(other, sub)
        return self.store.resolve(name, str(ref))

    def _stored_any(self, name: str, version_id: str) -> StoredVersion:
        """A version by id in ``name``, or in any dataset (a parent may be another's)."""
        try:
            return self.store.get_version(name, version_id)
        except NotFound:
            for v in self.store.all_versions():
                if v.info.version_id == version_id:
                    return v
            raise

    def get(
        self, name: str, version: str = "latest", *, run_id: str | None = None
    ) -> DatasetVersion:
        """The version ``version`` names (``latest``, an id or 8+ of its first characters,
        ``v3``, an alias like ``prod``, a tag ``key=value``); linked as the run's input."""
        check_name(name)
        vid = self.store.resolve(name, version)
        stored = self.store.get_version(name, vid)
        if run_id:
            self.store.link_run(name, vid, run_id, "input")
        return self._handle(stored)

    def list_datasets(self) -> list[Dataset]:
        return self.store.list_datasets()

    def list_versions(self, name: str) -> list[VersionInfo]:
        """Newest first; costs the same whatever the versions hold."""
        return self.store.list_versions(check_name(name))

    # -- manifests --------------------------------------------------------------------------

    def _entries(self, stored: StoredVersion) -> list[FileEntry]:
        vid = stored.info.version_id
        cached = self._manifests.get(vid)
        if cached is not None:
            return cached
        where = f"{stored.info.dataset}@{vid[:12]}"
        objects = self._objects_for(stored.storage)
        reader = ObjectReader(objects, where, self.local_objects)
        entry = FileEntry(".manifest", 0, vid)
        try:
            data = b"".join(reader.iter_bytes(FileEntry(".manifest", -1, vid)))
        except StorageError:
            raise
        except Exception as exc:  # pragma: no cover - defensive
            raise StorageError(f"Reading the manifest of {where} failed: {exc}") from exc
        del entry
        entries = manifest.decode(data, stored.chunk_threshold, where)
        if len(self._manifests) > 8:
            self._manifests.clear()
        self._manifests[vid] = entries
        return entries

    def reader(self, stored: StoredVersion) -> ObjectReader:
        where = f"{stored.info.dataset}@{stored.info.version_id[:12]}"
        return ObjectReader(self._objects_for(stored.storage), where, self.local_objects)

    # -- comparing and lineage --------------------------------------------------------------

    def resolve(self, ref: Any, name: str | None = None) -> DatasetVersion:
        """A handle for a handle, a `VersionInfo`, or ``'name@ref'``."""
        if isinstance(ref, DatasetVersion):
            return ref
        if isinstance(ref, VersionInfo):
            return self._handle(self.store.get_version(ref.dataset, ref.version_id))
        if isinstance(ref, str) and "@" in ref:
            dataset, _, sub = ref.partition("@")
            return self.get(dataset, sub)
        if isinstance(ref, str) and name:
            return self.get(name, ref)
        raise InvalidInput(
            f"{ref!r} does not name a dataset version; pass a version from `datasets.get` or "
            "'name@ref' (e.g. 'iris@latest', 'iris@v2', 'iris@prod')."
        )

    def diff(self, a: Any, b: Any) -> VersionDiff:
        """Files added, removed and modified from ``a`` to ``b`` (with sizes)."""
        va, vb = self.resolve(a), self.resolve(b)
        old = {e.path: e for e in va.files()}
        new = {e.path: e for e in vb.files()}
        added = tuple(FileChange(p, None, e.size) for p, e in new.items() if p not in old)
        removed = tuple(FileChange(p, e.size, None) for p, e in old.items() if p not in new)
        modified = tuple(
            FileChange(p, old[p].size, e.size)
            for p, e in new.items()
            if p in old and (old[p].digest != e.digest or old[p].mode != e.mode)
        )
        return VersionDiff(va.version_id, vb.version_id, added, removed, modified)

    def lineage(self, ref: Any) -> Lineage:
        """Ancestors (nearest first, across datasets), producing and consuming runs."""
        v = self.resolve(ref)
        by_id: dict[str, VersionInfo] = {}
        for s in self.store.all_versions():
            by_id.setdefault(s.info.version_id, s.info)
        ancestors: list[VersionInfo] = []
        seen = {v.version_id}
        queue = list(v.info.parents)
        while queue:
            pid = queue.pop(0)
            if pid in seen or pid not in by_id:
                continue
            seen.add(pid)
            ancestors.append(by_id[pid])
            queue.extend(by_id[pid].parents)
        links = self.store.run_links(v.info.dataset, v.version_id)
        return Lineage(
            v.info,
            tuple(ancestors),
            tuple(x for x in links if x.direction == "output"),
            tuple(x for x in links if x.direction == "input"),
        )

    def runs_datasets(self, run_id: str) -> list[RunLink]:
        return self.store.runs_datasets(run_id)

    # -- labels -----------------------------------------------------------------------------

    def set_alias(self, ref: Any, alias: str) -> None:
        """Point ``alias`` (``prod``, ``staging``...) at a version; it moves if it existed."""
        if not isinstance(alias, str) or not _ALIAS.match(alias) or re.match(r"^v\d+$", alias):
            raise InvalidInput(
                f"Alias {alias!r} is not allowed: use letters, digits, '_', '-', '.', starting "
                "with a letter, and not 'v<number>' (that names a version by number)."
            )
        v = self.resolve(ref)
        self.store.set_alias(v.info.dataset, alias, v.version_id)

    def delete_alias(self, name: str, alias: str) -> None:
        self.store.delete_alias(check_name(name), alias)

    def set_tag(self, ref: Any, key: str, value: str) -> None:
        if not isinstance(key, str) or not key or len(key) > 250 or "=" in key:
            raise InvalidInput(f"Tag key {key!r} is not allowed: 1-250 characters without '='.")
        v = self.resolve(ref)
        self.store.set_tag(v.info.dataset, v.version_id, key, str(value))

    # -- integrity --------------------------------------------------------------------------

    def verify(self, ref: Any, progress: bool | None = None) -> int:
        """Re-hash every byte of a version; returns the files checked. Damage raises
        `StorageError` naming every damaged file and the version."""
        v = self.resolve(ref)
        entries = v.files()
        reader = self.reader(v.stored)
        reader.cache = None  # check the store itself, not a local copy
        with bytes_bar(f"Verifying {v}", v.info.total_size, progress) as advance:
            problems = verify_entries(reader, entries, advance)
        if problems:
            shown = "\n  ".join(problems[:20])
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise StorageError(
                f"{len(problems)} of {len(entries)} files of {v} are damaged:\n  {shown}{more}"
            )
        return len(entries)

    def gc(self, *, dry_run: bool = True, grace_seconds: float = GC_GRACE_SECONDS) -> GcReport:
        """Objects no version references. Without ``dry_run`` they are deleted, except those
        younger than ``grace_seconds``: a writer may be storing them for a version it has not
        recorded yet (an object a writer finds present is marked recently used)."""
        if grace_seconds < 0:
            raise InvalidInput(f"grace_seconds {grace_seconds} must be >= 0.")
        referenced: set[str] = set()
        recipes: set[str] = set()
        for stored in self.store.all_versions():
            if self._objects_for(stored.storage) is not self.objects:
                continue
            referenced.add(stored.info.version_id)
            for e in self._entries(stored):
                if e.chunked:
                    recipes.add(e.digest)
                    data = self.objects.get_recipe(e.digest)
                    if data is not None:
                        referenced.update(c.digest for c in decode_recipe(data, e.digest))
                else:
                    referenced.add(e.digest)
        cutoff = time.time() - grace_seconds
        unreferenced, deleted, young = [], [], []
        freed = 0
        for obj in self.objects.list_objects():
            if obj.digest in referenced:
                continue
            unreferenced.append(obj.digest)
            if obj.modified > cutoff:
                young.append(obj.digest)
            elif not dry_run:
                self.objects.delete(obj.digest)
                deleted.append(obj.digest)
                freed += obj.size
        for rec in self.objects.list_recipes():
            if rec.digest not in recipes and rec.modified <= cutoff and not dry_run:
                self.objects.delete_recipe(rec.digest)
        return GcReport(tuple(unreferenced), tuple(deleted), tuple(young), freed, dry_run)
