"""Persistence of the tracking domain behind one interface, picked by database URL scheme:

- ``base.py``: the `TrackingStore` protocol (plain values in and out), `MetricRow`, and the
  `ExperimentEditStore`, `LoggedModelStore`, `KeyedWrites` and `ArtifactFiles` protocols
  beside it;
- ``sql/``: `SqlTrackingStore`, the SQLite and PostgreSQL implementation;
- ``rest.py`` (searches in ``rest_search.py``): `RestTrackingStore`, the client side of the
  tracking server (http/https), over ``transport.py`` (requests, errors, keyed writes),
  ``spool.py`` (the offline spool) and ``http_artifacts.py`` (artifact files through the
  server); ``wire.py`` is the JSON both sides speak.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from prefect_mlops.core.db import mask_url
from prefect_mlops.core.errors import InvalidInput
from prefect_mlops.core.settings import Settings, get_settings
from prefect_mlops.tracking.store.base import (
    ExperimentEditStore,
    LoggedModelStore,
    MetricRow,
    TrackingStore,
)
from prefect_mlops.tracking.store.sql import SCHEMES, SqlTrackingStore

__all__ = [
    "ExperimentEditStore",
    "LoggedModelStore",
    "MetricRow",
    "SqlTrackingStore",
    "TrackingStore",
    "tracking_store",
]


def tracking_store(url: str, settings: Settings | None = None) -> TrackingStore:
    """The store for ``url``: a tracking server's http(s) URL gets `RestTrackingStore`,
    SQLite and PostgreSQL URLs get `SqlTrackingStore`."""
    if url.startswith(("http://", "https://")):
        from prefect_mlops.tracking.store.rest import RestTrackingStore  # httpx: ~80 ms

        return RestTrackingStore(url, settings or get_settings())
    try:
        scheme = make_url(url).get_backend_name()
    except ArgumentError:
        scheme = None  # not a URL at all: the SQL store's engine explains what one looks like
    if scheme is None or scheme in SCHEMES:
        return SqlTrackingStore(url)
    raise InvalidInput(
        f"Database URL {mask_url(url)} uses backend {scheme!r}; supported: {', '.join(SCHEMES)}."
    )


def __getattr__(name: str) -> Any:
    """`RestTrackingStore`, imported on first use: only remote clients pay for httpx."""
    if name == "RestTrackingStore":
        from prefect_mlops.tracking.store.rest import RestTrackingStore

        return RestTrackingStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
