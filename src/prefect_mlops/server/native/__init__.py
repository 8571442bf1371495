"""The native API (``/api/mlops/v1``): every operation of the tracking store over HTTP, what
the remote store (``PREFECT_MLOPS_TRACKING_URI=http://...``) speaks."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/mlops/v1")
