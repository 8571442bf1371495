"""Where dataset bytes live: `ObjectStore` (``base.py``), on a local folder or any fsspec URL
(``fs.py``), and lakeFS commits (``lakefs.py``, an optional extra)."""

from __future__ import annotations

from functools import lru_cache

from prefect_mlops.datasets.objects.base import ObjectStore, StoredObject, object_key
from prefect_mlops.datasets.objects.fs import FsspecObjectStore, LocalObjectStore

__all__ = [
    "FsspecObjectStore",
    "LocalObjectStore",
    "ObjectStore",
    "StoredObject",
    "object_key",
    "object_store",
]


@lru_cache(maxsize=32)
def object_store(uri: str) -> ObjectStore:
    """The object store at ``uri``: a local folder (or ``file://``) or an fsspec URL."""
    if uri.startswith("file://"):
        return LocalObjectStore(uri[len("file://") :])
    if "://" not in uri:
        return LocalObjectStore(uri)
    return FsspecObjectStore(uri)
