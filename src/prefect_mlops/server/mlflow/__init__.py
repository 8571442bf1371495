"""MLflow's REST API (``/api/2.0/mlflow``, ``/ajax-api/2.0/mlflow``, and 3.0 where the 3.x
client calls it), answered from our store: the stock ``mlflow`` client works unchanged.

- ``requests.py``: request bodies and query strings checked against MLflow's messages;
- ``protos.py``: our entities as MLflow's JSON, MLflow's ids and artifact URIs as ours;
- ``experiments.py``, ``runs.py``, ``metrics.py``, ``models.py``: the routes by resource;
- ``artifacts.py``: the artifacts proxy (``/api/2.0/mlflow-artifacts``);
- ``multipart.py``: its multipart uploads (parts in parallel, joined in order);
- ``server_info.py``: MLflow 3's ``server-info`` (what the server supports).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.applications import Starlette
from starlette.routing import Router

from prefect_mlops.server.mlflow import (
    artifacts,
    experiments,
    metrics,
    models,
    multipart,
    runs,
    server_info,
)

API_PREFIXES = (
    "/api/2.0/mlflow",
    "/ajax-api/2.0/mlflow",
    "/api/3.0/mlflow",
    "/ajax-api/3.0/mlflow",
)
ARTIFACT_PREFIXES = ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts")


def _routes(*parts: APIRouter) -> Router:
    inner = APIRouter()
    for part in parts:
        inner.include_router(part)
    return Router(routes=inner.routes)


def mount(app: Starlette) -> None:
    """Serve MLflow's API under each of its prefixes. Each prefix is a mount of its own, so a
    request is matched against its prefix first and then about fifty routes, not the few
    hundred that the four prefixes hold together (matching was most of a request's time)."""
    api = _routes(experiments.router, runs.router, metrics.router, models.router)
    api3 = _routes(
        experiments.router, runs.router, metrics.router, models.router, server_info.router
    )
    proxy = _routes(multipart.router, artifacts.router)
    for prefix in API_PREFIXES:
        app.mount(prefix, api3 if "/3.0/" in prefix else api)
    for prefix in ARTIFACT_PREFIXES:
        app.mount(prefix, proxy)
