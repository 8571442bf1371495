"""Request bodies of the native API (responses are the entities in ``tracking/entities.py``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from prefect_mlops.tracking.entities import (
    DatasetInput,
    FileInfo,
    Histogram,
    RunInfo,
    RunStatus,
    SavedSearch,
    ViewType,
)

#: (run_id, key, value or null for NaN, timestamp, step)
WireMetricRow = tuple[str, str, float | None, int, int]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateExperiment(Body):
    name: str = Field(min_length=1)
    artifact_root: str = Field(default="", description="Empty: the server's artifact root.")
    tags: dict[str, str] = {}
    experiment_id: str | None = Field(default=None, description="A client-made id.")
    if_exists: Literal["error", "use"] = Field(
        default="error",
        description="'use': answer with the experiment already called `name` (offline replays).",
    )


class SearchExperiments(Body):
    view: ViewType = ViewType.ACTIVE_ONLY
    max_results: int = Field(default=1000, ge=1, le=50_000)
    filter_string: str | None = None


class CreateRun(Body):
    experiment_id: str
    run_name: str
    run_id: str | None = Field(default=None, description="A client-made id (offline runs).")
    artifact_location: str | None = Field(
        default=None, description="Null: the experiment's artifact location."
    )
    start_time: int | None = None
    user_id: str = ""
    tags: dict[str, str] = {}
    parent_run_id: str | None = None
    prefect_flow_run_id: str | None = None
    status: RunStatus = RunStatus.RUNNING
    params: list[tuple[str, str]] = []


class UpdateRun(Body):
    status: RunStatus | None = None
    end_time: int | None = None
    run_name: str | None = None
    only_if_status: RunStatus | None = None


class Lifecycle(Body):
    stage: Literal["active", "deleted"]


class EndRun(Body):
    status: RunStatus
    end_time: int
    tags: dict[str, str] = {}
    artifacts: list[FileInfo] = []


class BulkRuns(Body):
    runs: list[RunInfo]
    params: list[tuple[str, str, str]] = []
    tags: list[tuple[str, str, str]] = []
    metrics: list[WireMetricRow] = []


class KeyValues(Body):
    items: list[tuple[str, str]]


class Key(Body):
    key: str


class MetricRows(Body):
    rows: list[WireMetricRow]


class Keys(Body):
    keys: list[str]


class HistogramBody(Body):
    histogram: Histogram


class ArtifactRecord(Body):
    path: str
    size: int = Field(ge=0)
    sha256: str


class Inputs(Body):
    inputs: list[DatasetInput]


class RunQuery(Body):
    experiment_ids: list[str] | None = None
    filter_string: str = ""
    view: ViewType = ViewType.ACTIVE_ONLY
    query: str | None = None


class SearchRuns(RunQuery):
    max_results: int = Field(default=1000, ge=1, le=50_000)
    order_by: list[str] | None = None
    page_token: str | None = None


class AggregateRuns(RunQuery):
    group_by: list[str] = []
    metrics: list[tuple[str, str]] = []


class SaveSearch(Body):
    search: SavedSearch
    overwrite: bool = False


class Name(Body):
    name: str


class Written(BaseModel):
    """What a write answers: whether it was applied now (False: a replayed key) and its
    result, if it has one."""

    applied: bool
    result: Any = None
