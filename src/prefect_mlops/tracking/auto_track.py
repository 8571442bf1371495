"""Zero-code tracking: every Prefect flow run in this process becomes a tracked run.

An OpenTelemetry span processor sees Prefect's span for each flow run and task run start and
end. At a flow run's start it begins console capture; when its first task starts (or at its
end) it creates the bound run from the flow's own context, without API calls, and starts
system telemetry. When the flow run ends, a background thread records where it ran (git,
interpreter, packages, environment, argparse arguments), saves the console and the task runs as
timed steps, and ends the run with the flow run's final state, so the flow call returns at once;
reads in the same process wait for that thread, and the interpreter waits for it at exit.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor

from prefect_mlops.tracking.entities import RunStatus
from prefect_mlops.tracking.prefect_binding import STATE_TO_STATUS

logger = logging.getLogger("prefect_mlops.auto_track")

#: A flow run without tasks gets its run through the API after this many seconds.
BIND_AFTER_S = 2.0

_lock = threading.RLock()
_installed = False
_enabled = False
_last_args: dict[str, str] = {}


@dataclass
class _Tracked:
    flow_run_id: str
    run_id: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    sampler_start: threading.Thread | None = None
    timer: threading.Timer | None = None
    sampler: Any = None
    console: Any = None
    steps: list[dict[str, Any]] = field(default_factory=list)


_flows: dict[str, _Tracked] = {}  # flow run id -> state
_span_owner: dict[int, str] = {}  # span id -> flow run id (flows and their tasks)
_console_owner: str | None = None


def is_auto_tracked(flow_run_id: str) -> bool:
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
            span_id = span.get_span_context().span_id
            if run_type == "flow":
                if _enabled:
                    self._flow_started(str(attrs.get("prefect.run.id")), span_id)
            elif run_type == "task" and span.parent is not None:
                owner = _span_owner.get(span.parent.span_id)
                if owner is not None:
                    _span_owner[span_id] = owner
                    tracked = _flows.get(owner)
                    if tracked is not None and tracked.run_id is None:
                        self._bind(tracked)
        except Exception as exc:  # never break the user's flow
            logger.warning("prefect-mlops could not start tracking a run: %r", exc)

    def on_end(self, span: Any) -> None:
        try:
            attrs = span.attributes or {}
            span_id = span.get_span_context().span_id
            owner = _span_owner.pop(span_id, None)
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

    def _flow_started(self, flow_run_id: str, span_id: int) -> None:
        global _console_owner
        from prefect_mlops.core.settings import get_settings
        from prefect_mlops.tracking.autolog import install_pending

        settings = get_settings()
        install_pending()
        tracked = _Tracked(flow_run_id)
        with _lock:
            _flows[flow_run_id] = tracked
            _span_owner[span_id] = flow_run_id
            if settings.capture_console and _console_owner is None:
                from prefect_mlops.tracking.console import ConsoleCapture

                tracked.console = ConsoleCapture()
                tracked.console.start()
                _console_owner = flow_run_id
        tracked.timer = threading.Timer(BIND_AFTER_S, self._bind_late, args=(tracked,))
        tracked.timer.daemon = True
        tracked.timer.start()

    def _bind(self, tracked: _Tracked) -> None:
        """Create the run: from the flow's own context (no API calls) in the flow's thread when
        its first task starts or when it ends, or through the API from a timer when the flow
        runs a while without tasks (so a run killed early still has its run)."""
        from prefect_mlops.core.settings import get_settings
        from prefect_mlops.tracking import fluent
        from prefect_mlops.tracking.prefect_binding import bound_run_id

        with tracked.lock:
            if tracked.run_id is not None:
                return
            settings = get_settings()
            client = fluent.get_client()
            tracked.run_id = bound_run_id(client, tracked.flow_run_id, None)
            # Starting the sampler primes psutil and probes NVML: not in the flow's thread.
            tracked.sampler_start = threading.Thread(
                target=self._start_sampler, args=(tracked, client, settings), daemon=True
            )
            tracked.sampler_start.start()

    def _bind_late(self, tracked: _Tracked) -> None:
        try:
            self._bind(tracked)
        except Exception as exc:
            logger.warning("prefect-mlops could not create the run of a flow run: %r", exc)

    @staticmethod
    def _start_sampler(tracked: _Tracked, client: Any, settings: Any) -> None:
        assert tracked.run_id is not None
        if settings.telemetry:
            try:
                from prefect_mlops.tracking.telemetry import SystemSampler

                tracked.sampler = SystemSampler(client, tracked.run_id, settings.telemetry_interval)
                tracked.sampler.start()
            except Exception as exc:
                logger.debug("System telemetry unavailable: %r", exc)

    def _record_context(self, tracked: _Tracked) -> None:
        from prefect_mlops.core.settings import get_settings
        from prefect_mlops.tracking import capture, fluent
        from prefect_mlops.tracking.entities import Param, RunTag

        settings = get_settings()
        client = fluent.get_client()
        run_id = tracked.run_id
        assert run_id is not None
        info = capture.collect(settings)
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in info.tags.items()])
        for name, text in info.texts.items():
            client.log_text(run_id, text, f"environment/{name}")
        if _last_args and settings.capture_argparse:
            _log_args(client, run_id, dict(_last_args), Param)

    def _flow_ended(self, flow_run_id: str, span: Any) -> None:
        """Restore the console at once; save everything and end the run in the background,
        so the flow call returns without waiting (reads in this process wait instead)."""
        global _console_owner
        from prefect_mlops.tracking import pending

        tracked = _flows.get(flow_run_id)
        if tracked is None:
            return
        if tracked.timer is not None:
            tracked.timer.cancel()
        console_path = None
        if tracked.console is not None:
            console_path = tracked.console.stop()
            with _lock:
                _console_owner = None
        if tracked.run_id is None:
            self._bind(tracked)
        state_type, _, message = _last_state(span)
        status = STATE_TO_STATUS.get(state_type or "", RunStatus.FINISHED)
        pending.submit(self._finish, tracked, status, message, console_path)

    def _finish(
        self, tracked: _Tracked, status: RunStatus, message: str | None, console_path: Any
    ) -> None:
        from prefect_mlops.tracking import fluent
        from prefect_mlops.tracking.prefect_binding import finish_bound_run

        try:
            if tracked.sampler_start is not None:
                tracked.sampler_start.join(timeout=30)
            if tracked.sampler is not None:
                tracked.sampler.stop()
                if tracked.sampler.samples == 0:  # a short run still gets one data point
                    tracked.sampler.sample()
            client = fluent.get_client()
            run_id = tracked.run_id
            if run_id is not None:
                self._record_context(tracked)
                if console_path is not None:
                    client.log_artifact(run_id, console_path)
                if tracked.steps:
                    steps = sorted(tracked.steps, key=lambda s: s["start"])
                    client.log_text(run_id, json.dumps(steps, indent=2), "prefect/task_runs.json")
                finish_bound_run(client, tracked.flow_run_id, status, message, steps=tracked.steps)
        except Exception as exc:
            logger.warning(
                "prefect-mlops could not finish run of flow run %s: %r", tracked.flow_run_id, exc
            )
        finally:
            with _lock:
                _flows.pop(tracked.flow_run_id, None)
            if console_path is not None:
                console_path.unlink(missing_ok=True)
                console_path.parent.rmdir()


def _log_args(client: Any, run_id: str, args: dict[str, str], param_cls: Any) -> None:
    from prefect_mlops.core.errors import MlopsError

    try:
        client.log_batch(run_id, params=[param_cls(f"args.{k}", v) for k, v in args.items()])
    except MlopsError as exc:
        logger.debug("argparse arguments not logged: %s", exc)


_original_parse_known_args = argparse.ArgumentParser.parse_known_args


def _parse_known_args(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
    result = _original_parse_known_args(self, *args, **kwargs)
    try:
        namespace = result[0]
        parsed = {
            k: str(v)[:6000]
            for k, v in vars(namespace).items()
            if not k.startswith("_") and v is not argparse.SUPPRESS
        }
        _last_args.clear()
        _last_args.update(parsed)
        from prefect_mlops.tracking.prefect_binding import current_flow_run_id

        flow_run_id = current_flow_run_id()
        tracked = _flows.get(flow_run_id) if flow_run_id else None
        if tracked is not None and tracked.run_id is not None:
            from prefect_mlops.tracking import fluent
            from prefect_mlops.tracking.entities import Param

            _log_args(fluent.get_client(), tracked.run_id, parsed, Param)
    except Exception as exc:
        logger.debug("argparse capture failed: %r", exc)
    return result


def install_auto_tracking(enabled: bool = True) -> bool:
    """Add the span processor to OpenTelemetry's tracer provider (once per process) and turn
    tracking of new flow runs on or off; returns whether the processor is in place."""
    global _installed, _enabled
    with _lock:
        _enabled = enabled
        if _installed or not enabled:
            return _installed
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        from prefect_mlops.core.settings import get_settings

        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider()
            trace.set_tracer_provider(provider)
            provider = trace.get_tracer_provider()
        if not hasattr(provider, "add_span_processor"):
            logger.warning("prefect-mlops: the OpenTelemetry tracer provider takes no processors")
            return False
        provider.add_span_processor(FlowRunTracker())
        if get_settings().capture_argparse:
            argparse.ArgumentParser.parse_known_args = _parse_known_args  # type: ignore[method-assign]
        _installed = True
        return True
