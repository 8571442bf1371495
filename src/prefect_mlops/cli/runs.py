"""``prefect-mlops runs``: list, search, aggregate, compare and show runs; settle crashed ones."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from prefect_mlops.cli.output import (
    Column,
    console,
    fail,
    num,
    print_json,
    print_run,
    print_table,
    runs_columns,
    when,
)
from prefect_mlops.core.errors import MlopsError, NotFound
from prefect_mlops.tracking.client import TrackingClient
from prefect_mlops.tracking.entities import Run
from prefect_mlops.tracking.flow_runs.reconcile import prefect_api_configured, reconcile_runs
from prefect_mlops.tracking.search.compare import distinguishing_suffixes

runs_app = typer.Typer(help="Tracking runs.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
WideOpt = Annotated[
    bool, typer.Option("--wide", "-w", help="Every column, however wide the terminal.")
]
IdsOpt = Annotated[bool, typer.Option("--ids", help="Print only run ids, one per line.")]
RunIdArg = Annotated[str, typer.Argument(help="A run id, or 'latest' for the newest run.")]


def _run_id(client: TrackingClient, run_id: str) -> str:
    """``run_id`` itself, or the newest run's id for ``latest``."""
    if run_id != "latest":
        return run_id
    newest = client.search_runs(max_results=1)
    if not newest:
        fail("There are no runs yet; 'latest' names the newest run once there is one.")
    return newest[0].info.run_id


def _experiment_ids(client: TrackingClient, names: list[str] | None) -> list[str] | None:
    """The ids of experiments named ``names``; an unknown name is an error, as everywhere."""
    if not names:
        return None
    ids = []
    for name in names:
        found = client.get_experiment_by_name(name)
        if found is None:
            known = sorted(e.name for e in client.search_experiments(view_type="all"))
            fail(
                f"No experiment named {name!r}; experiments: {', '.join(known) or '(none)'} "
                "(see `prefect-mlops experiments list`)."
            )
        ids.append(found.experiment_id)
    return ids


def _print_runs(client: TrackingClient, runs: list[Run], show_experiment: bool, wide: bool) -> None:
    names = (
        {e.experiment_id: e.name for e in client.search_experiments(view_type="all")}
        if show_experiment
        else None
    )
    print_table(runs_columns(runs, names), wide=wide)


