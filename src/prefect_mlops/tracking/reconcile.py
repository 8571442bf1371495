"""Make runs agree with Prefect: a run still RUNNING whose flow run has ended takes its state.

A flow run killed with SIGKILL under a worker is marked Crashed by Prefect, but the process
that would have ended our run is gone; reading the run (or `prefect-mlops runs reconcile`)
settles it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from prefect_mlops.core.ids import now_ms
from prefect_mlops.tracking.entities import RunInfo, RunStatus
from prefect_mlops.tracking.prefect_binding import STATE_TO_STATUS

if TYPE_CHECKING:
    from prefect_mlops.tracking.client import TrackingClient

logger = logging.getLogger("prefect_mlops.reconcile")

RECONCILED_TAG = "mlops.reconciled_from"

#: A flow run that ended normally is left alone this long: its own process finalises its run
#: moments after Prefect records the final state (a crash is settled at once).
FINALISE_GRACE_MS = 15_000


def prefect_api_configured() -> bool:
    """True when a Prefect API URL is set (we never start an ephemeral server to ask)."""
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


def reconcile_runs(
    client: TrackingClient, runs: Sequence[RunInfo] | None = None, *, quiet: bool = False
) -> list[tuple[str, RunStatus, str]]:
    """Settle RUNNING runs whose flow runs have ended; returns (run_id, new status, state)."""
    candidates = [
        r
        for r in (runs if runs is not None else client.list_running_bound_runs())
        if r.prefect_flow_run_id and r.status is RunStatus.RUNNING
    ]
    if not candidates:
        return []
    try:
        if not prefect_api_configured():
            return []
        flow_runs = _read_flow_run_states([str(r.prefect_flow_run_id) for r in candidates])
    except Exception as exc:
        if not quiet:
            raise
        logger.debug("Reconcile skipped, Prefect API unavailable: %s", exc)
        return []
    changed = []
    for info in candidates:
        found = flow_runs.get(str(info.prefect_flow_run_id))
        if found is None:
            continue
        state_type, state_name, end_ms = found
        status = STATE_TO_STATUS.get(state_type)
        if status is None:
            continue
        recent = end_ms is not None and now_ms() - end_ms < FINALISE_GRACE_MS
        if recent and state_type != "CRASHED":
            continue
        if client.settle_run(info.run_id, status, end_ms, tags={RECONCILED_TAG: state_name}):
            changed.append((info.run_id, status, state_name))
    return changed


def _read_flow_run_states(ids: Sequence[str]) -> dict[str, tuple[str, str, int | None]]:
    from uuid import UUID

    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from prefect_mlops.tracking.prefect_binding import prefect_client

    result: dict[str, tuple[str, str, int | None]] = {}
    with prefect_client() as prefect:
        for i in range(0, len(ids), 200):
            chunk = [UUID(x) for x in ids[i : i + 200]]
            for fr in prefect.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)), limit=len(chunk)
            ):
                if fr.state is None:
                    continue
                ts = fr.state.timestamp
                end_ms = int(ts.timestamp() * 1000) if ts is not None else None
                result[str(fr.id)] = (fr.state.type.value, fr.state.name or "", end_ms)
    return result
