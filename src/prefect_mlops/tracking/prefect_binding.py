"""Binding tracking runs to Prefect flow runs.

Inside a flow run, the first ``log_*`` call creates (once, across processes: the flow run id is
unique in the runs table) a tracking run named after the flow run, in the experiment named after
the flow, with the flow's parameters and ``prefect.*`` tags. Hooks appended to the flow end the
run with the flow run's final state and publish its summary to the Prefect UI. Tasks, in threads
or in other processes, find the run through their flow run id.

Prefect is only touched when it is already imported: outside Prefect this module costs nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from prefect_mlops.core.errors import AlreadyExists
from prefect_mlops.tracking import runtime
from prefect_mlops.tracking.entities import RunInfo, RunStatus
from prefect_mlops.tracking.validation import MAX_PARAM_VALUE_LENGTH, stringify

if TYPE_CHECKING:
    from prefect_mlops.tracking.client import TrackingClient

logger = logging.getLogger("prefect_mlops.prefect")

ERROR_TAG = "mlops.error"
STATE_TO_STATUS = {
    "COMPLETED": RunStatus.FINISHED,
    "FAILED": RunStatus.FAILED,
    "CRASHED": RunStatus.KILLED,
    "CANCELLED": RunStatus.KILLED,
}

_bound: dict[str, str] = {}  # flow run id -> tracking run id, for this process
_bind_lock = threading.RLock()


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


_shared_client: Any = None


def _forget_shared_client() -> None:
    global _shared_client, _bind_lock
    _shared_client = None
    _bind_lock = threading.RLock()  # another thread may have held it at the fork


os.register_at_fork(after_in_child=_forget_shared_client)


@contextmanager
def prefect_client() -> Iterator[Any]:
    """A synchronous Prefect client: the running flow's own when there is one, else one
    shared, kept-open client (opening a client costs tens of milliseconds)."""
    global _shared_client
    from prefect.client.orchestration import SyncPrefectClient, get_client
    from prefect.context import FlowRunContext, TaskRunContext

    for ctx in (TaskRunContext.get(), FlowRunContext.get()):
        client = getattr(ctx, "client", None)
        if isinstance(client, SyncPrefectClient):
            yield client
            return
    with _bind_lock:
        if _shared_client is None:
            _shared_client = get_client(sync_client=True)
            _shared_client.__enter__()
    yield _shared_client


def remember_flow_run(flow_run_id: str, start_ms: int | None = None) -> bool:
    """Keep the details of ``flow_run_id`` (run in this thread) for creating its run later;
    False when its context is not at hand here."""
    if flow_run_id in _details:
        return True
    from prefect.context import FlowRunContext

    ctx = _local_flow_context(flow_run_id)
    if ctx is None or ctx.flow is None or ctx.flow_run is None:
        return False
    parent, known = None, ctx.flow_run.parent_task_run_id is None
    previous = ctx
    for _ in range(0 if known else 64):  # a subflow's parent: the enclosing flow context's
        previous = getattr(getattr(previous, "_token", None), "old_value", None)
        if not isinstance(previous, FlowRunContext) or previous.flow_run is None:
            break
        if str(previous.flow_run.id) != flow_run_id:
            parent, known = str(previous.flow_run.id), True
            break
    _details[flow_run_id] = FlowRunDetails(
        ctx.flow_run, ctx.flow.name, flatten_params(ctx.parameters or {}), parent, known, start_ms
    )
    return True


def _flow_run_details(flow_run_id: str) -> tuple[Any, str, dict[str, Any]]:
    """(flow run, flow name, parameters) of ``flow_run_id``, from context when we run it."""
    details = _details.get(flow_run_id)
    if details is not None:
        return details.flow_run, details.flow_name, dict(details.parameters)
    ctx = _local_flow_context(flow_run_id)
    if ctx is not None and ctx.flow is not None:
        return ctx.flow_run, ctx.flow.name, dict(ctx.parameters or {})
    with prefect_client() as client:
        flow_run = client.read_flow_run(flow_run_id)
        flow_name = client.read_flow(flow_run.flow_id).name
    return flow_run, flow_name, dict(flow_run.parameters or {})


def _parent_flow_run_id(flow_run: Any) -> str | None:
    if flow_run.parent_task_run_id is None:
        return None
    with prefect_client() as client:
        task_run = client.read_task_run(flow_run.parent_task_run_id)
    return str(task_run.flow_run_id) if task_run.flow_run_id else None


def _flow_run_url(flow_run: Any) -> str | None:
    try:
        from prefect.utilities.urls import url_for

        return url_for(flow_run, url_type="ui")
    except Exception:
        return None


def prefect_tags(flow_run: Any, flow_name: str) -> dict[str, str]:
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
    url = _flow_run_url(flow_run)
    if url:
        tags["prefect.url"] = url
    return tags


def _start_ms(flow_run: Any) -> int | None:
    """When the flow run started, so the run's duration is the flow run's."""
    started = flow_run.start_time or (flow_run.state.timestamp if flow_run.state else None)
    return int(started.timestamp() * 1000) if started is not None else None


def bound_run_id(client: TrackingClient, flow_run_id: str, experiment: str | None) -> str:
    """The tracking run of ``flow_run_id``, created on first use."""
    run_id = _bound.get(flow_run_id)
    if run_id is not None:
        return run_id
    with _bind_lock:
        run_id = _bound.get(flow_run_id)
        if run_id is None:
            run_id = _bind(client, flow_run_id, experiment)
            _bound[flow_run_id] = run_id
    return run_id


def _local_flow_context(flow_run_id: str) -> Any:
    """The context of ``flow_run_id`` when this process runs it: the current flow run's, or
    a parent's that a subflow's context shadows (found through the context variable token
    Prefect keeps on each context; pinned Prefect minor version)."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    for _ in range(64):
        if ctx is None:
            return None
        if ctx.flow_run is not None and str(ctx.flow_run.id) == flow_run_id:
            return ctx
        previous = getattr(getattr(ctx, "_token", None), "old_value", None)
        ctx = previous if isinstance(previous, FlowRunContext) else None
    return None


