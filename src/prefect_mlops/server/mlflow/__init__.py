"""MLflow's REST API (``/api/2.0/mlflow``, ``/ajax-api/2.0/mlflow``, and 3.0 where the 3.x
client calls it), answered from our store: the stock ``mlflow`` client works unchanged."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
