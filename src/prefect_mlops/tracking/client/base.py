"""What every part of `TrackingClient` shares: settings, the store and metric writer of its
database (one pair per URL in a process), the runs this process may write without checks,
flushing, and settling stale runs when they are read."""

from __future__ import annotations

import getpass
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prefect_mlops.core.errors import InvalidInput
from prefect_mlops.core.settings import Settings, get_settings
from prefect_mlops.core.storage import artifact_root_uri
from prefect_mlops.tracking import pending, runtime
from prefect_mlops.tracking import validation as v
from prefect_mlops.tracking.entities import (
    Experiment,
    MetricRow,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from prefect_mlops.tracking.store import TrackingStore, tracking_store
from prefect_mlops.tracking.writer import MetricWriter

DEFAULT_EXPERIMENT = "Default"

#: Called with runs still RUNNING whose flow runs may have ended elsewhere; True if any changed.
StaleRunsHandler = Callable[[Any, Sequence[RunInfo]], bool]

_stores: dict[str, tuple[TrackingStore, MetricWriter]] = {}
_stores_lock = threading.Lock()


class _RecentRuns(set[str]):
    """Run ids this client logged to or owns, kept to skip the checks on the next write. A
    long-lived process (the tracking server) sees runs without end, so past ``limit`` the set
    starts over: forgetting costs only a check on the next write to an old run."""

    limit = 100_000

    def add(self, run_id: str) -> None:
        if len(self) >= self.limit and run_id not in self:
            self.clear()
        super().add(run_id)


def _store_and_writer(url: str, settings: Settings) -> tuple[TrackingStore, MetricWriter]:
    with _stores_lock:
        pair = _stores.get(url)
        if pair is None:
            store = tracking_store(url, settings)
            writer = MetricWriter(
                store.log_metric_rows, settings.flush_interval, settings.max_buffered_points
            )
            pair = _stores[url] = (store, writer)
        return pair


def close_all_clients() -> None:
    """Flush and forget every cached store (tests switch databases with this)."""
    with _stores_lock:
        for _, writer in _stores.values():
            writer.close()
        _stores.clear()


def as_view(view: ViewType | str) -> ViewType:
    try:
        return ViewType(view)
    except ValueError:
        raise InvalidInput(
            f"run_view_type {view!r} is not one of {[x.value for x in ViewType]}."
        ) from None


def as_status(status: RunStatus | str) -> RunStatus:
    try:
        return RunStatus(str(status).upper())
    except ValueError:
        raise InvalidInput(
            f"Run status {status!r} is not one of {[s.value for s in RunStatus]}."
        ) from None


def clean_tag(key: object, value: object) -> RunTag:
    """A tag with a checked key and its value as stored (a string)."""
    checked = v.validate_key(key, "tag")
    return RunTag(checked, v.validate_tag_value(checked, value))


def clean_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    """Tags with checked keys and their values as stored (strings)."""
    return dict(clean_tag(k, val) for k, val in (tags or {}).items())


def metric_row(run_id: str, key: str, value: object, timestamp: int, step: object) -> MetricRow:
    """A point of metric ``key`` (a checked key) as stored: value and step checked, NaN as
    None, step 0 when None."""
    number = v.metric_value(key, value)
    return (
        run_id,
        key,
        number if number == number else None,  # NaN is stored as NULL
        v.int64(f"Metric {key!r} timestamp", timestamp),
        0 if step is None else v.metric_step(key, step),
    )


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return ""


_ADJECTIVES = (
    "brave",
    "calm",
    "eager",
    "gentle",
    "keen",
    "lucky",
    "merry",
    "quick",
    "sunny",
    "wise",
)
_NOUNS = ("otter", "falcon", "panda", "lynx", "heron", "koala", "whale", "fox", "owl", "yak")


def generated_run_name() -> str:
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(1000)}"


class ClientBase:
    """The state the client's parts share (see the module docstring)."""

    def __init__(
        self,
        database_url: str | None = None,
        artifact_storage: str | None = None,
        settings: Settings | None = None,
        on_stale: StaleRunsHandler | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.database_url = database_url or self.settings.resolved_database_url
        #: The tracking server this client logs to (``tracking_uri``), unless a database is
        #: named explicitly; None when the store is the database itself.
        self.tracking_uri = None if database_url else self.settings.tracking_uri
        if artifact_storage or not self.tracking_uri:
            self.artifact_root = artifact_root_uri(
                artifact_storage or self.settings.resolved_artifact_storage
            )
        else:
            self.artifact_root = ""  # the server puts new experiments under its own root
        self.store, self._writer = _store_and_writer(
            self.tracking_uri or self.database_url, self.settings
        )
        self._on_stale = on_stale
        self._writable = _RecentRuns()
        #: check the store on every write, not what this process saw before (a server
        #: process, whose database other processes change)
        self.recheck_writes = False
        self._experiments: dict[str, Experiment] = {}  # by name and by id, active ones

    def flush(self) -> None:
        """Write every buffered metric point now (after this process's pending background
        tracking work, such as auto-tracked flow runs being finalised)."""
        pending.wait()
        self._writer.flush()

    def claim_run(self, run_id: str) -> None:
        """This process owns the run: later writes skip the checks and reads never settle it."""
        self._writable.add(run_id)

    def require_writable(
        self, run_id: str, *, tags_only: bool = False, allow_finished: bool = False
    ) -> None:
        """Refuse unknown and deleted runs, and finished runs unless only tags change (tags
        annotate a run at any time, as in MLflow's UI) or ``allow_finished`` (MLflow's REST
        API lets a finished run be logged to)."""
        if run_id in self._writable and not self.recheck_writes:
            return
        if not isinstance(run_id, str):
            raise InvalidInput(f"run_id must be a string, got {run_id!r}.")
        info = self.store.get_run_info(run_id)
        if info.lifecycle_stage != "active":
            raise InvalidInput(
                f"Run {run_id} is deleted; restore it with restore_run() before logging to it."
            )
        if info.status.is_terminal:
            if tags_only or allow_finished:
                return
            raise InvalidInput(
                f"Run {run_id} is {info.status.value}; a finished run cannot be logged to. "
                "Start a new run (or set_terminated(run_id, 'RUNNING') to reopen it)."
            )
        self._writable.add(run_id)

    def _reconcile(self, runs: Sequence[Run]) -> bool:
        """Settle runs still RUNNING whose flow runs ended elsewhere; True if any changed."""
        stale = [
            r.info
            for r in runs
            if r.info.status is RunStatus.RUNNING
            and r.info.prefect_flow_run_id
            and r.info.run_id not in self._writable
        ]
        if not stale or not self.settings.reconcile_on_read:
            return False
        settle = self._on_stale or runtime.hooks.settle_stale_runs
        return bool(settle(self, stale)) if settle is not None else False
