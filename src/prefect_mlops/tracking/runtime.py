"""What the tracking core learns from the orchestrator while it runs: a seam, not an import.

The domain core (entities, store, client, fluent API) imports nothing from Prefect and nothing
above it. The Prefect integration (`prefect_mlops.tracking.flow_runs`) registers these
callbacks when `prefect_mlops` is imported; with none registered, tracking behaves as in a
plain script (no flow run, nothing to settle, nothing to publish).

- ``current_flow_run_id()``: the Prefect flow run the caller is part of, or None;
- ``bound_run_id(client, flow_run_id, experiment)``: the run bound to that flow run, created
  on first use;
- ``settle_stale_runs(client, infos)``: settle runs still RUNNING whose flow runs ended
  elsewhere; True if any changed;
- ``publish_markdown(key, markdown, description)``: add a report to the current flow run;
- `on_run_start` callbacks run before a run starts (autolog installs the integrations of
  frameworks imported since), `on_reset` callbacks when the fluent state is reset (tests).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect_mlops.tracking.entities import RunInfo


def _outside_any_flow() -> str | None:
    return None


@dataclass
class OrchestratorHooks:
    """The callbacks an orchestrator integration supplies (see the module docstring)."""

    current_flow_run_id: Callable[[], str | None] = _outside_any_flow
    bound_run_id: Callable[[Any, str, str | None], str] | None = None
    settle_stale_runs: Callable[[Any, Sequence[RunInfo]], bool] | None = None
    publish_markdown: Callable[[str, str, str], str] | None = None


hooks = OrchestratorHooks()
_run_start: list[Callable[[], object]] = []
_reset: list[Callable[[], object]] = []
_lock = threading.Lock()


def register_orchestrator(
    *,
    current_flow_run_id: Callable[[], str | None],
    bound_run_id: Callable[[Any, str, str | None], str],
    settle_stale_runs: Callable[[Any, Sequence[RunInfo]], bool],
    publish_markdown: Callable[[str, str, str], str],
) -> None:
    """Install the orchestrator's callbacks (the last registration wins)."""
    hooks.current_flow_run_id = current_flow_run_id
    hooks.bound_run_id = bound_run_id
    hooks.settle_stale_runs = settle_stale_runs
    hooks.publish_markdown = publish_markdown


def on_run_start(callback: Callable[[], object]) -> None:
    """Call ``callback`` before every run starts (once per callback, however often added)."""
    with _lock:
        if callback not in _run_start:
            _run_start.append(callback)


def run_starting() -> None:
    for callback in list(_run_start):
        callback()


def on_reset(callback: Callable[[], object]) -> None:
    """Call ``callback`` when the fluent state is reset."""
    with _lock:
        if callback not in _reset:
            _reset.append(callback)


def reset() -> None:
    for callback in list(_reset):
        callback()