def _bind(client: TrackingClient, flow_run_id: str, experiment: str | None) -> str:
    existing = client.run_id_for_flow_run(flow_run_id)
    run_id = existing or _create_bound_run(client, flow_run_id, experiment)
    client.claim_run(run_id)
    ctx = _local_flow_context(flow_run_id)
    if ctx is not None and ctx.flow is not None:
        from prefect_mlops.tracking.auto_track import is_auto_tracked

        if not is_auto_tracked(flow_run_id):  # auto-tracked runs are ended by the tracker
            install_end_hooks(ctx.flow)
    else:
        _install_task_flush_hook()
    return run_id


def _create_bound_run(client: TrackingClient, flow_run_id: str, experiment: str | None) -> str:
    flow_run, flow_name, parameters = _flow_run_details(flow_run_id)
    details = _details.get(flow_run_id)
    if details is not None and details.parent_known:
        parent_flow_run_id = details.parent_flow_run_id
    else:
        parent_flow_run_id = _parent_flow_run_id(flow_run)
    parent_run_id = _parent_run_id(client, parent_flow_run_id) if parent_flow_run_id else None
    exp = client.get_or_create_experiment(experiment or flow_name)
    start_ms = details.start_ms if details is not None else None
    try:
        run = client.create_run(
            exp.experiment_id,
            run_name=flow_run.name,
            start_time=start_ms if start_ms is not None else _start_ms(flow_run),
            tags=prefect_tags(flow_run, flow_name),
            parent_run_id=parent_run_id,
            prefect_flow_run_id=flow_run_id,
            params=flatten_params(parameters),
        )
    except AlreadyExists:  # another process bound it first
        other = client.run_id_for_flow_run(flow_run_id)
        assert other is not None
        return other
    return run.info.run_id


def _parent_run_id(client: TrackingClient, parent_flow_run_id: str) -> str:
    """The parent flow run's run: bound here, else already in the store (a parent that has
    been finalised is not bound again), else created now."""
    return (
        _bound.get(parent_flow_run_id)
        or client.run_id_for_flow_run(parent_flow_run_id)
        or bound_run_id(client, parent_flow_run_id, None)
    )


