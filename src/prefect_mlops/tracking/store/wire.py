"""Entities as JSON, the way the native API (``/api/mlops/v1``) and the remote store speak.

Records travel as their dataclass fields; enums as their values; a metric history as three
columns. JSON here allows ``NaN`` and ``Infinity`` (Python's ``json`` reads and writes them),
so metric values arrive exactly; a metric row's NaN travels as ``null``, as it is stored.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

from prefect_mlops.tracking.entities import (
    DatasetInput,
    Experiment,
    FileInfo,
    Histogram,
    Metric,
    MetricHistory,
    MetricRow,
    MetricSummary,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    SavedSearch,
)


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, MetricHistory):
        return {
            "key": value.key,
            "values": list(value.values),
            "timestamps": list(value.timestamps),
            "steps": list(value.steps),
        }
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def encode(value: Any) -> Any:
    """``value`` (entities, enums, histories, containers of them) as JSON-ready values."""
    return _plain(value)


def dumps(value: Any) -> bytes:
    """Compact JSON that keeps NaN and ±Infinity."""
    return json.dumps(encode(value), separators=(",", ":"), allow_nan=True).encode("utf-8")


def experiment(d: Mapping[str, Any]) -> Experiment:
    return Experiment(**{**d, "tags": dict(d.get("tags") or {})})


def run_info(d: Mapping[str, Any]) -> RunInfo:
    return RunInfo(**{**d, "status": RunStatus(d["status"])})


def run(d: Mapping[str, Any]) -> Run:
    data = d.get("data") or {}
    return Run(
        info=run_info(d["info"]),
        data=RunData(
            params=dict(data.get("params") or {}),
            metrics={k: float(v) for k, v in (data.get("metrics") or {}).items()},
            tags=dict(data.get("tags") or {}),
        ),
    )


def history(d: Mapping[str, Any]) -> MetricHistory:
    values = [float("nan") if v is None else float(v) for v in d["values"]]
    return MetricHistory(d["key"], values, list(d["timestamps"]), list(d["steps"]))


def metric(key: str, point: Sequence[Any]) -> Metric:
    value, timestamp, step = point
    return Metric(key, float("nan") if value is None else float(value), timestamp, step)


def metric_rows(rows: Sequence[Sequence[Any]]) -> list[MetricRow]:
    return [(r[0], r[1], None if r[2] is None else float(r[2]), int(r[3]), int(r[4])) for r in rows]


def summary(d: Mapping[str, Any]) -> MetricSummary:
    return MetricSummary(**d)


def file_info(d: Mapping[str, Any]) -> FileInfo:
    return FileInfo(**d)


def histogram(d: Mapping[str, Any]) -> Histogram:
    return Histogram(**d)


def saved_search(d: Mapping[str, Any]) -> SavedSearch:
    return SavedSearch(**d)


def dataset_input(d: Mapping[str, Any]) -> DatasetInput:
    return DatasetInput(**d)
