"""MLflow's routes that write a run's metrics, params and tags, and read metric histories
(paged, and sampled over a step interval for the UI's charts).

Every write is stored before the answer goes out (no buffering in the server), so any
server process sees it at once."""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from prefect_mlops.core.ids import now_ms
from prefect_mlops.server.mlflow.protos import translator
from prefect_mlops.server.mlflow.requests import (
    add_routes,
    invalid,
    json_number,
    page_offset,
    page_token,
    required,
)
from prefect_mlops.server.mlflow.runs import run_id
from prefect_mlops.tracking.entities import Metric, MetricHistory, Param, RunTag

router = APIRouter()

# MLflow's limits on one log-batch request.
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_BATCH_TOTAL = 1000
MAX_BULK_RUNS = 100
MAX_BULK_POINTS = 2500  # MLflow's MAX_RESULTS_PER_RUN, limit and default alike
DEFAULT_BULK_POINTS = 2500


def _metric(m: dict[str, Any]) -> Metric:
    return Metric(
        required(m, "key"), required(m, "value"), m.get("timestamp", now_ms()), m.get("step", 0)
    )


def log_metric(request: Request, args: dict[str, Any]) -> None:
    if "value" not in args:
        raise invalid("Missing value for required parameter 'value'.")
    translator(request).client.log_batch(run_id(args), metrics=[_metric(args)], allow_finished=True)


def log_param(request: Request, args: dict[str, Any]) -> None:
    param = Param(required(args, "key"), args.get("value", ""))
    translator(request).client.log_batch(run_id(args), params=[param], allow_finished=True)


def set_tag(request: Request, args: dict[str, Any]) -> None:
    tag = RunTag(required(args, "key"), args.get("value", ""))
    translator(request).client.log_batch(run_id(args), tags=[tag], allow_finished=True)


def delete_tag(request: Request, args: dict[str, Any]) -> None:
    translator(request).client.delete_tag(run_id(args), required(args, "key"))


def log_batch(request: Request, args: dict[str, Any]) -> None:
    metrics, params, tags = (args.get(k, []) for k in ("metrics", "params", "tags"))
    for name, items, limit in (
        ("metrics", metrics, MAX_BATCH_METRICS),
        ("params", params, MAX_BATCH_PARAMS),
        ("tags", tags, MAX_BATCH_TAGS),
    ):
        if len(items) > limit:
            raise invalid(
                f"A batch logging request can have at most {limit} {name}; got {len(items)}."
            )
    if len(metrics) + len(params) + len(tags) > MAX_BATCH_TOTAL:
        raise invalid(
            f"A batch logging request can have at most {MAX_BATCH_TOTAL} metrics, params and "
            "tags in total."
        )
    for m in metrics:
        if "value" not in m:
            raise invalid("Missing value for required parameter 'metrics[].value'.")
    translator(request).client.log_batch(
        run_id(args),
        metrics=[_metric(m) for m in metrics],
        params=[Param(required(p, "key"), p.get("value", "")) for p in params],
        tags=[RunTag(required(t, "key"), t.get("value", "")) for t in tags],
        allow_finished=True,
    )


def _point(m: Metric) -> dict[str, Any]:
    return {"key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step}


def _history_response(history: MetricHistory) -> Response:
    """The whole history as JSON written straight from its columns: a 100,000-point history
    would otherwise become 100,000 dicts, walked twice, before a byte is sent."""
    head = f'{{"key":{json.dumps(history.key)},"value":'
    values = history.values
    texts = (
        map(repr, values)
        if all(map(math.isfinite, values))
        else map(json_number, values)  # NaN and infinities are spelt as strings
    )
    points = ",".join(
        f'{head}{v},"timestamp":{ts},"step":{step}}}'
        for v, ts, step in zip(texts, history.timestamps, history.steps, strict=True)
    )
    return Response(f'{{"metrics":[{points}]}}', media_type="application/json")


def get_history(request: Request, args: dict[str, Any]) -> dict[str, Any] | Response:
    """All points (MLflow's default), or pages of ``max_results`` when it is given."""
    client = translator(request).client
    history = client.get_metric_history(run_id(args), required(args, "metric_key"))
    max_results = args.get("max_results")
    if max_results is None and not args.get("page_token"):
        return _history_response(history)
    if max_results is not None and max_results <= 0:
        raise invalid(f"max_results must be positive, got {max_results}.")
    offset = page_offset(args.get("page_token"))
    end = len(history) if max_results is None else offset + max_results
    answer: dict[str, Any] = {"metrics": [_point(m) for m in history[offset:end]]}
    if end < len(history):
        answer["next_page_token"] = page_token(end)
    return answer


def _sampled_steps(steps: list[int], limit: int) -> set[int]:
    """At most ``limit`` of the distinct ``steps``, evenly spread, first and last kept."""
    distinct = sorted(set(steps))
    if len(distinct) <= limit:
        return set(distinct)
    if limit == 1:
        return {distinct[0]}
    stride = (len(distinct) - 1) / (limit - 1)
    return {distinct[round(i * stride)] for i in range(limit)}


def get_history_bulk_interval(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    client = translator(request).client
    run_ids = args.get("run_ids") or []
    if not run_ids:
        raise invalid("Missing value for required parameter 'run_ids'.")
    if len(run_ids) > MAX_BULK_RUNS:
        raise invalid(f"At most {MAX_BULK_RUNS} run_ids may be given; got {len(run_ids)}.")
    key = required(args, "metric_key")
    limit = args.get("max_results", DEFAULT_BULK_POINTS)
    if not 0 < limit <= MAX_BULK_POINTS:
        raise invalid(f"max_results={limit} is out of range 1..{MAX_BULK_POINTS}.")
    if ("start_step" in args) != ("end_step" in args):
        raise invalid("start_step and end_step must be given together.")
    start, end = args.get("start_step", -(2**63)), args.get("end_step", 2**63)
    if start > end:
        raise invalid(f"start_step={start} is after end_step={end}.")
    out: list[dict[str, Any]] = []
    for rid in run_ids:
        history = [m for m in client.get_metric_history(rid, key) if start <= m.step <= end]
        keep = _sampled_steps([m.step for m in history], limit)
        out.extend({**_point(m), "run_id": rid} for m in history if m.step in keep)
    return {"metrics": out}


RUN = {"run_id": str, "run_uuid": str}
METRIC = {
    "key": str,
    "value": float,
    "timestamp": int,
    "step": int,
    "dataset_name": str,
    "dataset_digest": str,
    "model_id": str,
    "run_id": str,
}
TAG = {"key": str, "value": str}
ROUTES: list[tuple[str, str, dict[str, Any], Any]] = [
    ("POST", "/runs/log-metric", {**RUN, **METRIC}, log_metric),
    ("POST", "/runs/log-parameter", {**RUN, **TAG}, log_param),
    ("POST", "/runs/set-tag", {**RUN, **TAG}, set_tag),
    ("POST", "/runs/delete-tag", {"run_id": str, "key": str}, delete_tag),
    (
        "POST",
        "/runs/log-batch",
        {"run_id": str, "metrics": [METRIC], "params": [TAG], "tags": [TAG]},
        log_batch,
    ),
    (
        "GET",
        "/metrics/get-history",
        {**RUN, "metric_key": str, "page_token": str, "max_results": int},
        get_history,
    ),
    (
        "GET",
        "/metrics/get-history-bulk-interval",
        {
            "run_ids": [str],
            "metric_key": str,
            "start_step": int,
            "end_step": int,
            "max_results": int,
        },
        get_history_bulk_interval,
    ),
]

add_routes(router, ROUTES)
