"""Which flow run the caller is part of, and what its run is created from.

Everything here reads Prefect's run contexts in this process (no API calls) and touches Prefect
only when it is already imported: outside Prefect it costs nothing. When the flow's context is
not at hand (a task in another process), the details come from the API instead.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
from collections.abc import Mapping
from typing import Any

from prefect_mlops.tracking.flow_runs.api import flow_run_url, prefect_client
from prefect_mlops.tracking.validation import MAX_PARAM_VALUE_LENGTH, stringify

#: How far up the chain of enclosing contexts a lookup goes (subflows nest this deep at most).
MAX_DEPTH = 64


@dataclasses.dataclass(frozen=True)
class FlowRunDetails:
    """What the run of a flow run is created from, kept while the flow's context is at hand
    so that another thread can create the run later without API calls."""

    flow_run: Any
    flow_name: str
    parameters: dict[str, str]  # flattened when kept: the flow may change its objects later
    parent_flow_run_id: str | None
    parent_known: bool  # False: a subflow whose parent runs elsewhere (ask the API)
    start_ms: int | None


_details: dict[str, FlowRunDetails] = {}  # flow run id -> details, for runs not yet created
_lock = threading.Lock()


def current_flow_run_id() -> str | None:
    """The id of the flow run the caller is part of, or None outside Prefect."""
    context = sys.modules.get("prefect.context")
    if context is None:
        return None
    task_ctx = context.TaskRunContext.get()
    flow_ctx = context.FlowRunContext.get()
    if task_ctx is not None and task_ctx.task_run.flow_run_id is not None:
        # A flow called inside a task is newer than that task: prefer the flow then.
        flow_run = flow_ctx.flow_run if flow_ctx is not None else None
        if flow_run is not None and flow_run.parent_task_run_id == task_ctx.task_run.id:
            return str(flow_run.id)
        return str(task_ctx.task_run.flow_run_id)
    if flow_ctx is not None and flow_ctx.flow_run is not None:
        return str(flow_ctx.flow_run.id)
    return None


def _enclosing(ctx: Any) -> Any:
    """The flow run context that ``ctx`` shadows, if any. Prefect keeps the context variable's
    reset token on each context it enters; the token's old value is the enclosing context.
    (A private attribute of Prefect 3.9, whose minor version the project pins.)"""
    from prefect.context import FlowRunContext

    previous = getattr(getattr(ctx, "_token", None), "old_value", None)
    return previous if isinstance(previous, FlowRunContext) else None


def local_flow_context(flow_run_id: str) -> Any:
    """The context of ``flow_run_id`` when this process runs it: the current flow run's, or
    a parent's that a subflow's context shadows; None otherwise."""
    if "prefect.context" not in sys.modules:
        return None
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    for _ in range(MAX_DEPTH):
        if ctx is None:
            return None
        if ctx.flow_run is not None and str(ctx.flow_run.id) == flow_run_id:
            return ctx
        ctx = _enclosing(ctx)
    return None


def flatten_params(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts, dataclasses and pydantic models become ``a.b`` keys."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if hasattr(value, "model_dump") and callable(value.model_dump):
            value = value.model_dump()
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, f"{name}."))
            continue
        if isinstance(value, (list, tuple, set, Mapping)):
            text = json.dumps(list(value) if isinstance(value, set) else value, default=str)
        else:
            text = stringify(value)
        if len(text) > MAX_PARAM_VALUE_LENGTH:
            text = text[: MAX_PARAM_VALUE_LENGTH - 15] + "...[truncated]"
        flat[name] = text
    return flat


def remember_flow_run(flow_run_id: str, start_ms: int | None = None) -> bool:
    """Keep the details of ``flow_run_id`` (run in this thread) for creating its run later;
    False when its context is not at hand here."""
    if flow_run_id in _details:
        return True
    ctx = local_flow_context(flow_run_id)
    if ctx is None or ctx.flow is None or ctx.flow_run is None:
        return False
    parent, known = None, ctx.flow_run.parent_task_run_id is None
    previous = ctx
    for _ in range(0 if known else MAX_DEPTH):  # a subflow's parent: the enclosing context's
        previous = _enclosing(previous)
        if previous is None or previous.flow_run is None:
            break
        if str(previous.flow_run.id) != flow_run_id:
            parent, known = str(previous.flow_run.id), True
            break
    with _lock:
        _details[flow_run_id] = FlowRunDetails(
            ctx.flow_run,
            ctx.flow.name,
            flatten_params(ctx.parameters or {}),
            parent,
            known,
            start_ms,
        )
    return True


def kept_details(flow_run_id: str) -> FlowRunDetails | None:
    return _details.get(flow_run_id)


def forget_details(flow_run_id: str | None = None) -> None:
    """Drop the kept details of ``flow_run_id`` (of every flow run when None)."""
    with _lock:
        if flow_run_id is None:
            _details.clear()
        else:
            _details.pop(flow_run_id, None)


def flow_run_details(flow_run_id: str) -> tuple[Any, str, dict[str, Any]]:
    """(flow run, flow name, parameters) of ``flow_run_id``: kept, from context when this
    process runs it, else from the API."""
    details = _details.get(flow_run_id)
    if details is not None:
        return details.flow_run, details.flow_name, dict(details.parameters)
    ctx = local_flow_context(flow_run_id)
    if ctx is not None and ctx.flow is not None:
        return ctx.flow_run, ctx.flow.name, dict(ctx.parameters or {})
    with prefect_client() as client:
        flow_run = client.read_flow_run(flow_run_id)
        flow_name = client.read_flow(flow_run.flow_id).name
    return flow_run, flow_name, dict(flow_run.parameters or {})


def parent_flow_run_id(flow_run: Any) -> str | None:
    """The flow run whose task started ``flow_run`` (a subflow), asked of the API."""
    if flow_run.parent_task_run_id is None:
        return None
    with prefect_client() as client:
        task_run = client.read_task_run(flow_run.parent_task_run_id)
    return str(task_run.flow_run_id) if task_run.flow_run_id else None


def prefect_tags(flow_run: Any, flow_name: str) -> dict[str, str]:
    """The ``prefect.*`` tags of a flow run's run (only those the flow run has)."""
    tags = {
        "prefect.flow_run_id": str(flow_run.id),
        "prefect.flow_name": flow_name,
        "prefect.flow_run_name": flow_run.name,
    }
    if flow_run.deployment_id:
        tags["prefect.deployment_id"] = str(flow_run.deployment_id)
    if flow_run.work_pool_name:
        tags["prefect.work_pool"] = flow_run.work_pool_name
    if flow_run.tags:
        tags["prefect.tags"] = ",".join(sorted(flow_run.tags))
    url = flow_run_url(flow_run)
    if url:
        tags["prefect.url"] = url
    return tags


def start_ms(flow_run: Any) -> int | None:
    """When the flow run started, so the run's duration is the flow run's."""
    started = flow_run.start_time or (flow_run.state.timestamp if flow_run.state else None)
    return int(started.timestamp() * 1000) if started is not None else None
