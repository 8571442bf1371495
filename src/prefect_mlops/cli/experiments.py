"""``prefect-mlops experiments``: list experiments."""

from __future__ import annotations

from typing import Annotated

import typer

from prefect_mlops.cli.output import Column, fail, print_json, print_table, when
from prefect_mlops.core.errors import MlopsError
from prefect_mlops.tracking.client import TrackingClient

experiments_app = typer.Typer(help="Experiments.", no_args_is_help=True)


@experiments_app.command("list")
def experiments_list(
    filter_string: Annotated[
        str | None, typer.Option("--filter", "-f", help="e.g. \"name LIKE 'vision-%'\".")
    ] = None,
    wide: Annotated[bool, typer.Option("--wide", "-w", help="Every column.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List experiments, most recently updated first."""
    try:
        experiments = TrackingClient().search_experiments(filter_string=filter_string)
    except MlopsError as exc:
        fail(exc)
    if as_json:
        print_json(experiments)
        return
    columns = [
        Column("experiment id", [e.experiment_id for e in experiments]),
        Column("name", [e.name for e in experiments]),
        Column("created", [when(e.creation_time) for e in experiments], drop=1),
        Column(
            "artifact location",
            [e.artifact_location for e in experiments],
            drop=2,
            fold=True,
            min_width=20,
        ),
    ]
    print_table(columns, wide=wide)
