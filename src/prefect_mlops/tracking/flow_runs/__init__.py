"""How a Prefect flow run becomes a tracked run: everything here is the Prefect side.

- ``api.py`` — a Prefect client, final state → run status, whether an API is configured;
- ``context.py`` — which flow run the caller is in, and what its run is created from;
- ``binding.py`` — a flow run's run, created on first use; end hooks that finish it;
- ``auto_track.py`` — zero-code tracking: a span processor following every flow run;
- ``tracing.py`` — our processor on OpenTelemetry's tracer provider, without trace context;
- ``reconcile.py`` — runs left RUNNING by killed flow runs take Prefect's final state;
- ``summary.py`` — the run summary, metric charts and reports on the flow run's Artifacts tab.

`register()` hands the tracking core the callbacks it needs (`prefect_mlops.tracking.runtime`);
`prefect_mlops` calls it on import. None of these modules imports Prefect until it is used.
"""

from __future__ import annotations

from prefect_mlops.tracking import runtime
from prefect_mlops.tracking.flow_runs import binding, context, reconcile, summary


def register() -> None:
    """Tell the tracking core how to find and settle flow runs and publish to them."""
    runtime.register_orchestrator(
        current_flow_run_id=context.current_flow_run_id,
        bound_run_id=binding.bound_run_id,
        settle_stale_runs=reconcile.settle_stale_runs,
        publish_markdown=summary.publish_markdown,
    )
    runtime.on_reset(binding.forget_bindings)
