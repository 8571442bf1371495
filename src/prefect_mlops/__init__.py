"""prefect-mlops: experiment tracking and the ML layer for teams who orchestrate with Prefect.

import prefect_mlops as mlops

@flow
def train(lr: float = 0.1):
    mlops.log_metric("loss", 0.5, step=1)   # a run bound to this flow run
"""

from prefect_mlops.core.errors import (
    AlreadyExists,
    Conflict,
    DatabaseUnavailable,
    InvalidInput,
    MlopsError,
    NotFound,
    StorageError,
)
from prefect_mlops.core.settings import Settings, get_settings
from prefect_mlops.tracking import flow_runs as _flow_runs
from prefect_mlops.tracking.autolog import autolog
from prefect_mlops.tracking.client import TrackingClient
from prefect_mlops.tracking.entities import (
    BulkRun,
    DatasetInput,
    Experiment,
    FileInfo,
    Histogram,
    Metric,
    MetricHistory,
    MetricSummary,
    PagedList,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
    SavedSearch,
    ViewType,
)
from prefect_mlops.tracking.fluent import (
    ActiveRun,
    active_run,
    aggregate_runs,
    compare_runs,
    count_runs,
    download_artifacts,
    end_run,
    flush,
    get_client,
    get_metric_history,
    get_run,
    list_saved_searches,
    log_artifact,
    log_artifacts,
    log_dict,
    log_figure,
    log_histogram,
    log_image,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    log_table,
    log_text,
    save_search,
    search_runs,
    set_experiment,
    set_tag,
    set_tags,
    start_run,
)
from prefect_mlops.tracking.search.compare import RunComparison
from prefect_mlops.tracking.search.grammar import InvalidFilter

__version__ = "0.1.0"

_flow_runs.register()  # the tracking core learns about Prefect flow runs through this seam

__all__ = [
    "ActiveRun",
    "AlreadyExists",
    "BulkRun",
    "Conflict",
    "DatabaseUnavailable",
    "DatasetInput",
    "Experiment",
    "FileInfo",
    "Histogram",
    "InvalidFilter",
    "InvalidInput",
    "Metric",
    "MetricHistory",
    "MetricSummary",
    "MlopsError",
    "NotFound",
    "PagedList",
    "Param",
    "Run",
    "RunComparison",
    "RunData",
    "RunInfo",
    "RunStatus",
    "RunTag",
    "SavedSearch",
    "Settings",
    "StorageError",
    "TrackingClient",
    "ViewType",
    "__version__",
    "active_run",
    "aggregate_runs",
    "autolog",
    "compare_runs",
    "count_runs",
    "download_artifacts",
    "end_run",
    "flush",
    "get_client",
    "get_metric_history",
    "get_run",
    "get_settings",
    "list_saved_searches",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_histogram",
    "log_image",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "save_search",
    "search_runs",
    "set_experiment",
    "set_tag",
    "set_tags",
    "start_run",
]
