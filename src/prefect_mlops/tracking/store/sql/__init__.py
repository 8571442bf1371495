"""The tracking store on SQLite and PostgreSQL, one module per concern:

- ``engine.py``: the engine, transactions with lock retries, statements the parts share;
- ``experiments.py``: experiments and their tags;
- ``runs.py``: runs, params, tags and ending a run with its final records;
- ``metrics.py``: metric points, ``latest_metrics`` summaries and histograms;
- ``artifacts.py``: artifact records and dataset inputs;
- ``models.py``: logged models (MLflow 3), their tags and params, and run outputs;
- ``search.py``: search pages, counts, aggregates, full-text words and saved searches;
- ``bulk.py``: bulk import of finished runs;
- ``keys.py``: idempotency keys of write requests, claimed in the write's transaction;
- ``filters.py``: filter trees compiled to SQL conditions;
- ``joins.py``: the inner joins a filter makes and their fixed order on SQLite;
- ``ordering.py``: sort orders, keyset pages and page tokens.
"""

from __future__ import annotations

from prefect_mlops.tracking.store.sql.artifacts import ArtifactsMixin
from prefect_mlops.tracking.store.sql.bulk import BulkMixin
from prefect_mlops.tracking.store.sql.experiments import ExperimentsMixin
from prefect_mlops.tracking.store.sql.keys import RequestKeysMixin
from prefect_mlops.tracking.store.sql.metrics import MetricsMixin
from prefect_mlops.tracking.store.sql.models import LoggedModelsMixin
from prefect_mlops.tracking.store.sql.runs import RunsMixin
from prefect_mlops.tracking.store.sql.search import SearchMixin

SCHEMES = ("sqlite", "postgresql")


class SqlTrackingStore(
    ExperimentsMixin,
    RunsMixin,
    MetricsMixin,
    ArtifactsMixin,
    SearchMixin,
    BulkMixin,
    LoggedModelsMixin,
    RequestKeysMixin,
):
    """Experiments, runs, params, tags, metrics, histograms, artifact records and logged
    models in SQL (the `TrackingStore`, `ExperimentEditStore` and `LoggedModelStore`)."""


__all__ = ["SCHEMES", "SqlTrackingStore"]
