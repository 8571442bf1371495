"""``prefect-mlops sync``: send what was spooled while the tracking server was away."""

from __future__ import annotations

import typer

from prefect_mlops.cli.output import console, error_console
from prefect_mlops.core.settings import get_settings
from prefect_mlops.tracking.store.rest import RestTrackingStore


def sync() -> None:
    """Replay the offline spool to the tracking server (PREFECT_MLOPS_TRACKING_URI), in order;
    exits 1 with the reason when the server does not answer, or when anything was set aside
    (refused by the server; see ``rejected.jsonl`` in the spool)."""
    settings = get_settings()
    if not settings.tracking_uri:
        error_console.print(
            "PREFECT_MLOPS_TRACKING_URI is not set: name the tracking server to send the spool "
            f"{settings.resolved_spool_dir} to, e.g. http://host:5000.",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    store = RestTrackingStore(settings.tracking_uri, settings.model_copy(update={"offline": False}))
    if not store.spool.pending():
        console.print(f"Nothing to send: the spool {store.spool.folder} is empty.", soft_wrap=True)
        return
    report = store.sync()
    console.print(
        f"Sent {report.requests} requests to {store.url}: {report.runs} runs, "
        f"{report.batches} metric batches ({report.points} points), "
        f"{report.experiments} experiments, {report.artifacts} artifacts.",
        soft_wrap=True,
        highlight=False,
    )
    for rejected in report.rejected:
        error_console.print(f"[yellow]Set aside:[/yellow] {rejected}", soft_wrap=True)
    if report.rejected:
        error_console.print(
            f"[red]{len(report.rejected)} spooled request(s) were not sent[/red] (refused by "
            "the server, failing every time, or unreadable); they are kept, with the reason, "
            f"in {store.spool.folder / 'rejected.jsonl'} (artifact bytes in "
            f"{store.spool.folder / 'rejected-blobs'}).",
            soft_wrap=True,
        )
    if not report.complete:
        error_console.print(
            f"[red]Stopped:[/red] {report.reason} The rest stays in the spool; run "
            "`prefect-mlops sync` again once the server answers.",
            soft_wrap=True,
        )
    if report.rejected or not report.complete:
        raise typer.Exit(1)
