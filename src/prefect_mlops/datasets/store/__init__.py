"""Persistence of the dataset domain behind one interface (``base.py``): `SqlDatasetStore`
(``sql.py``) on the metadata database, `RestDatasetStore` (``rest.py``) through a tracking
server."""

from __future__ import annotations

from prefect_mlops.datasets.store.base import DatasetStore, NewVersion, StoredVersion
from prefect_mlops.datasets.store.sql import SqlDatasetStore

__all__ = ["DatasetStore", "NewVersion", "SqlDatasetStore", "StoredVersion", "dataset_store"]


def dataset_store(url: str) -> DatasetStore:
    """The store for a database URL (a tracking server's http(s) URL gets the REST one)."""
    if url.startswith(("http://", "https://")):
        from prefect_mlops.datasets.store.rest import RestDatasetStore

        return RestDatasetStore(url)
    return SqlDatasetStore(url)
