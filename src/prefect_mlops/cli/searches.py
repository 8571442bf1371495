"""``prefect-mlops searches``: save, list and delete saved run searches."""

from __future__ import annotations

from typing import Annotated

import typer

from prefect_mlops.cli.output import Column, console, fail, print_json, print_table
from prefect_mlops.core.errors import MlopsError
from prefect_mlops.tracking.client import TrackingClient

searches_app = typer.Typer(help="Saved searches.", no_args_is_help=True)


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
        saved = TrackingClient().save_search(
            name, filter_string, order_by, query=query, overwrite=overwrite
        )
    except MlopsError as exc:
        fail(exc)
    console.print(f"Saved search {saved.name!r}: {saved.filter_string or '(all runs)'}")


@searches_app.command("list")
def searches_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List saved searches."""
    saved = TrackingClient().list_saved_searches()
    if as_json:
        print_json(saved)
        return
    print_table(
        [
            Column("name", [s.name for s in saved]),
            Column("filter", [s.filter_string for s in saved], fold=True),
            Column("order by", [", ".join(s.order_by) for s in saved], fold=True, min_width=10),
            Column("query", [s.query or "" for s in saved], drop=1, fold=True, min_width=10),
        ]
    )


@searches_app.command("delete")
def searches_delete(name: str) -> None:
    """Delete a saved search."""
    try:
        TrackingClient().delete_saved_search(name)
    except MlopsError as exc:
        fail(exc)
    console.print(f"Deleted saved search {name!r}.")
