"""``prefect-mlops``: look at experiments and runs, settle crashed runs, upgrade the database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.table import Table

from prefect_mlops.cli.output import STATUS_STYLE, console, duration, num, print_json, when
from prefect_mlops.core.errors import MlopsError

if TYPE_CHECKING:
    from prefect_mlops.tracking.client import TrackingClient

app = typer.Typer(
    name="prefect-mlops",
    help="Experiment tracking for Prefect flows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
experiments_app = typer.Typer(help="Experiments.", no_args_is_help=True)
runs_app = typer.Typer(help="Tracking runs.", no_args_is_help=True)
db_app = typer.Typer(help="The metadata database.", no_args_is_help=True)
app.add_typer(experiments_app, name="experiments")
app.add_typer(runs_app, name="runs")
app.add_typer(db_app, name="db")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _client() -> TrackingClient:
    from prefect_mlops.tracking.client import TrackingClient

    return TrackingClient()


def _fail(exc: MlopsError) -> NoReturn:
    console.print(f"[red]Error:[/red] {exc}")
    raise typer.Exit(1)


@experiments_app.command("list")
def experiments_list(as_json: JsonOpt = False) -> None:
    """List experiments, most recently updated first."""
    try:
        experiments = _client().search_experiments()
    except MlopsError as exc:
        _fail(exc)
    if as_json:
        print_json(experiments)
        return
    table = Table("experiment id", "name", "created", "artifact location")
    for e in experiments:
        table.add_row(e.experiment_id, e.name, when(e.creation_time), e.artifact_location)
    console.print(table)


@runs_app.command("list")
def runs_list(
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-e", help="Experiment name.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List runs, newest first."""
    client = _client()
    try:
        ids = None
        if experiment is not None:
            found = client.get_experiment_by_name(experiment)
            if found is None:
                _fail(MlopsError(f"No experiment named {experiment!r}; see `experiments list`."))
            ids = [found.experiment_id]
        runs = client.search_runs(ids, max_results=limit)
    except MlopsError as exc:
        _fail(exc)
    if as_json:
        print_json(runs)
        return
    names = {e.experiment_id: e.name for e in client.search_experiments(view_type="all")}
    table = Table()
    table.add_column("run id", no_wrap=True)
    table.add_column("name", no_wrap=True)
    if experiment is None:
        table.add_column("experiment")
    for column in ("status", "started", "duration"):
        table.add_column(column, no_wrap=True)
    table.add_column("metrics", min_width=22, overflow="fold")
    for r in runs:
        status = r.info.status.value
        metrics = " ".join(f"{k}={num(v, 4)}" for k, v in sorted(r.data.metrics.items())[:4])
        cells = [r.info.run_id, r.info.run_name]
        if experiment is None:
            cells.append(names.get(r.info.experiment_id, r.info.experiment_id))
        cells += [
            f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]",
            when(r.info.start_time, short=True),
            duration(r.info.start_time, r.info.end_time),
            metrics,
        ]
        table.add_row(*cells)
    console.print(table)


@runs_app.command("show")
def runs_show(run_id: str, as_json: JsonOpt = False) -> None:
    """Params, metrics (last/min/max), tags, artifacts and the Prefect link of one run."""
    client = _client()
    try:
        run = client.get_run(run_id)
        summaries = client.get_metric_summaries(run_id)
        artifacts = client.store.artifact_files(run_id)
        experiment = client.get_experiment(run.info.experiment_id)
        histograms = client.store.list_histogram_keys(run_id)
    except MlopsError as exc:
        _fail(exc)
    if as_json:
        print_json(
            {
                "info": run.info,
                "experiment": experiment.name,
                "params": run.data.params,
                "tags": run.data.tags,
                "metrics": summaries,
                "histograms": histograms,
                "artifacts": artifacts,
            }
        )
        return
    info = run.info
    status = info.status.value
    console.print(f"[bold]{info.run_name}[/bold]  {info.run_id}")
    console.print(
        f"experiment [bold]{experiment.name}[/bold] · "
        f"[{STATUS_STYLE.get(status, 'white')}]{status}[/] · started {when(info.start_time)} · "
        f"duration {duration(info.start_time, info.end_time)}"
    )
    if info.parent_run_id:
        console.print(f"parent run {info.parent_run_id}")
    if url := run.data.tags.get("prefect.url"):
        console.print(f"Prefect: [link={url}]{url}[/link]")
    console.print(f"artifacts: {info.artifact_uri}", soft_wrap=True)
    if run.data.params:
        table = Table("param", "value", title="Params")
        for k, v in sorted(run.data.params.items()):
            table.add_row(k, v)
        console.print(table)
    if summaries:
        table = Table("metric", "last", "min", "max", "steps", title="Metrics")
        for s in summaries:
            table.add_row(s.key, num(s.last), num(s.min), num(s.max), str(s.count))
        console.print(table)
    if histograms:
        console.print("Histograms: " + ", ".join(histograms))
    if artifacts:
        table = Table("path", "size", "sha256", title="Artifacts")
        for f in artifacts:
            table.add_row(f.path, f"{f.file_size:,}", (f.sha256 or "")[:12])
        console.print(table)
    if run.data.tags:
        table = Table("tag", "value", title="Tags")
        for k, v in sorted(run.data.tags.items()):
            table.add_row(k, v if len(v) < 200 else v[:197] + "...")
        console.print(table)


@runs_app.command("history")
def runs_history(run_id: str, key: str, as_json: JsonOpt = False) -> None:
    """Every logged point of one metric."""
    try:
        history = _client().get_metric_history(run_id, key)
    except MlopsError as exc:
        _fail(exc)
    if as_json:
        print_json(history)
        return
    table = Table("step", "value", "time", title=key)
    for m in history:
        table.add_row(str(m.step), num(m.value), when(m.timestamp))
    console.print(table)


@runs_app.command("reconcile")
def runs_reconcile(as_json: JsonOpt = False) -> None:
    """End RUNNING runs whose Prefect flow runs have already finished, crashed or been cancelled."""
    from prefect_mlops.tracking.reconcile import prefect_api_configured, reconcile_runs

    if not prefect_api_configured():
        console.print(
            "[red]Error:[/red] PREFECT_API_URL is not set; point it at your Prefect server."
        )
        raise typer.Exit(1)
    try:
        changed = reconcile_runs(_client())
    except MlopsError as exc:
        _fail(exc)
    if as_json:
        print_json([{"run_id": r, "status": s, "prefect_state": p} for r, s, p in changed])
        return
    if not changed:
        console.print("All runs agree with Prefect.")
    for run_id, status, state in changed:
        console.print(f"{run_id}: RUNNING -> {status.value} (flow run {state})")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations to the metadata database."""
    from prefect_mlops.core.db import get_engine, mask_url
    from prefect_mlops.core.migrate import upgrade
    from prefect_mlops.core.settings import get_settings

    url = get_settings().resolved_database_url
    try:
        revision = upgrade(get_engine(url))
    except MlopsError as exc:
        _fail(exc)
    console.print(f"{mask_url(url)} is at revision {revision}.")


@app.command()
def demo(
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 20,
) -> None:
    """Train a small model inside a tracked Prefect flow and show what was recorded."""
    import os

    # Prefect's temporary server otherwise races its own telemetry writes on SQLite.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect_mlops.cli.demo import run_demo

    run_demo(epochs=epochs)


if __name__ == "__main__":
    app()
