"""Plain records returned to users, shaped like MLflow's so habits carry over."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from itertools import repeat
from typing import Any, NamedTuple, TypeVar, overload

T = TypeVar("T")


class RunStatus(str, Enum):
    """Lifecycle of a run; terminal statuses are FINISHED, FAILED and KILLED."""

    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def is_terminal(self) -> bool:
        return self in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED)

    def __str__(self) -> str:
        return self.value

    @classmethod
    def after(cls, error: BaseException | None) -> RunStatus:
        """How a run ends after ``error``: FINISHED without one, KILLED after Ctrl-C,
        FAILED otherwise."""
        if error is None:
            return cls.FINISHED
        return cls.KILLED if isinstance(error, KeyboardInterrupt) else cls.FAILED


class ViewType(str, Enum):
    """Which runs or experiments a listing includes."""

    ACTIVE_ONLY = "active"
    DELETED_ONLY = "deleted"
    ALL = "all"


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    creation_time: int
    last_update_time: int
    tags: dict[str, str] = field(default_factory=dict)


#: One metric point as stored and buffered: (run_id, key, value or None for NaN, timestamp, step).
MetricRow = tuple[str, str, float | None, int, int]


class Metric(NamedTuple):
    """One logged point. A tuple underneath, so long histories load fast."""

    key: str
    value: float
    timestamp: int
    step: int


class MetricHistory(Sequence[Metric]):
    """All points of one metric, in step order, held as columns.

    It behaves as a read-only list of `Metric` (indexing, slicing, iteration, ``==`` with a
    list), while ``steps``, ``timestamps`` and ``values`` give the columns directly, e.g. for
    plotting, without building an object per point.
    """

    __slots__ = ("key", "steps", "timestamps", "values")

    def __init__(
        self,
        key: str,
        values: Sequence[float],
        timestamps: Sequence[int],
        steps: Sequence[int],
    ) -> None:
        self.key = key
        self.values = values
        self.timestamps = timestamps
        self.steps = steps

    def __len__(self) -> int:
        return len(self.values)

    @overload
    def __getitem__(self, index: int) -> Metric: ...

    @overload
    def __getitem__(self, index: slice) -> MetricHistory: ...

    def __getitem__(self, index: int | slice) -> Metric | MetricHistory:
        if isinstance(index, slice):
            return MetricHistory(
                self.key, self.values[index], self.timestamps[index], self.steps[index]
            )
        return Metric(self.key, self.values[index], self.timestamps[index], self.steps[index])

    def __iter__(self) -> Iterator[Metric]:
        return map(Metric, repeat(self.key), self.values, self.timestamps, self.steps)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (MetricHistory, list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(
            f"(step={s}, value={v!r})" for s, v in zip(self.steps[:3], self.values[:3], strict=True)
        )
        more = f", ... {len(self) - 3} more" if len(self) > 3 else ""
        return f"MetricHistory({self.key!r}, {len(self)} points: [{shown}{more}])"


class PagedList(list[T]):
    """A page of results; ``token`` fetches the next page (None on the last one)."""

    def __init__(self, items: Iterable[T] = (), token: str | None = None) -> None:
        super().__init__(items)
        self.token = token


class Param(NamedTuple):
    key: str
    value: str


class RunTag(NamedTuple):
    key: str
    value: str


@dataclass(frozen=True)
class MetricSummary:
    """Latest point of a metric plus min, max and number of points logged."""

    key: str
    last: float
    step: int
    timestamp: int
    min: float
    max: float
    count: int


@dataclass(frozen=True)
class FileInfo:
    """An artifact (or a folder of artifacts) under a run, relative to its artifact root."""

    path: str
    is_dir: bool
    file_size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class Histogram:
    """Bucket counts of one `log_histogram` call: ``len(edges) == len(counts) + 1``."""

    key: str
    step: int
    timestamp: int
    edges: list[float]
    counts: list[int]


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    experiment_id: str
    run_name: str
    status: RunStatus
    start_time: int
    end_time: int | None
    lifecycle_stage: str
    user_id: str
    artifact_uri: str
    parent_run_id: str | None = None
    prefect_flow_run_id: str | None = None

    @property
    def run_uuid(self) -> str:
        return self.run_id


@dataclass(frozen=True)
class RunData:
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    info: RunInfo
    data: RunData


@dataclass(frozen=True)
class SavedSearch:
    """A named search: filter, order, experiments and full-text query, reusable by name."""

    name: str
    filter_string: str
    order_by: list[str]
    experiment_ids: list[str] | None
    query: str | None
    created_time: int


@dataclass(frozen=True)
class DatasetInput:
    """A dataset a run read: its name, content digest and role (``training``, ``eval``...)."""

    name: str
    digest: str
    context: str = ""


@dataclass
class BulkRun:
    """One run for `TrackingClient.create_runs_bulk`: metrics map a key to a value, or to a
    history of ``(step, value)`` pairs."""

    run_name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float | Sequence[tuple[int, float]]] = field(default_factory=dict)
    start_time: int | None = None
    end_time: int | None = None
    status: RunStatus = RunStatus.FINISHED


class LoggedModelStatus(str, Enum):
    """Where a logged model's upload stands (MLflow 3's ``LoggedModelStatus`` without the
    ``LOGGED_MODEL_`` prefix)."""

    PENDING = "PENDING"
    READY = "READY"
    UPLOAD_FAILED = "UPLOAD_FAILED"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class LoggedModel:
    """A model logged in an experiment (MLflow 3's ``LoggedModel``): its files live under
    ``artifact_location``; ``source_run_id`` is the run that produced it, if any."""

    model_id: str
    experiment_id: str
    name: str
    artifact_location: str
    creation_time: int
    last_update_time: int
    status: LoggedModelStatus
    lifecycle_stage: str = "active"
    model_type: str = ""
    source_run_id: str | None = None
    status_message: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


class ModelOutput(NamedTuple):
    """A logged model a run produced, at the step it was logged."""

    model_id: str
    step: int
