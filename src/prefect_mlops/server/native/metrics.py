"""Metric batches (one request per batch of the client's buffered writer), histories,
summaries and histograms."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel
from starlette.requests import Request

from prefect_mlops.server.native.common import (
    IdempotencyKey,
    WireResponse,
    answer,
    apply_once,
    store_of,
)
from prefect_mlops.server.native.models import HistogramBody, Keys, MetricRows, Written
from prefect_mlops.tracking.entities import Histogram, MetricSummary
from prefect_mlops.tracking.store.wire import metric_rows

router = APIRouter(tags=["metrics"])


class HistoryColumns(BaseModel):
    """Every point of one metric as columns, by step then timestamp."""

    key: str
    values: list[float]
    timestamps: list[int]
    steps: list[int]


@router.post("/metrics", response_model=Written)
def log_metric_rows(request: Request, body: MetricRows, key: IdempotencyKey) -> WireResponse:
    """Store a batch of points and their summaries in one transaction with its key: a batch
    is visible whole or not at all, and a replayed one stores nothing."""
    store = store_of(request)
    rows = metric_rows(body.rows)
    for run_id in {row[0] for row in rows}:
        store.get_run_info(run_id)  # NotFound (404) for a run that does not exist
    applied, _ = apply_once(request, key, lambda: store.log_metric_rows(rows))
    return answer({"applied": applied, "result": len(rows)})


@router.get("/runs/{run_id}/metrics/history", response_model=HistoryColumns)
def get_metric_history(request: Request, run_id: str, key: str = Query()) -> WireResponse:
    return answer(store_of(request).get_metric_history(run_id, key))


@router.post("/runs/{run_id}/metrics/histories", response_model=dict[str, list[HistoryColumns]])
def get_metric_histories(request: Request, run_id: str, body: Keys) -> WireResponse:
    """Per key, the points as ``[value, timestamp, step]``."""
    found = store_of(request).get_metric_histories(run_id, body.keys)
    return answer({k: [[m.value, m.timestamp, m.step] for m in ms] for k, ms in found.items()})


@router.get("/runs/{run_id}/metrics/summaries", response_model=list[MetricSummary])
def get_metric_summaries(request: Request, run_id: str) -> WireResponse:
    return answer(store_of(request).get_metric_summaries(run_id))


@router.post("/runs/{run_id}/histograms", response_model=Written)
def log_histogram(
    request: Request, run_id: str, body: HistogramBody, key: IdempotencyKey
) -> WireResponse:
    store = store_of(request)
    applied, _ = apply_once(request, key, lambda: store.log_histogram(run_id, body.histogram))
    return answer({"applied": applied})


@router.get("/runs/{run_id}/histograms", response_model=list[Histogram])
def get_histograms(request: Request, run_id: str, key: str = Query()) -> WireResponse:
    return answer(store_of(request).get_histograms(run_id, key))


@router.get("/runs/{run_id}/histogram-keys", response_model=list[str])
def list_histogram_keys(request: Request, run_id: str) -> WireResponse:
    return answer(store_of(request).list_histogram_keys(run_id))
