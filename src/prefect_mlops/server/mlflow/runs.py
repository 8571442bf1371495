"""MLflow's run routes: create, get, update, delete, restore, search, inputs, outputs, the
run's ``log-model`` record, and listing a run's artifacts."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request

from prefect_mlops.server.mlflow.protos import VIEW_TYPES, Translator, translator
from prefect_mlops.server.mlflow.requests import Choice, add_routes, invalid, required
from prefect_mlops.tracking.entities import DatasetInput, ModelOutput, Run
from prefect_mlops.tracking.validation import MAX_TAG_VALUE_LENGTH

router = APIRouter()

TAG = {"key": str, "value": str}
STATUS = Choice("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED", first=1)
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
MODEL_HISTORY_TAG = "mlflow.log-model.history"
CONTEXT_TAG = "mlflow.data.context"
MAX_SEARCH_RESULTS = 50_000


def run_id(args: dict[str, Any]) -> str:
    return str(required(args, "run_id", "run_uuid"))


def full_run(t: Translator, run: Run) -> dict[str, Any]:
    """A run as MLflow answers it: data with each latest metric's step and timestamp."""
    rid = run.info.run_id
    return t.run(
        run,
        t.client.get_metric_summaries(rid) if run.data.metrics else (),
        t.client.get_inputs(rid),
        t.client.get_model_outputs(rid),
    )


def create_run(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    t = translator(request)
    tags = {required(tag, "key"): tag.get("value", "") for tag in args.get("tags", [])}
    run = t.client.create_run(
        t.experiment_in(args.get("experiment_id") or "0"),
        run_name=args.get("run_name") or tags.get(RUN_NAME_TAG) or None,
        start_time=args.get("start_time"),
        tags=tags,
        parent_run_id=tags.get(PARENT_TAG) or None,
        user_id=args.get("user_id", ""),
    )
    return {"run": full_run(t, run)}


def get_run(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    t = translator(request)
    return {"run": full_run(t, t.client.get_run(run_id(args)))}


def update_run(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    t = translator(request)
    rid = run_id(args)
    if "run_name" in args:
        t.client.update_run(rid, run_name=args["run_name"])
    if "status" in args:
        t.client.set_terminated(rid, args["status"], args.get("end_time"))
    return {"run_info": t.run_info(t.client.get_run_info(rid))}


def delete_run(request: Request, args: dict[str, Any]) -> None:
    translator(request).client.delete_run(run_id(args))


def restore_run(request: Request, args: dict[str, Any]) -> None:
    translator(request).client.restore_run(run_id(args))


def search_runs(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    t = translator(request)
    max_results = args.get("max_results", 1000)
    if not 0 < max_results <= MAX_SEARCH_RESULTS:
        raise invalid(f"max_results={max_results} is out of range 1..{MAX_SEARCH_RESULTS}.")
    runs = t.client.search_runs(
        [t.experiment_in(e) for e in args.get("experiment_ids", [])],
        args.get("filter", ""),
        VIEW_TYPES[args.get("run_view_type", "ACTIVE_ONLY")],
        max_results,
        args.get("order_by") or None,
        args.get("page_token") or None,
    )
    ids = [r.info.run_id for r in runs]
    details = t.client.run_details_many(ids)
    outputs = t.client.get_model_outputs_many(ids)
    answer: dict[str, Any] = {
        "runs": [t.run(r, *details[r.info.run_id], outputs[r.info.run_id]) for r in runs]
    }
    if runs.token:
        answer["next_page_token"] = runs.token
    return answer


def log_inputs(request: Request, args: dict[str, Any]) -> None:
    t = translator(request)
    datasets = []
    for item in args.get("datasets", []):
        dataset = required(item, "dataset")
        context = next(
            (tag.get("value", "") for tag in item.get("tags", []) if tag.get("key") == CONTEXT_TAG),
            "",
        )
        datasets.append(
            DatasetInput(required(dataset, "name"), required(dataset, "digest"), context)
        )
    rid = run_id(args)
    if datasets:
        t.client.log_inputs(rid, datasets)
    else:
        t.client.get_run_info(rid)
    models = [ModelOutput(required(m, "model_id"), 0) for m in args.get("models", [])]
    for model in models:
        t.client.get_logged_model(model.model_id)


def log_outputs(request: Request, args: dict[str, Any]) -> None:
    t = translator(request)
    outputs = [
        ModelOutput(required(m, "model_id"), m.get("step", 0)) for m in args.get("models", [])
    ]
    t.client.log_model_outputs(run_id(args), outputs)


def log_model(request: Request, args: dict[str, Any]) -> None:
    """Append the model's MLmodel description to the run's model history tag."""
    t = translator(request)
    rid = run_id(args)
    try:
        model = json.loads(required(args, "model_json"))
    except ValueError:
        raise invalid("model_json must be the JSON of an MLmodel description.") from None
    history = t.client.get_run(rid).data.tags.get(MODEL_HISTORY_TAG)
    try:
        models = json.loads(history) if history else []
    except ValueError:
        models = []  # an unreadable tag (set by hand) starts over rather than failing
    if not isinstance(models, list):
        models = []
    models.append(model)
    text = json.dumps(models)
    while len(text) > MAX_TAG_VALUE_LENGTH and len(models) > 1:
        models.pop(0)  # the tag keeps the newest models that fit
        text = json.dumps(models)
    if len(text) <= MAX_TAG_VALUE_LENGTH:
        t.client.set_tag(rid, MODEL_HISTORY_TAG, text)


def list_artifacts(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    t = translator(request)
    rid = run_id(args)
    info = t.client.get_run_info(rid)
    path = args.get("path") or None
    files = [
        {"path": f.path, "is_dir": f.is_dir, **({} if f.is_dir else {"file_size": f.file_size})}
        for f in t.client.list_artifacts(rid, path)
    ]
    return {"root_uri": t.uri_out(info.artifact_uri), "files": files}


RUN = {"run_id": str, "run_uuid": str}
DATASET = {
    "name": str,
    "digest": str,
    "source_type": str,
    "source": str,
    "schema": str,
    "profile": str,
}
ROUTES: list[tuple[str, str, dict[str, Any], Any]] = [
    (
        "POST",
        "/runs/create",
        {
            "experiment_id": str,
            "user_id": str,
            "run_name": str,
            "start_time": int,
            "tags": [TAG],
        },
        create_run,
    ),
    ("GET", "/runs/get", RUN, get_run),
    (
        "POST",
        "/runs/update",
        {**RUN, "status": STATUS, "end_time": int, "run_name": str},
        update_run,
    ),
    ("POST", "/runs/delete", {"run_id": str}, delete_run),
    ("POST", "/runs/restore", {"run_id": str}, restore_run),
    (
        "POST",
        "/runs/search",
        {
            "experiment_ids": [str],
            "filter": str,
            "run_view_type": Choice(*VIEW_TYPES, first=1),
            "max_results": int,
            "order_by": [str],
            "page_token": str,
        },
        search_runs,
    ),
    (
        "POST",
        "/runs/log-inputs",
        {
            "run_id": str,
            "datasets": [{"tags": [TAG], "dataset": DATASET}],
            "models": [{"model_id": str}],
        },
        log_inputs,
    ),
    (
        "POST",
        "/runs/outputs",
        {"run_id": str, "models": [{"model_id": str, "step": int}]},
        log_outputs,
    ),
    ("POST", "/runs/log-model", {"run_id": str, "model_json": str}, log_model),
    ("GET", "/artifacts/list", {**RUN, "path": str, "page_token": str}, list_artifacts),
]

add_routes(router, ROUTES)
