"""Zero-code tracking: every Prefect flow run in this process becomes a tracked run.

An OpenTelemetry span processor sees Prefect's span for each flow run and task run start and
end. At a flow run's start it begins console capture and reads the machine's counters; when its
first task starts (or at its end) it keeps the flow's details from its context. The flow's
thread does no tracking-store work of its own: the run is created by a timer once the flow has
run for a while (so a flow killed later still has its run, with system telemetry from then on),
by a ``log_*`` call, or when the flow run ends. Then a background thread records where it ran
(git, interpreter, packages, environment, argparse arguments), saves the console and the task
runs as timed steps and ends the run with the flow run's final state in one transaction, so the
flow call returns at once; reads in the same process wait for that thread, and the interpreter
waits for it at exit. A crashed or cancelled flow run is finalised in its own thread instead
(after SIGTERM Prefect ends the process at once), and a flow run that will be retried is
finalised when its last attempt ends.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor

from prefect_mlops.core.errors import MlopsError
from prefect_mlops.core.ids import now_ms
from prefect_mlops.core.settings import get_settings
from prefect_mlops.tracking import fluent, pending, runtime
from prefect_mlops.tracking.capture import arguments, environment
from prefect_mlops.tracking.capture.console import ConsoleCapture
from prefect_mlops.tracking.capture.telemetry import SystemSampler, read_counters
from prefect_mlops.tracking.client import TrackingClient
from prefect_mlops.tracking.entities import Param, RunStatus
from prefect_mlops.tracking.flow_runs import binding, context
from prefect_mlops.tracking.flow_runs.api import STATE_TO_STATUS, status_for_state
from prefect_mlops.tracking.flow_runs.tracing import add_span_processor

logger = logging.getLogger("prefect_mlops.auto_track")

#: A flow run still running after this many seconds gets its run (and telemetry) at once.
BIND_AFTER_S = 2.0
_FINAL_STATES = frozenset(STATE_TO_STATUS)

_lock = threading.RLock()
_installed = False
_enabled = False


@dataclass
class _Tracked:
    flow_run_id: str
    start_ms: int | None = None
    experiment: str | None = None  # mlops.set_experiment(...) when the flow run started
    run_id: str | None = None
    remembered: bool = False  # its details are kept for creating the run off-thread
    retrying: bool = False  # its span ended before a retry: end hooks finish it
    finishing: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    timer: threading.Timer | None = None
    baseline: Any = None  # machine counters at the start (telemetry rates start here)
    sampler: Any = None
    console: Any = None
    steps: list[dict[str, Any]] = field(default_factory=list)


_flows: dict[str, _Tracked] = {}  # flow run id -> state
_span_owner: dict[str, str] = {}  # run id -> flow run id (tracked flow runs and their tasks)
_console_owner: str | None = None


def _forget_after_fork() -> None:
    """A forked child runs none of its parent's flow runs (and another thread of the parent
    may have held the lock at the fork)."""
    global _lock, _console_owner
    _lock = threading.RLock()
    _flows.clear()
    _span_owner.clear()
    _console_owner = None


os.register_at_fork(after_in_child=_forget_after_fork)


def is_auto_tracked(flow_run_id: str) -> bool:
    """True while zero-code tracking follows ``flow_run_id`` in this process."""
    return flow_run_id in _flows


def _last_state(span: Any) -> tuple[str | None, str | None, str | None]:
    """(state type, state name, message) of the last state event on a span."""
    for event in reversed(list(span.events or [])):
        attrs = event.attributes or {}
        if "prefect.state.type" in attrs:
            state_type = attrs.get("prefect.state.type")
            return (
                str(getattr(state_type, "value", state_type)),
                str(attrs.get("prefect.state.name") or ""),
                str(attrs.get("prefect.state.message") or "") or None,
            )
    return None, None, None


class FlowRunTracker(SpanProcessor):
    """OpenTelemetry span processor following Prefect's flow and task run spans."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        try:
            attrs = span.attributes or {}
            run_type = attrs.get("prefect.run.type")
            run_id = str(attrs.get("prefect.run.id"))
            if run_type == "flow":
                if _enabled:
                    self._flow_started(run_id, span)
            elif run_type == "task" and _flows:
                owner = context.current_flow_run_id()  # a task starts in its flow run's context
                if owner is not None and owner in _flows:
                    _span_owner[run_id] = owner
                    tracked = _flows.get(owner)
                    if tracked is not None and not tracked.remembered:
                        tracked.remembered = _remember(tracked)
        except Exception as exc:  # never break the user's flow
            logger.warning("prefect-mlops could not start tracking a run: %r", exc)

    def on_end(self, span: Any) -> None:
        try:
            attrs = span.attributes or {}
            owner = _span_owner.pop(str(attrs.get("prefect.run.id")), None)
            if owner is None:
                return
            if attrs.get("prefect.run.type") == "flow":
                self._flow_ended(owner, span)
            elif owner in _flows:
                _, state_name, _ = _last_state(span)
                _flows[owner].steps.append(
                    {
                        "task": str(attrs.get("prefect.run.name")),
                        "task_run_id": str(attrs.get("prefect.run.id")),
                        "state": state_name,
                        "start": span.start_time / 1e9,
                        "duration_s": round((span.end_time - span.start_time) / 1e9, 6),
                    }
                )
        except Exception as exc:
            logger.warning("prefect-mlops could not finish tracking a run: %r", exc)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # -- flow runs ---------------------------------------------------------------------------

    def _flow_started(self, flow_run_id: str, span: Any) -> None:
        global _console_owner
        settings = get_settings()
        runtime.run_starting()
        parent = context.current_flow_run_id()  # a subflow starts in its parent's context
        parent_tracked = _flows.get(parent) if parent else None
        if parent_tracked is not None and not parent_tracked.remembered:
            parent_tracked.remembered = _remember(parent_tracked)
        start = getattr(span, "start_time", None)
        tracked = _Tracked(
            flow_run_id,
            start_ms=int(start // 1_000_000) if start else None,
            experiment=fluent.current_experiment_name(),
        )
        if settings.telemetry:
            tracked.baseline = read_counters()
        with _lock:
            _flows[flow_run_id] = tracked
            _span_owner[flow_run_id] = flow_run_id
            binding.finalised_elsewhere(flow_run_id)
            if settings.capture_console and _console_owner is None:
                tracked.console = ConsoleCapture()
                tracked.console.start()
                _console_owner = flow_run_id
        tracked.timer = threading.Timer(BIND_AFTER_S, self._bind_late, args=(tracked,))
        tracked.timer.daemon = True
        tracked.timer.start()

    def _bind_late(self, tracked: _Tracked) -> None:
        """Timer: a flow run still running gets its run now (from its kept details, else
        through the API) and system telemetry, unless it is already finishing."""
        try:
            with tracked.lock:
                if tracked.finishing:
                    return
                client = fluent.get_client()
                tracked.run_id = binding.bound_run_id(
                    client, tracked.flow_run_id, tracked.experiment
                )
                settings = get_settings()
                if settings.telemetry:
                    tracked.sampler = SystemSampler(
                        client,
                        tracked.run_id,
                        settings.telemetry_interval,
                        baseline=tracked.baseline,
                    )
                    tracked.sampler.start()
        except Exception as exc:
            logger.warning("prefect-mlops could not create the run of a flow run: %r", exc)

    def _flow_ended(self, flow_run_id: str, span: Any) -> None:
        tracked = _flows.get(flow_run_id)
        if tracked is None:
            return
        state_type, _, message = _last_state(span)
        if state_type not in _FINAL_STATES and _await_retry(tracked):
            return
        end = getattr(span, "end_time", None)
        _end_flow(tracked, state_type, message, int(end // 1_000_000) if end else now_ms())


def _await_retry(tracked: _Tracked) -> bool:
    """Prefect ends the span of a flow run that will be retried after its first failed
    attempt (later attempts have none): finish from the flow's end hooks instead."""
    ctx = context.local_flow_context(tracked.flow_run_id)
    if ctx is None or ctx.flow is None:
        return False
    binding.install_end_hooks(ctx.flow, _retried_flow_ended)
    tracked.retrying = True
    return True


def _retried_flow_ended(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow hook: the last attempt of a retried, auto-tracked flow run has ended."""
    tracked = _flows.get(str(flow_run.id))
    if tracked is None or not tracked.retrying:
        return
    tracked.retrying = False
    state_type = getattr(state.type, "value", state.type)
    _end_flow(tracked, str(state_type), state.message, now_ms())


def _end_flow(tracked: _Tracked, state_type: str | None, message: str | None, end_ms: int) -> None:
    """Restore the console; save everything and end the run in the background, so the flow
    call returns without waiting (reads in this process wait instead)."""
    global _console_owner
    if tracked.timer is not None:
        tracked.timer.cancel()
    console_path = None
    if tracked.console is not None:
        console_path = tracked.console.stop(timeout=1.0)  # in order with what follows
        with _lock:
            if _console_owner == tracked.flow_run_id:
                _console_owner = None
    if not tracked.remembered:
        tracked.remembered = _remember(tracked)
    status = status_for_state(state_type)
    if status is RunStatus.KILLED:
        # Crashed or cancelled: on SIGTERM Prefect kills this process right after this
        # span ends, so a background thread would die with it. Finish here.
        _finish(tracked, status, message, console_path, end_ms)
    else:
        pending.submit(_finish, tracked, status, message, console_path, end_ms)


def _finish(
    tracked: _Tracked,
    status: RunStatus,
    message: str | None,
    console_path: Any,
    end_ms: int,
) -> None:
    def attempt(what: str, step: Any) -> Any:
        """One optional part of the finalisation: a failure loses that part only."""
        try:
            return step()
        except Exception as exc:
            logger.warning("prefect-mlops could not %s of flow run %s: %r", what, flow_run, exc)
            return None

    flow_run = tracked.flow_run_id
    try:
        with tracked.lock:  # after a timer that is creating the run right now
            tracked.finishing = True
        settings = get_settings()
        if tracked.console is not None:
            tracked.console.join(1.0 if status is RunStatus.KILLED else 10.0)
        client = fluent.get_client()
        run_id = binding.bound_run_id(client, flow_run, tracked.experiment)
        sampler = tracked.sampler
        if sampler is not None:
            if sampler.samples == 0:  # a short run still gets one data point
                attempt("sample telemetry", sampler.sample)
            attempt("stop telemetry", sampler.stop)
        elif settings.telemetry:
            attempt(
                "sample telemetry",
                lambda: SystemSampler(client, run_id, baseline=tracked.baseline).sample_once(),
            )
        info = attempt("record the environment", lambda: environment.collect(settings))
        texts = {f"environment/{name}": text for name, text in info.texts.items()} if info else {}
        if tracked.steps:
            steps = sorted(tracked.steps, key=lambda s: s["start"])
            texts["prefect/task_runs.json"] = json.dumps(steps, indent=2)
        args = arguments.last_arguments()
        if args and settings.capture_argparse:
            attempt("log argparse arguments", lambda: _log_args(client, run_id, args))
        binding.finish_bound_run(
            client,
            flow_run,
            status,
            message,
            steps=tracked.steps,
            tags=info.tags if info else None,
            texts=texts,
            files={"console.log": console_path} if console_path is not None else None,
            end_time=end_ms,
        )
    except Exception as exc:
        logger.warning("prefect-mlops could not finish run of flow run %s: %r", flow_run, exc)
    finally:
        with _lock:
            if _flows.get(flow_run) is tracked:
                del _flows[flow_run]
        binding.forget_flow_run(flow_run)
        if console_path is not None and tracked.console is not None:
            tracked.console.join(0.0)
            if not tracked.console.active:  # else the reader still writes it (a child holds
                console_path.unlink(missing_ok=True)  # the pipe); it goes with its folder
                console_path.parent.rmdir()


def _remember(tracked: _Tracked) -> bool:
    try:
        return context.remember_flow_run(tracked.flow_run_id, tracked.start_ms)
    except Exception as exc:  # the run is then created from the API instead
        logger.debug("Flow run details not kept: %r", exc)
        return False


def _log_args(client: TrackingClient, run_id: str, args: dict[str, str]) -> None:
    try:
        client.log_batch(run_id, params=[Param(f"args.{k}", v) for k, v in args.items()])
    except MlopsError as exc:
        logger.debug("argparse arguments not logged: %s", exc)


def _arguments_parsed(args: dict[str, str]) -> None:
    """Arguments parsed inside a tracked flow run whose run exists already: log them now."""
    flow_run_id = context.current_flow_run_id()
    tracked = _flows.get(flow_run_id) if flow_run_id else None
    if tracked is not None and tracked.run_id is not None:
        _log_args(fluent.get_client(), tracked.run_id, args)


def install_auto_tracking(enabled: bool = True) -> bool:
    """Add the span processor to OpenTelemetry's tracer provider (once per process) and turn
    tracking of new flow runs on or off; returns whether the processor is in place."""
    global _installed, _enabled
    with _lock:
        _enabled = enabled
        if _installed or not enabled:
            return _installed
        if not add_span_processor(FlowRunTracker()):
            return False
        if get_settings().capture_argparse:
            arguments.install()
            arguments.on_parse(_arguments_parsed)
        _installed = True
        return True
