"""``prefect-mlops``: look at experiments and runs, settle crashed runs, upgrade the database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.table import Table

from prefect_mlops.cli.output import STATUS_STYLE, console, duration, num, print_json, when
from prefect_mlops.core.errors import MlopsError

if TYPE_CHECKING:
    from prefect_mlops.tracking.client import TrackingClient
    from prefect_mlops.tracking.entities import Run

app = typer.Typer(
    name="prefect-mlops",
    help="Experiment tracking for Prefect flows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
experiments_app = typer.Typer(help="Experiments.", no_args_is_help=True)
runs_app = typer.Typer(help="Tracking runs.", no_args_is_help=True)
db_app = typer.Typer(help="The metadata database.", no_args_is_help=True)
searches_app = typer.Typer(help="Saved searches.", no_args_is_help=True)
app.add_typer(experiments_app, name="experiments")
app.add_typer(runs_app, name="runs")
app.add_typer(db_app, name="db")
app.add_typer(searches_app, name="searches")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _client() -> TrackingClient:
    from prefect_mlops.tracking.client import TrackingClient

    return TrackingClient()


def _fail(exc: MlopsError) -> NoReturn:
    console.print(f"[red]Error:[/red] {exc}")
    raise typer.Exit(1)


@experiments_app.command("list")
def experiments_list(
    filter_string: Annotated[
        str | None, typer.Option("--filter", "-f", help="e.g. \"name LIKE 'vision-%'\".")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List experiments, most recently updated first."""
    try:
        experiments = _client().search_experiments(filter_string=filter_string)
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
    console.print(_runs_table(client, list(runs), show_experiment=experiment is None))


def _runs_table(client: TrackingClient, runs: list[Run], show_experiment: bool = True) -> Table:
    names = {e.experiment_id: e.name for e in client.search_experiments(view_type="all")}
    table = Table()
    table.add_column("run id", no_wrap=True)
    table.add_column("name", no_wrap=True)
    if show_experiment:
        table.add_column("experiment")
    for column in ("status", "started", "duration"):
        table.add_column(column, no_wrap=True)
    table.add_column("metrics", min_width=22, overflow="fold")
    for r in runs:
        status = r.info.status.value
        metrics = " ".join(f"{k}={num(v, 4)}" for k, v in sorted(r.data.metrics.items())[:4])
        cells = [r.info.run_id, r.info.run_name]
        if show_experiment:
            cells.append(names.get(r.info.experiment_id, r.info.experiment_id))
        cells += [
            f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]",
            when(r.info.start_time, short=True),
            duration(r.info.start_time, r.info.end_time),
            metrics,
        ]
        table.add_row(*cells)
    return table