def install_end_hooks(flow: Any, hook: Any = None) -> None:
    """Call ``hook`` (default: `end_tracked_run`) when a run of ``flow`` ends, whatever its
    final state (once: a hook already there is not added again)."""
    hook = hook or end_tracked_run
    for attr in (
        "on_completion_hooks",
        "on_failure_hooks",
        "on_crashed_hooks",
        "on_cancellation_hooks",
    ):
        hooks = getattr(flow, attr, None)
        if hooks is not None and hook not in hooks:
            hooks.append(hook)


def _install_task_flush_hook() -> None:
    """In a task running in another process, write buffered points when the task ends."""
    from prefect.context import TaskRunContext

    ctx = TaskRunContext.get()
    if ctx is None:
        return
    for attr in ("on_completion_hooks", "on_failure_hooks"):
        hooks = getattr(ctx.task, attr, None)
        if hooks is not None and flush_on_task_end not in hooks:
            hooks.append(flush_on_task_end)


def flush_on_task_end(task: Any, task_run: Any, state: Any) -> None:
    """Task hook: persist metrics logged by this process before the flow reads them."""
    from prefect_mlops.tracking import fluent

    fluent.get_client().flush()


def end_tracked_run(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow hook: end the bound run with the flow run's final state and publish its summary
    (auto-tracked flow runs are ended by the span processor instead, after their console and
    task runs are saved)."""
    from prefect_mlops.tracking import fluent
    from prefect_mlops.tracking.auto_track import is_auto_tracked

    if is_auto_tracked(str(flow_run.id)):
        return
    status = STATE_TO_STATUS.get(str(state.type.value), RunStatus.FINISHED)
    finish_bound_run(fluent.get_client(), str(flow_run.id), status, state.message)


def finish_bound_run(
    client: TrackingClient,
    flow_run_id: str,
    status: RunStatus,
    message: str | None,
    steps: list[dict[str, Any]] | None = None,
    *,
    tags: Mapping[str, str] | None = None,
    texts: Mapping[str, str] | None = None,
    files: Mapping[str, Any] | None = None,
    end_time: int | None = None,
) -> None:
    """End the run bound to ``flow_run_id`` (with final ``tags`` and artifacts: ``texts`` and
    local ``files`` by artifact path, all in one transaction) and publish its summary. If
    that write fails, the run is still ended, without them."""
    run_id = _bound.get(flow_run_id)
    if run_id is None:
        return
    try:
        final_tags = dict(tags or {})
        if status is RunStatus.FAILED and message:
            final_tags[ERROR_TAG] = message[:8000]
        try:
            client.set_terminated(
                run_id, status, end_time, tags=final_tags, texts=texts, files=files
            )
        except Exception as exc:
            logger.warning("Run %s ended without its final tags and files: %r", run_id, exc)
            client.set_terminated(run_id, status, end_time=end_time)
    finally:
        forget_flow_run(flow_run_id)
    try:
        from prefect_mlops.tracking.prefect_ui import publish_run_summary

        publish_run_summary(client, run_id, flow_run_id, steps=steps)
    except Exception as exc:
        logger.warning("Could not publish the run summary to Prefect: %s", exc)


def forget_flow_run(flow_run_id: str) -> None:
    """Drop what this process keeps about ``flow_run_id`` (its run has ended)."""
    with _bind_lock:
        _bound.pop(flow_run_id, None)
        _details.pop(flow_run_id, None)


def forget_bindings() -> None:
    with _bind_lock:
        _bound.clear()
        _details.clear()


def settle_stale_runs(client: TrackingClient, infos: Sequence[RunInfo]) -> bool:
    """Settle runs still RUNNING whose flow runs ended elsewhere; True if any changed."""
    from prefect_mlops.tracking.reconcile import reconcile_runs  # reconcile imports this module

    return bool(reconcile_runs(client, infos, quiet=True))


def publish_markdown(key: str, markdown: str, description: str) -> str:
    """Create a markdown artifact on the current Prefect flow run."""
    from prefect.artifacts import create_markdown_artifact

    from prefect_mlops.tracking.prefect_ui import artifact_key

    artifact = create_markdown_artifact(
        markdown=markdown,
        key=artifact_key(key),
        description=description,
        _sync=True,  # type: ignore[call-arg]
    )
    return str(artifact)


runtime.register_orchestrator(
    current_flow_run_id=current_flow_run_id,
    bound_run_id=bound_run_id,
    settle_stale_runs=settle_stale_runs,
    publish_markdown=publish_markdown,
)
