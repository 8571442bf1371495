"""Run search (MLflow's grammar with OR, NOT, parentheses and full text), counts, grouped
aggregates and saved searches."""

from __future__ import annotations

from typing import Any

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
from prefect_mlops.server.native.models import (
    AggregateRuns,
    Name,
    RunQuery,
    SaveSearch,
    SearchRuns,
    Written,
)
from prefect_mlops.tracking.entities import Run, SavedSearch

router = APIRouter(tags=["search"])


class RunsPage(BaseModel):
    runs: list[Run]
    next_page_token: str | None


@router.post("/runs/search", response_model=RunsPage)
def search_runs(request: Request, body: SearchRuns) -> WireResponse:
    runs, token = store_of(request).search_runs(
        body.experiment_ids,
        body.filter_string,
        body.view,
        body.max_results,
        body.order_by,
        body.page_token,
        body.query,
    )
    return answer({"runs": runs, "next_page_token": token})


@router.post("/runs/count", response_model=int)
def count_runs(request: Request, body: RunQuery) -> WireResponse:
    store = store_of(request)
    return answer(store.count_runs(body.experiment_ids, body.filter_string, body.view, body.query))


@router.post("/runs/aggregate", response_model=list[dict[str, Any]])
def aggregate_runs(request: Request, body: AggregateRuns) -> WireResponse:
    rows = store_of(request).aggregate_runs(
        body.experiment_ids,
        body.filter_string,
        body.view,
        body.query,
        body.group_by,
        body.metrics,
    )
    return answer(rows)


@router.put("/saved-searches", response_model=Written)
def save_search(request: Request, body: SaveSearch, key: IdempotencyKey) -> WireResponse:
    store = store_of(request)
    applied, _ = apply_once(request, key, lambda: store.save_search(body.search, body.overwrite))
    return answer({"applied": applied})


@router.get("/saved-search", response_model=SavedSearch | None)
def get_saved_search(request: Request, name: str = Query()) -> WireResponse:
    return answer(store_of(request).get_saved_search(name))


@router.get("/saved-searches", response_model=list[SavedSearch])
def list_saved_searches(request: Request) -> WireResponse:
    return answer(store_of(request).list_saved_searches())


@router.post("/saved-searches/delete", response_model=Written)
def delete_saved_search(request: Request, body: Name, key: IdempotencyKey) -> WireResponse:
    store = store_of(request)
    applied, deleted = apply_once(request, key, lambda: store.delete_saved_search(body.name))
    return answer({"applied": applied, "result": bool(deleted) or not applied})