@runs_app.command("search")
def runs_search(
    filter_string: Annotated[
        str, typer.Argument(help="e.g. \"metrics.acc > 0.9 AND params.opt = 'adam'\"")
    ] = "",
    experiment: Annotated[
        list[str] | None, typer.Option("--experiment", "-e", help="Experiment name (repeatable).")
    ] = None,
    order_by: Annotated[
        list[str] | None, typer.Option("--order-by", "-o", help="e.g. 'metrics.acc DESC'.")
    ] = None,
    query: Annotated[str | None, typer.Option("--query", "-q", help="Full-text words.")] = None,
    saved: Annotated[str | None, typer.Option(help="Start from a saved search.")] = None,
    max_results: Annotated[int, typer.Option("--max-results", "-n")] = 100,
    page_token: Annotated[str | None, typer.Option(help="Token of the next page.")] = None,
    count: Annotated[bool, typer.Option("--count", help="Only print how many match.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Find runs with MLflow's filter grammar plus OR, NOT and parentheses."""
    client = _client()
    try:
        if count:
            total = client.count_runs(
                filter_string=filter_string, experiment_names=experiment, query=query
            )
            if as_json:
                print_json({"count": total})
            else:
                console.print(total)
            return
        runs = client.search_runs(
            filter_string=filter_string,
            experiment_names=experiment,
            order_by=order_by,
            query=query,
            saved=saved,
            max_results=max_results,
            page_token=page_token,
        )
    except MlopsError as exc:
        _fail(exc)
    if as_json:
        print_json({"runs": list(runs), "next_page_token": runs.token})
        return
    console.print(_runs_table(client, list(runs)))
    if runs.token:
        console.print(f"more: --page-token {runs.token}", soft_wrap=True)


@runs_app.command("aggregate")
def runs_aggregate(
    filter_string: Annotated[str, typer.Argument(help="Which runs to aggregate.")] = "",
    group_by: Annotated[
        list[str] | None, typer.Option("--group-by", "-g", help="e.g. params.optimizer.")
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", "-m", help="KEY:FN[,FN...], e.g. 'val/acc:mean,max,count'."),
    ] = None,
    experiment: Annotated[list[str] | None, typer.Option("--experiment", "-e")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Group runs and aggregate their latest metric values (computed in SQL)."""
    wanted: dict[str, list[str]] = {}
    for spec in metric or []:
        key, sep, functions = spec.rpartition(":")
        if not sep or not key:
            _fail(MlopsError(f"--metric {spec!r} must look like 'val/acc:mean,max'."))
        wanted.setdefault(key, []).extend(f.strip() for f in functions.split(",") if f.strip())
    try:
        rows = _client().aggregate_runs(
            filter_string, group_by=group_by or [], metrics=wanted, experiment_names=experiment
        )
    except MlopsError as exc:
        _fail(exc)
    if as_json:
        print_json(rows)
        return
    columns = list(rows[0]) if rows else [*(group_by or []), "runs"]
    table = Table(*columns)
    for row in rows:
        table.add_row(
            *(
                "-" if row[c] is None else num(row[c]) if isinstance(row[c], float) else str(row[c])
                for c in columns
            )
        )
    console.print(table)


@runs_app.command("compare")
def runs_compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.")],
    as_json: JsonOpt = False,
) -> None:
    """Params and metrics of runs side by side; differing params are marked."""
    try:
        comparison = _client().compare_runs(run_ids)
    except MlopsError as exc:
        _fail(exc)
    if as_json:
        print_json(
            {
                "run_ids": comparison.run_ids,
                "params": comparison.params,
                "differing_params": comparison.differing_params,
                "metrics": comparison.metrics,
            }
        )
        return
    names = [f"{r.info.run_name}\n{r.info.run_id[:8]}" for r in comparison.runs]
    table = Table("param", *names, title="Params")
    for key, values in comparison.params.items():
        differs = key in comparison.differing_params
        label = f"[bold yellow]{key} ≠[/]" if differs else key
        table.add_row(label, *("-" if v is None else v for v in values))
    console.print(table)
    table = Table("metric (last / min / max)", *names, title="Metrics")
    for key, summaries in comparison.metrics.items():
        table.add_row(
            key,
            *(
                "-" if s is None else f"{num(s.last, 4)} / {num(s.min, 4)} / {num(s.max, 4)}"
                for s in summaries
            ),
        )
    console.print(table)


@searches_app.command("save")
def searches_save(
    name: str,
    filter_string: Annotated[str, typer.Argument()] = "",
    order_by: Annotated[list[str] | None, typer.Option("--order-by", "-o")] = None,
    query: Annotated[str | None, typer.Option("--query", "-q")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
) -> None:
    """Save a search under NAME; run it with `runs search --saved NAME`."""
    try:
        saved = _client().save_search(
            name, filter_string, order_by, query=query, overwrite=overwrite
        )
    except MlopsError as exc:
        _fail(exc)
    console.print(f"Saved search {saved.name!r}: {saved.filter_string or '(all runs)'}")


@searches_app.command("list")
def searches_list(as_json: JsonOpt = False) -> None:
    """List saved searches."""
    saved = _client().list_saved_searches()
    if as_json:
        print_json(saved)
        return
    table = Table("name", "filter", "order by", "query")
    for s in saved:
        table.add_row(s.name, s.filter_string, ", ".join(s.order_by), s.query or "")
    console.print(table)


@searches_app.command("delete")
def searches_delete(name: str) -> None:
    """Delete a saved search."""
    try:
        _client().delete_saved_search(name)
    except MlopsError as exc:
        _fail(exc)
    console.print(f"Deleted saved search {name!r}.")


@runs_app.command("show")
def runs_show(run_id: str, as_json: JsonOpt = False) -> None:
    """Params, metrics (last/min/max), tags, artifacts and the Prefect link of one run."""
    client = _client()
    try:
        run = client.get_run(run_id)
        summaries = client.get_metric_summaries(run_id)
        artifacts = client.list_artifact_files(run_id)
        experiment = client.get_experiment(run.info.experiment_id)
        histograms = client.list_histogram_keys(run_id)
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
def setup(
    watchdog: Annotated[
        bool,
        typer.Option(help="Also create the Prefect automation that crashes silent flow runs."),
    ] = False,
    within: Annotated[
        int | None,
        typer.Option(help="Watchdog: seconds without a heartbeat (default: 2 periods + 15 s)."),
    ] = None,
) -> None:
    """Track every Prefect flow run from now on, with no code change."""
    from prefect_mlops.cli.setup import create_watchdog, enable_auto_tracking
    from prefect_mlops.core.settings import user_config_path

    for line in enable_auto_tracking(user_config_path()):
        console.print(f"[green]✓[/green] {line}")
    if watchdog:
        from prefect_mlops.cli.setup import default_within

        seconds = within or default_within()
        automation_id = create_watchdog(seconds)
        console.print(
            f"[green]✓[/green] Prefect automation {automation_id}: flow runs without a heartbeat "
            f"for {seconds} s are marked Crashed; their runs follow (`runs reconcile`)."
        )
    console.print(
        "Every flow run is now tracked: run one, then `prefect-mlops runs list`. Undo with "
        "`prefect config unset PREFECT_PLUGINS_ENABLED`."
    )


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
