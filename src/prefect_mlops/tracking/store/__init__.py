"""Persistence of the tracking domain behind one interface, picked by database URL scheme:

- ``base.py``: the `TrackingStore` protocol (plain values in and out), `MetricRow`, and the
  `ExperimentEditStore` and `LoggedModelStore` protocols beside it;
- ``sql/``: `SqlTrackingStore`, the SQLite and PostgreSQL implementation.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from prefect_mlops.core.db import mask_url
from prefect_mlops.core.errors import InvalidInput
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


def tracking_store(url: str) -> TrackingStore:
    """The store for ``url``: SQLite and PostgreSQL URLs get `SqlTrackingStore`."""
    try:
        scheme = make_url(url).get_backend_name()
    except ArgumentError:
        scheme = None  # not a URL at all: the SQL store's engine explains what one looks like
    if scheme is None or scheme in SCHEMES:
        return SqlTrackingStore(url)
    raise InvalidInput(
        f"Database URL {mask_url(url)} uses backend {scheme!r}; supported: {', '.join(SCHEMES)}."
    )
