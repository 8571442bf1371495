"""The native API (``/api/mlops/v1``): every operation of the tracking store over HTTP, what
the remote store (``PREFECT_MLOPS_TRACKING_URI=http://...``) speaks.

One module per concern (``experiments``, ``runs``, ``metrics``, ``artifacts``, ``search``);
request bodies in ``models``; ``common`` holds keyed writes and NaN-keeping JSON. Every write
carries an ``Idempotency-Key`` header, claimed in the write's own transaction, so a request
sent twice (a lost acknowledgement, an offline spool replayed) is applied once. The OpenAPI
document is ``/api/mlops/v1/openapi.json``.
"""

from __future__ import annotations

from fastapi import APIRouter

from prefect_mlops.server.native import artifacts, experiments, metrics, runs, search

router = APIRouter(prefix="/api/mlops/v1")
for part in (experiments, search, runs, metrics, artifacts):
    router.include_router(part.router)
