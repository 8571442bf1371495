"""MLflow's experiment routes: create, get, get-by-name, search, update, delete, restore and
experiment tags."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request

from prefect_mlops.core.errors import NotFound
from prefect_mlops.server.mlflow.protos import VIEW_TYPES, Translator, translator
from prefect_mlops.server.mlflow.requests import (
    Choice,
    add_routes,
    invalid,
    page_offset,
    page_token,
    required,
)
from prefect_mlops.server.paths import location_under_root

router = APIRouter()

TAG = {"key": str, "value": str}
VIEW = Choice(*VIEW_TYPES, first=1)
MAX_EXPERIMENTS = 50_000
_ORDER_FIELDS = {
    "name": lambda e: e.name,
    "experiment_id": lambda e: e.experiment_id,
    "creation_time": lambda e: e.creation_time,
    "last_update_time": lambda e: e.last_update_time,
}


def _experiment_id(t: Translator, args: dict[str, Any]) -> str:
    return t.experiment_in(required(args, "experiment_id"))


def create_experiment(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    t = translator(request)
    experiment_id = t.client.create_experiment(
        required(args, "name"),
        location_under_root(t.root, args.get("artifact_location")),
        {required(tag, "key"): tag.get("value", "") for tag in args.get("tags", [])},
    )
    return {"experiment_id": t.experiment_out(experiment_id)}


def get_experiment(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    t = translator(request)
    return {"experiment": t.experiment(t.client.get_experiment(_experiment_id(t, args)))}


def get_experiment_by_name(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    t = translator(request)
    name = required(args, "experiment_name")
    found = t.client.get_experiment_by_name(name)
    if found is None:
        raise NotFound(f"Could not find experiment with name '{name}'")
    return {"experiment": t.experiment(found)}


def _order(order_by: list[str]) -> list[tuple[str, bool]]:
    out = []
    for clause in order_by:
        words = clause.split()
        field = words[0].removeprefix("attributes.") if words else ""
        direction = words[1].upper() if len(words) > 1 else "ASC"
        if field not in _ORDER_FIELDS or direction not in ("ASC", "DESC") or len(words) > 2:
            raise invalid(
                f"Invalid order_by clause {clause!r}; use one of {sorted(_ORDER_FIELDS)} "
                "followed by ASC or DESC."
            )
        out.append((field, direction == "ASC"))
    return out or [("creation_time", False), ("experiment_id", True)]


def search_experiments(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    """Experiments are few: the matching ones are sorted and paged here, by offset."""
    t = translator(request)
    max_results = args.get("max_results", 1000)
    if not 0 < max_results <= MAX_EXPERIMENTS:
        raise invalid(f"max_results={max_results} is out of range 1..{MAX_EXPERIMENTS}.")
    order, offset = _order(args.get("order_by", [])), page_offset(args.get("page_token"))
    found = t.client.search_experiments(
        VIEW_TYPES[args.get("view_type", "ACTIVE_ONLY")], MAX_EXPERIMENTS, args.get("filter")
    )
    for field, ascending in reversed(order):
        found.sort(key=_ORDER_FIELDS[field], reverse=not ascending)
    page = found[offset : offset + max_results]
    answer: dict[str, Any] = {"experiments": [t.experiment(e) for e in page]}
    if offset + max_results < len(found):
        answer["next_page_token"] = page_token(offset + max_results)
    return answer


def update_experiment(request: Request, args: dict[str, Any]) -> None:
    t = translator(request)
    t.client.rename_experiment(_experiment_id(t, args), required(args, "new_name"))


def delete_experiment(request: Request, args: dict[str, Any]) -> None:
    t = translator(request)
    t.client.delete_experiment(_experiment_id(t, args))


def restore_experiment(request: Request, args: dict[str, Any]) -> None:
    t = translator(request)
    t.client.restore_experiment(_experiment_id(t, args))


def set_experiment_tag(request: Request, args: dict[str, Any]) -> None:
    t = translator(request)
    t.client.set_experiment_tag(
        _experiment_id(t, args), required(args, "key"), args.get("value", "")
    )


def delete_experiment_tag(request: Request, args: dict[str, Any]) -> None:
    t = translator(request)
    t.client.delete_experiment_tag(_experiment_id(t, args), required(args, "key"))


ID = {"experiment_id": str}
SEARCH = {
    "max_results": int,
    "page_token": str,
    "filter": str,
    "order_by": [str],
    "view_type": VIEW,
}
ROUTES: list[tuple[str, str, dict[str, Any], Any]] = [
    (
        "POST",
        "/experiments/create",
        {"name": str, "artifact_location": str, "tags": [TAG]},
        create_experiment,
    ),
    ("GET", "/experiments/get", ID, get_experiment),
    ("GET", "/experiments/get-by-name", {"experiment_name": str}, get_experiment_by_name),
    ("POST", "/experiments/search", SEARCH, search_experiments),
    ("GET", "/experiments/search", SEARCH, search_experiments),  # MLflow's proto has both
    ("POST", "/experiments/update", {**ID, "new_name": str}, update_experiment),
    ("POST", "/experiments/delete", ID, delete_experiment),
    ("POST", "/experiments/restore", ID, restore_experiment),
    (
        "POST",
        "/experiments/set-experiment-tag",
        {**ID, "key": str, "value": str},
        set_experiment_tag,
    ),
    ("POST", "/experiments/delete-experiment-tag", {**ID, "key": str}, delete_experiment_tag),
]

add_routes(router, ROUTES)
