"""MLflow's REST API (``/api/2.0/mlflow``, ``/ajax-api/2.0/mlflow``, and 3.0 where the 3.x
client calls it), answered from our store: the stock ``mlflow`` client works unchanged.

- ``requests.py``: request bodies and query strings checked against MLflow's messages;
- ``protos.py``: our entities as MLflow's JSON, MLflow's ids and artifact URIs as ours;
- ``experiments.py``, ``runs.py``, ``metrics.py``, ``models.py``: the routes by resource;
- ``artifacts.py``: the artifacts proxy (``/api/2.0/mlflow-artifacts``).
"""

from __future__ import annotations

from fastapi import APIRouter

from prefect_mlops.server.mlflow import artifacts, experiments, metrics, models, runs

API_PREFIXES = (
    "/api/2.0/mlflow",
    "/ajax-api/2.0/mlflow",
    "/api/3.0/mlflow",
    "/ajax-api/3.0/mlflow",
)
ARTIFACT_PREFIXES = ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts")

router = APIRouter()
for prefix in API_PREFIXES:
    for part in (experiments.router, runs.router, metrics.router, models.router):
        router.include_router(part, prefix=prefix)
for prefix in ARTIFACT_PREFIXES:
    router.include_router(artifacts.router, prefix=prefix)
