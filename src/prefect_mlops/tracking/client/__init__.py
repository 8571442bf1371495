"""The explicit tracking API: ids in, entities out, every value checked before it is stored.

One class, `TrackingClient`, made of one part per concern:

- ``base.py``: shared state (settings, the store and metric writer per database, the runs
  this process writes to), flushing, write checks, settling stale runs on read;
- ``experiments.py``: experiments;
- ``runs.py``: runs (create, read, resume, end, settle, delete, bulk import, dataset inputs);
- ``metrics.py``: params, tags, metrics and histograms;
- ``artifacts.py``: artifact files and media;
- ``models.py``: logged models (MLflow 3) and the models runs produced;
- ``search.py``: search, count, aggregate, compare and saved searches.
"""

from __future__ import annotations

from prefect_mlops.tracking.client.artifacts import ArtifactsClient
from prefect_mlops.tracking.client.base import DEFAULT_EXPERIMENT, close_all_clients
from prefect_mlops.tracking.client.experiments import ExperimentsClient
from prefect_mlops.tracking.client.metrics import MetricsClient
from prefect_mlops.tracking.client.models import ModelsClient
from prefect_mlops.tracking.client.runs import RunsClient
from prefect_mlops.tracking.client.search import SearchClient, runs_to_pandas

__all__ = ["DEFAULT_EXPERIMENT", "TrackingClient", "close_all_clients", "runs_to_pandas"]


class TrackingClient(
    ExperimentsClient, RunsClient, MetricsClient, ArtifactsClient, SearchClient, ModelsClient
):
    """Experiments, runs, params, metrics, tags and artifacts by explicit id.

    Metrics logged with `log_metric` are buffered and written in the background; every read
    flushes first, so a process always sees what it logged. ``on_stale`` settles runs still
    RUNNING whose flow runs ended elsewhere when they are read (by default the orchestrator's
    ``runtime.hooks.settle_stale_runs``).
    """
