"""MLflow 3's logged-model routes, as ``mlflow.<flavor>.log_model`` uses them: create,
get, finalize, search, tags, params, delete; ``runs:/<id>/model`` resolves through search
and ``models:/m-...`` through get."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request

from prefect_mlops.server.mlflow.protos import MODEL_STATUS_PREFIX, translator
from prefect_mlops.server.mlflow.requests import Choice, add_routes, invalid, required

router = APIRouter()

TAG = {"key": str, "value": str}
STATUS = Choice(
    "LOGGED_MODEL_STATUS_UNSPECIFIED",
    "LOGGED_MODEL_PENDING",
    "LOGGED_MODEL_READY",
    "LOGGED_MODEL_UPLOAD_FAILED",
)


def _pairs(items: list[dict[str, Any]]) -> dict[str, str]:
    return {required(item, "key"): item.get("value", "") for item in items}


def create_logged_model(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    t = translator(request)
    model = t.client.create_logged_model(
        t.experiment_in(required(args, "experiment_id")),
        args.get("name") or "model",
        source_run_id=args.get("source_run_id") or None,
        model_type=args.get("model_type", ""),
        tags=_pairs(args.get("tags", [])),
        params=_pairs(args.get("params", [])),
    )
    return {"model": t.logged_model(model)}


def get_logged_model(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    t = translator(request)
    model = t.client.get_logged_model(args["model_id"], args.get("allow_deleted", False))
    return {"model": t.logged_model(model)}


def finalize_logged_model(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    t = translator(request)
    status = required(args, "status")
    if status == "LOGGED_MODEL_STATUS_UNSPECIFIED":
        raise invalid("status must be LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED.")
    model = t.client.finalize_logged_model(
        args["model_id"], status.removeprefix(MODEL_STATUS_PREFIX)
    )
    return {"model": t.logged_model(model)}


def delete_logged_model(request: Request, args: dict[str, Any]) -> None:
    translator(request).client.delete_logged_model(args["model_id"])


def search_logged_models(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    t = translator(request)
    if args.get("datasets"):
        raise invalid("Searching logged models by dataset is not supported by this server.")
    order = [
        (required(o, "field_name"), o.get("ascending", True)) for o in args.get("order_by", [])
    ]
    models = t.client.search_logged_models(
        [t.experiment_in(e) for e in args.get("experiment_ids", [])],
        args.get("filter", ""),
        args.get("max_results", 100),
        order,
        args.get("page_token") or None,
    )
    answer: dict[str, Any] = {"models": [t.logged_model(m) for m in models]}
    if models.token:
        answer["next_page_token"] = models.token
    return answer


def set_logged_model_tags(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    t = translator(request)
    model = t.client.set_logged_model_tags(args["model_id"], _pairs(args.get("tags", [])))
    return {"model": t.logged_model(model)}


def delete_logged_model_tag(request: Request, args: dict[str, Any]) -> None:
    translator(request).client.delete_logged_model_tag(args["model_id"], args["tag_key"])


def log_logged_model_params(request: Request, args: dict[str, Any]) -> None:
    translator(request).client.log_logged_model_params(
        args["model_id"], _pairs(args.get("params", []))
    )


ID = {"model_id": str}
ROUTES: list[tuple[str, str, dict[str, Any], Any]] = [
    (
        "POST",
        "/logged-models",
        {
            "experiment_id": str,
            "name": str,
            "model_type": str,
            "source_run_id": str,
            "params": [TAG],
            "tags": [TAG],
        },
        create_logged_model,
    ),
    (
        "POST",
        "/logged-models/search",
        {
            "experiment_ids": [str],
            "filter": str,
            "datasets": [{"dataset_name": str, "dataset_digest": str}],
            "max_results": int,
            "order_by": [
                {"field_name": str, "ascending": bool, "dataset_name": str, "dataset_digest": str}
            ],
            "page_token": str,
        },
        search_logged_models,
    ),
    ("GET", "/logged-models/{model_id}", {**ID, "allow_deleted": bool}, get_logged_model),
    ("PATCH", "/logged-models/{model_id}", {**ID, "status": STATUS}, finalize_logged_model),
    ("DELETE", "/logged-models/{model_id}", ID, delete_logged_model),
    ("PATCH", "/logged-models/{model_id}/tags", {**ID, "tags": [TAG]}, set_logged_model_tags),
    (
        "DELETE",
        "/logged-models/{model_id}/tags/{tag_key}",
        {**ID, "tag_key": str},
        delete_logged_model_tag,
    ),
    ("POST", "/logged-models/{model_id}/params", {**ID, "params": [TAG]}, log_logged_model_params),
]

add_routes(router, ROUTES)
