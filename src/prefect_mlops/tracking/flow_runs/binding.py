"""Binding tracking runs to Prefect flow runs.

Inside a flow run, the first ``log_*`` call creates (once, across processes: the flow run id is
unique in the runs table) a tracking run named after the flow run, in the experiment named after
the flow, with the flow's parameters and ``prefect.*`` tags. Hooks appended to the flow end the
run with the flow run's final state and publish its summary to the Prefect UI, through the
client that bound it. Tasks, in threads or in other processes, find the run through their flow
run id. Flow runs that zero-code tracking finalises itself are marked `finalised_elsewhere`,
and get no end hooks here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from prefect_mlops.core.errors import AlreadyExists, NotFound
from prefect_mlops.tracking.client import TrackingClient
from prefect_mlops.tracking.entities import RunStatus
from prefect_mlops.tracking.flow_runs import context
from prefect_mlops.tracking.flow_runs.api import status_for_state
from prefect_mlops.tracking.flow_runs.summary import publish_run_summary

logger = logging.getLogger("prefect_mlops.prefect")

ERROR_TAG = "mlops.error"


class _Binding:
    """The run of one flow run in this process, and the client that bound it."""

    __slots__ = ("client", "run_id")

    def __init__(self, run_id: str, client: TrackingClient) -> None:
        self.run_id = run_id
        self.client = client


_bound: dict[str, _Binding] = {}  # flow run id -> its run, for this process
_finalised_elsewhere: set[str] = set()  # flow run ids whose runs zero-code tracking ends
_lock = threading.RLock()


def finalised_elsewhere(flow_run_id: str, enabled: bool = True) -> None:
    """Mark (or unmark) ``flow_run_id`` as one whose run something else ends: the binding
    then installs no end hooks for it."""
    with _lock:
        if enabled:
            _finalised_elsewhere.add(flow_run_id)
        else:
            _finalised_elsewhere.discard(flow_run_id)


def bound_run_id(client: TrackingClient, flow_run_id: str, experiment: str | None) -> str:
    """The tracking run of ``flow_run_id``, created on first use."""
    found = _bound.get(flow_run_id)
    if found is not None:
        return found.run_id
    with _lock:
        found = _bound.get(flow_run_id)
        if found is None:
            found = _bound[flow_run_id] = _Binding(_bind(client, flow_run_id, experiment), client)
    return found.run_id


def _bind(client: TrackingClient, flow_run_id: str, experiment: str | None) -> str:
    existing = client.run_id_for_flow_run(flow_run_id)
    run_id = existing or _create_bound_run(client, flow_run_id, experiment)
    client.claim_run(run_id)
    ctx = context.local_flow_context(flow_run_id)
    if ctx is not None and ctx.flow is not None:
        if flow_run_id not in _finalised_elsewhere:
            install_end_hooks(ctx.flow)
    else:
        _install_task_flush_hook()
    return run_id


def _create_bound_run(client: TrackingClient, flow_run_id: str, experiment: str | None) -> str:
    flow_run, flow_name, parameters = context.flow_run_details(flow_run_id)
    details = context.kept_details(flow_run_id)
    if details is not None and details.parent_known:
        parent_flow_run_id = details.parent_flow_run_id
    else:
        parent_flow_run_id = context.parent_flow_run_id(flow_run)
    parent_run_id = _parent_run_id(client, parent_flow_run_id) if parent_flow_run_id else None
    exp = client.get_or_create_experiment(experiment or flow_name)
    start_ms = details.start_ms if details is not None else None
    try:
        run = client.create_run(
            exp.experiment_id,
            run_name=flow_run.name,
            start_time=start_ms if start_ms is not None else context.start_ms(flow_run),
            tags=context.prefect_tags(flow_run, flow_name),
            parent_run_id=parent_run_id,
            prefect_flow_run_id=flow_run_id,
            params=context.flatten_params(parameters),
        )
    except AlreadyExists:  # another process bound it first
        other = client.run_id_for_flow_run(flow_run_id)
        if other is None:
            raise NotFound(
                f"Flow run {flow_run_id} was bound to a run by another process, and that run "
                "is gone again (deleted from the database?)."
            ) from None
        return other
    return run.info.run_id


def _parent_run_id(client: TrackingClient, parent_flow_run_id: str) -> str:
    """The parent flow run's run: bound here, else already in the store (a parent that has
    been finalised is not bound again), else created now."""
    found = _bound.get(parent_flow_run_id)
    if found is not None:
        return found.run_id
    return client.run_id_for_flow_run(parent_flow_run_id) or bound_run_id(
        client, parent_flow_run_id, None
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
    found = _bound.get(str(task_run.flow_run_id))
    if found is not None:
        found.client.flush()


def end_tracked_run(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow hook: end the bound run with the flow run's final state and publish its summary
    (runs finalised elsewhere, by zero-code tracking, are left to it)."""
    flow_run_id = str(flow_run.id)
    found = _bound.get(flow_run_id)
    if found is None or flow_run_id in _finalised_elsewhere:
        return
    status = status_for_state(str(state.type.value))
    finish_bound_run(found.client, flow_run_id, status, state.message)


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
    found = _bound.get(flow_run_id)
    if found is None:
        return
    run_id = found.run_id
    try:
        final_tags = dict(tags or {})
        if status is RunStatus.FAILED and message:
            final_tags[ERROR_TAG] = message[:8000]
        try:
            client.set_terminated(
                run_id, status, end_time, tags=final_tags, texts=texts or {}, files=files or {}
            )
        except Exception as exc:
            logger.warning("Run %s ended without its final tags and files: %r", run_id, exc)
            client.set_terminated(run_id, status, end_time=end_time)
    finally:
        forget_flow_run(flow_run_id)
    try:
        publish_run_summary(client, run_id, flow_run_id, steps=steps)
    except Exception as exc:
        logger.warning("Could not publish the run summary to Prefect: %s", exc)


def forget_flow_run(flow_run_id: str) -> None:
    """Drop what this process keeps about ``flow_run_id`` (its run has ended)."""
    with _lock:
        _bound.pop(flow_run_id, None)
        _finalised_elsewhere.discard(flow_run_id)
    context.forget_details(flow_run_id)


def forget_bindings() -> None:
    with _lock:
        _bound.clear()
        _finalised_elsewhere.clear()
    context.forget_details()