@runs_app.command("list")
def runs_list(
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-e", help="Experiment name.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs.")] = 50,
    wide: WideOpt = False,
    ids_only: IdsOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """List runs, newest first."""
    client = TrackingClient()
    try:
        ids = _experiment_ids(client, [experiment] if experiment is not None else None)
        runs = client.search_runs(ids, max_results=limit)
    except MlopsError as exc:
        fail(exc)
    if ids_only:
        print("\n".join(r.info.run_id for r in runs))
        return
    if as_json:
        print_json(runs)
        return
    _print_runs(client, list(runs), show_experiment=experiment is None, wide=wide)


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
    wide: WideOpt = False,
    ids_only: IdsOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Find runs with MLflow's filter grammar plus OR, NOT and parentheses."""
    client = TrackingClient()
    try:
        ids = _experiment_ids(client, experiment)
        if count:
            total = client.count_runs(ids, filter_string=filter_string, query=query)
            if as_json:
                print_json({"count": total})
            else:
                console.print(total)
            return
        runs = client.search_runs(
            ids,
            filter_string=filter_string,
            order_by=order_by,
            query=query,
            saved=saved,
            max_results=max_results,
            page_token=page_token,
        )
    except MlopsError as exc:
        fail(exc)
    if ids_only:
        print("\n".join(r.info.run_id for r in runs))
        return
    if as_json:
        print_json({"runs": list(runs), "next_page_token": runs.token})
        return
    _print_runs(client, list(runs), show_experiment=True, wide=wide)
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
            fail(f"--metric {spec!r} must look like 'val/acc:mean,max'.")
        wanted.setdefault(key, []).extend(f.strip() for f in functions.split(",") if f.strip())
    client = TrackingClient()
    try:
        ids = _experiment_ids(client, experiment)
        rows = client.aggregate_runs(
            filter_string, experiment_ids=ids, group_by=group_by or [], metrics=wanted
        )
    except MlopsError as exc:
        fail(exc)
    if as_json:
        print_json(rows)
        return
    columns = list(rows[0]) if rows else [*(group_by or []), "runs"]
    cells = {
        c: [
            "-" if row[c] is None else num(row[c]) if isinstance(row[c], float) else str(row[c])
            for row in rows
        ]
        for c in columns
    }
    print_table([Column(c, cells[c], fold=True, min_width=10) for c in columns])


@runs_app.command("compare")
def runs_compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.")],
    as_json: JsonOpt = False,
) -> None:
    """Params and metrics of runs side by side; differing params are marked."""
    client = TrackingClient()
    try:
        comparison = client.compare_runs([_run_id(client, r) for r in run_ids])
    except MlopsError as exc:
        fail(exc)
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
    ends = distinguishing_suffixes(comparison.run_ids)
    names = [f"{r.info.run_name}\n…{end}" for r, end in zip(comparison.runs, ends, strict=True)]
    table = Table("param", *names, title="Params")
    for key, values in comparison.params.items():
        differs = key in comparison.differing_params
        label = f"[bold yellow]{key} ≠[/]" if differs else key
        table.add_row(label, *("-" if v is None else v for v in values))
    console.print(table)
    table = Table("metric (last / min / max)", *names, title="Metrics")
    for key, summaries in sorted(
        comparison.metrics.items(), key=lambda kv: (kv[0].startswith("system/"), kv[0])
    ):
        table.add_row(
            key,
            *(
                "-" if s is None else f"{num(s.last, 4)} / {num(s.min, 4)} / {num(s.max, 4)}"
                for s in summaries
            ),
        )
    console.print(table)


@runs_app.command("show")
def runs_show(run_id: RunIdArg, as_json: JsonOpt = False) -> None:
    """Params, metrics (last/min/max), tags, artifacts and the Prefect link of one run."""
    client = TrackingClient()
    print_run(client, _run_id(client, run_id), as_json)


@runs_app.command("history")
def runs_history(run_id: RunIdArg, key: str, as_json: JsonOpt = False) -> None:
    """Every logged point of one metric."""
    client = TrackingClient()
    run_id = _run_id(client, run_id)
    try:
        history = client.get_metric_history(run_id, key)
        if not len(history):
            keys = [s.key for s in client.get_metric_summaries(run_id)]
            if key not in keys:
                raise NotFound(
                    f"Run {run_id} has no metric {key!r}; its metrics: "
                    f"{', '.join(keys) or '(none)'}."
                )
    except MlopsError as exc:
        fail(exc)
    if as_json:
        print_json(history)
        return
    table = Table("step", "value", "time", title=key)
    for m in history:
        table.add_row(str(m.step), num(m.value), when(m.timestamp))
    console.print(table)


@runs_app.command("reconcile")
def runs_reconcile(as_json: JsonOpt = False) -> None:
    """End RUNNING runs whose Prefect flow runs have already finished, crashed or been
    cancelled (asks the Prefect server at PREFECT_API_URL)."""
    if not prefect_api_configured():
        fail(
            "PREFECT_API_URL is not set; reconcile asks your Prefect server for the final "
            "state of flow runs, so point PREFECT_API_URL at it (e.g. "
            "http://127.0.0.1:4200/api)."
        )
    try:
        changed = reconcile_runs(TrackingClient())
    except MlopsError as exc:
        fail(exc)
    if as_json:
        print_json([{"run_id": r, "status": s, "prefect_state": p} for r, s, p in changed])
        return
    if not changed:
        console.print("All runs agree with Prefect.")
    for run_id, status, state in changed:
        console.print(f"{run_id}: RUNNING -> {status.value} (flow run {state})", soft_wrap=True)
