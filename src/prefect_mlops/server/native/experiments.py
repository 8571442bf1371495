"""Experiments: create (with a client-made id), read by id or name, search."""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.requests import Request

from prefect_mlops.core.errors import AlreadyExists
from prefect_mlops.server.native.common import (
    IdempotencyKey,
    WireResponse,
    answer,
    apply_once,
    store_of,
)
from prefect_mlops.server.native.models import CreateExperiment, SearchExperiments, Written
from prefect_mlops.server.paths import location_under_root
from prefect_mlops.tracking.entities import Experiment

router = APIRouter(tags=["experiments"])


@router.post("/experiments", response_model=Written)
def create_experiment(
    request: Request, body: CreateExperiment, key: IdempotencyKey
) -> WireResponse:
    """Create an experiment; with ``if_exists="use"`` an experiment already called ``name``
    answers instead (how experiments created offline join the server's)."""
    store = store_of(request)
    root = location_under_root(request.app.state.client.artifact_root, body.artifact_root)

    def create() -> str:
        return store.create_experiment(body.name, root, body.tags, body.experiment_id)

    try:
        applied, experiment_id = apply_once(request, key, create)
    except AlreadyExists:
        if body.if_exists != "use":
            raise
        applied, experiment_id = False, None
    if experiment_id is None:  # replayed, or the name was taken
        found = store.get_experiment_by_name(body.name)
        if found is None:
            raise AlreadyExists(f"Experiment id {body.experiment_id!r} is taken.")
        experiment_id = found.experiment_id
    return answer({"applied": applied, "result": experiment_id})


@router.get("/experiments/{experiment_id}", response_model=Experiment)
def get_experiment(request: Request, experiment_id: str) -> WireResponse:
    return answer(store_of(request).get_experiment(experiment_id))


@router.get("/experiment-by-name", response_model=Experiment | None)
def get_experiment_by_name(request: Request, name: str = Query()) -> WireResponse:
    return answer(store_of(request).get_experiment_by_name(name))


@router.post("/experiments/search", response_model=list[Experiment])
def search_experiments(request: Request, body: SearchExperiments) -> WireResponse:
    found = store_of(request).search_experiments(body.view, body.max_results, body.filter_string)
    return answer(found)
