"""Content-addressed, versioned datasets with lineage.

from prefect_mlops import datasets

v = datasets.create("iris", from_path="data/iris", message="raw")
ds = datasets.get("iris", version="latest")
path = ds.local_copy()

Layers (checked by import-linter): entities ← manifest, objects, scan, hashing ← store ←
ingest, reader ← version ← client ← fluent ← prefect (cache policy).
"""

from prefect_mlops.datasets.client import DatasetClient
from prefect_mlops.datasets.entities import (
    Dataset,
    FileChange,
    FileEntry,
    GcReport,
    Lineage,
    RunLink,
    VersionDiff,
    VersionInfo,
)
from prefect_mlops.datasets.fluent import (
    create,
    diff,
    gc,
    get,
    get_dataset_client,
    lineage,
    list_datasets,
    list_versions,
    set_alias,
    tag,
    verify,
)
from prefect_mlops.datasets.version import DatasetVersion

__all__ = [
    "Dataset",
    "DatasetClient",
    "DatasetVersion",
    "FileChange",
    "FileEntry",
    "GcReport",
    "Lineage",
    "RunLink",
    "VersionDiff",
    "VersionInfo",
    "create",
    "diff",
    "gc",
    "get",
    "get_dataset_client",
    "lineage",
    "list_datasets",
    "list_versions",
    "set_alias",
    "tag",
    "verify",
]
