"""The module-level dataset functions: one client from settings, and the active run (the
one bound to the current Prefect flow run, or opened with `start_run`) linked to every
version created (output) or read (input) — searchable as ``datasets.name = 'iris'``."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect_mlops.core.errors import MlopsError
from prefect_mlops.datasets.client import GC_GRACE_SECONDS, DatasetClient
from prefect_mlops.datasets.entities import Dataset, GcReport, Lineage, VersionDiff, VersionInfo
from prefect_mlops.datasets.report import version_markdown
from prefect_mlops.datasets.version import DatasetVersion
from prefect_mlops.tracking import runtime
from prefect_mlops.tracking.entities import DatasetInput

_client: DatasetClient | None = None
_lock = threading.Lock()


def get_dataset_client() -> DatasetClient:
    """The client the module functions use (built from settings on first use)."""
    global _client
    with _lock:
        if _client is None:
            _client = DatasetClient()
        return _client


def _reset() -> None:
    global _client
    with _lock:
        _client = None


runtime.on_reset(_reset)


def _active_run_id() -> str:
    from prefect_mlops.tracking.fluent import current_run_id

    return current_run_id(create=False)


def _record(version: DatasetVersion, run_id: str, direction: str) -> None:
    """Link the version into tracking and, inside a flow run, report it in the Prefect UI."""
    from prefect_mlops.tracking.fluent import get_client

    get_client().log_inputs(run_id, [DatasetInput(version.name, version.version_id, direction)])
    publish = runtime.hooks.publish_markdown
    if publish is not None and runtime.hooks.current_flow_run_id() is not None:
        action = "created" if direction == "output" else "read"
        try:
            publish(
                f"dataset-{version.name}-{version.version_id[:12]}",
                version_markdown(version.lineage(), action),
                f"Dataset {version} {action}",
            )
        except MlopsError:
            pass  # a report that cannot be attached never fails the data work


def create(
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
    progress: bool | None = None,
) -> DatasetVersion:
    """A new version of ``name`` from a folder (or one file): only changed files are hashed
    and uploaded. Inside a run, the version is recorded as the run's output."""
    run_id = _active_run_id()
    version = get_dataset_client().create(
        name,
        from_path,
        message=message,
        metadata=metadata,
        parents=parents,
        tags=tags,
        splits=splits,
        rules=rules,
        exclude=exclude,
        run_id=run_id or None,
        progress=progress,
    )
    if run_id:
        _record(version, run_id, "output")
    return version


def get(name: str, version: str = "latest") -> DatasetVersion:
    """A version by ``latest``, id (or 8+ of its first characters), ``v3``, alias or tag
    ``key=value``. Inside a run, recorded as the run's input."""
    run_id = _active_run_id()
    found = get_dataset_client().get(name, version, run_id=run_id or None)
    if run_id:
        _record(found, run_id, "input")
    return found


def list_datasets() -> list[Dataset]:
    return get_dataset_client().list_datasets()


def list_versions(name: str) -> list[VersionInfo]:
    """The versions of ``name``, newest first."""
    return get_dataset_client().list_versions(name)


def diff(a: DatasetVersion | str, b: DatasetVersion | str) -> VersionDiff:
    """Files added, removed and modified from ``a`` to ``b`` (versions or ``'name@ref'``)."""
    return get_dataset_client().diff(a, b)


def lineage(version: DatasetVersion | str) -> Lineage:
    """Ancestors, producing runs and consuming runs of a version."""
    return get_dataset_client().lineage(version)


def verify(version: DatasetVersion | str, progress: bool | None = None) -> int:
    """Re-hash every byte of a version; damage raises `StorageError` naming each file."""
    return get_dataset_client().verify(version, progress)


def gc(*, dry_run: bool = True, grace_seconds: float = GC_GRACE_SECONDS) -> GcReport:
    """Objects no version references (deleted unless ``dry_run``; young ones kept)."""
    return get_dataset_client().gc(dry_run=dry_run, grace_seconds=grace_seconds)


def set_alias(version: DatasetVersion | str, alias: str) -> None:
    """Point ``alias`` (``prod``...) at a version; an existing alias moves."""
    get_dataset_client().set_alias(version, alias)


def tag(version: DatasetVersion | str, key: str, value: str) -> None:
    """Set a tag on a version (``datasets.get(name, 'key=value')`` finds it)."""
    get_dataset_client().set_tag(version, key, value)
