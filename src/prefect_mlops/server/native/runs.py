"""Runs: create (with a client-made id), read, update, end, delete/restore, bulk import;
their params, tags and dataset inputs."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request

from prefect_mlops.server.native.common import (
    IdempotencyKey,
    WireResponse,
    answer,
    apply_once,
    store_of,
)
from prefect_mlops.server.native.models import (
    BulkRuns,
    CreateRun,
    EndRun,
    Inputs,
    Key,
    KeyValues,
    Lifecycle,
    UpdateRun,
    Written,
)
from prefect_mlops.server.paths import check_run_id, location_under_root
from prefect_mlops.tracking.entities import DatasetInput, Param, Run, RunInfo, RunTag
from prefect_mlops.tracking.store.wire import metric_rows

router = APIRouter(tags=["runs"])


@router.post("/runs", response_model=Written)
def create_run(request: Request, body: CreateRun, key: IdempotencyKey) -> WireResponse:
    """A new run; a replayed request answers with the run it created."""
    store = store_of(request)
    check_run_id(body.run_id)
    root = request.app.state.client.artifact_root
    location = body.artifact_location
    if location is None:
        location = store.get_experiment(body.experiment_id).artifact_location
    location = location_under_root(root, location)
    applied, run = apply_once(
        request,
        key,
        lambda: store.create_run(
            body.experiment_id,
            body.run_name,
            location,
            start_time=body.start_time,
            user_id=body.user_id,
            tags=body.tags,
            parent_run_id=body.parent_run_id,
            prefect_flow_run_id=body.prefect_flow_run_id,
            status=body.status,
            params=[Param(k, v) for k, v in body.params],
            run_id=body.run_id,
        ),
    )
    if run is None and body.run_id is not None:
        run = store.get_run(body.run_id)
    return answer({"applied": applied, "result": run})


@router.get("/runs/{run_id}", response_model=Run)
def get_run(request: Request, run_id: str) -> WireResponse:
    return answer(store_of(request).get_run(run_id))


@router.get("/runs/{run_id}/info", response_model=RunInfo)
def get_run_info(request: Request, run_id: str) -> WireResponse:
    return answer(store_of(request).get_run_info(run_id))


@router.get("/flow-runs/{flow_run_id}/run-id", response_model=str | None)
def run_id_for_flow_run(request: Request, flow_run_id: str) -> WireResponse:
    return answer(store_of(request).run_id_for_flow_run(flow_run_id))


@router.get("/running-bound-runs", response_model=list[RunInfo])
def list_running_bound_runs(request: Request) -> WireResponse:
    return answer(store_of(request).list_running_bound_runs())


@router.patch("/runs/{run_id}", response_model=Written)
def update_run(request: Request, run_id: str, body: UpdateRun, key: IdempotencyKey) -> WireResponse:
    store = store_of(request)
    applied, changed = apply_once(
        request,
        key,
        lambda: store.update_run(
            run_id,
            status=body.status,
            end_time=body.end_time,
            run_name=body.run_name,
            only_if_status=body.only_if_status,
        ),
    )
    return answer({"applied": applied, "result": bool(changed)})


@router.post("/runs/{run_id}/lifecycle", response_model=Written)
def set_lifecycle(
    request: Request, run_id: str, body: Lifecycle, key: IdempotencyKey
) -> WireResponse:
    store = store_of(request)
    store.get_run_info(run_id)
    applied, _ = apply_once(request, key, lambda: store.set_lifecycle(run_id, body.stage))
    return answer({"applied": applied})


@router.post("/runs/{run_id}/end", response_model=Written)
def end_run(request: Request, run_id: str, body: EndRun, key: IdempotencyKey) -> WireResponse:
    store = store_of(request)
    applied, _ = apply_once(
        request,
        key,
        lambda: store.end_run(
            run_id, body.status, body.end_time, tags=body.tags, artifacts=body.artifacts
        ),
    )
    return answer({"applied": applied})


@router.post("/runs-bulk", response_model=Written)
def create_runs_bulk(request: Request, body: BulkRuns, key: IdempotencyKey) -> WireResponse:
    store = store_of(request)
    root = request.app.state.client.artifact_root
    for info in body.runs:
        check_run_id(info.run_id)
        location_under_root(root, info.artifact_uri)
    applied, _ = apply_once(
        request,
        key,
        lambda: store.create_runs_bulk(
            body.runs, body.params, body.tags, metric_rows(body.metrics)
        ),
    )
    return answer({"applied": applied})


@router.post("/runs/{run_id}/params", response_model=Written)
def log_params(request: Request, run_id: str, body: KeyValues, key: IdempotencyKey) -> WireResponse:
    store = store_of(request)
    store.get_run_info(run_id)
    params = [Param(k, v) for k, v in body.items]
    applied, _ = apply_once(request, key, lambda: store.log_params(run_id, params))
    return answer({"applied": applied})


@router.post("/runs/{run_id}/tags", response_model=Written)
def set_tags(request: Request, run_id: str, body: KeyValues, key: IdempotencyKey) -> WireResponse:
    store = store_of(request)
    store.get_run_info(run_id)
    tags = [RunTag(k, v) for k, v in body.items]
    applied, _ = apply_once(request, key, lambda: store.set_tags(run_id, tags))
    return answer({"applied": applied})


@router.post("/runs/{run_id}/tags/delete", response_model=Written)
def delete_tag(request: Request, run_id: str, body: Key, key: IdempotencyKey) -> WireResponse:
    store = store_of(request)
    applied, deleted = apply_once(request, key, lambda: store.delete_tag(run_id, body.key))
    return answer({"applied": applied, "result": bool(deleted) or not applied})


@router.post("/runs/{run_id}/inputs", response_model=Written)
def log_inputs(request: Request, run_id: str, body: Inputs, key: IdempotencyKey) -> WireResponse:
    store = store_of(request)
    store.get_run_info(run_id)
    applied, _ = apply_once(request, key, lambda: store.log_inputs(run_id, body.inputs))
    return answer({"applied": applied})


@router.get("/runs/{run_id}/inputs", response_model=list[DatasetInput])
def get_inputs(request: Request, run_id: str) -> WireResponse:
    return answer(store_of(request).get_inputs(run_id))
