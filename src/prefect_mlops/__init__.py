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
from prefect_mlops.tracking.client import TrackingClient
from prefect_mlops.tracking.entities import (
    Experiment,
    FileInfo,
    Histogram,
    Metric,
    MetricSummary,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from prefect_mlops.tracking.fluent import (
    ActiveRun,
    active_run,
    download_artifacts,
    end_run,
    flush,
    get_client,
    get_metric_history,
    get_run,
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
    search_runs,
    set_experiment,
    set_tag,
    set_tags,
    start_run,
)

__version__ = "0.1.0"

__all__ = [
    "ActiveRun",
    "AlreadyExists",
    "Conflict",
    "DatabaseUnavailable",
    "Experiment",
    "FileInfo",
    "Histogram",
    "InvalidInput",
    "Metric",
    "MetricSummary",
    "MlopsError",
    "NotFound",
    "Param",
    "Run",
    "RunData",
    "RunInfo",
    "RunStatus",
    "RunTag",
    "Settings",
    "StorageError",
    "TrackingClient",
    "ViewType",
    "__version__",
    "active_run",
    "download_artifacts",
    "end_run",
    "flush",
    "get_client",
    "get_metric_history",
    "get_run",
    "get_settings",
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
    "search_runs",
    "set_experiment",
    "set_tag",
    "set_tags",
    "start_run",
]
