"""``prefect-mlops``: the command. Each group of subcommands lives in a module of its own
(``experiments.py``, ``runs.py``, ``searches.py``, ``server.py``); ``setup.py`` and
``demo.py`` hold what the ``setup`` and ``demo`` commands do, ``output.py`` the rendering
they share."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from prefect_mlops.cli.experiments import experiments_app
from prefect_mlops.cli.output import console, error_console, fail
from prefect_mlops.cli.runs import runs_app
from prefect_mlops.cli.searches import searches_app
from prefect_mlops.cli.server import server_app
from prefect_mlops.cli.setup import create_watchdog, default_within, enable_auto_tracking
from prefect_mlops.cli.sync import sync
from prefect_mlops.core.db import get_engine, mask_url
from prefect_mlops.core.errors import MlopsError
from prefect_mlops.core.migrate import upgrade
from prefect_mlops.core.settings import get_settings, user_config_path
from prefect_mlops.tracking.flow_runs.api import prefect_api_configured

app = typer.Typer(
    name="prefect-mlops",
    help="Experiment tracking for Prefect flows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The metadata database.", no_args_is_help=True)
app.add_typer(experiments_app, name="experiments")
app.add_typer(runs_app, name="runs")
app.add_typer(db_app, name="db")
app.add_typer(searches_app, name="searches")
app.add_typer(server_app, name="server")
app.command()(sync)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations to the metadata database."""
    url = get_settings().resolved_database_url
    try:
        revision = upgrade(get_engine(url))
    except MlopsError as exc:
        fail(exc)
    console.print(f"{mask_url(url)} is at revision {revision}.", soft_wrap=True)


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
    for line in enable_auto_tracking(user_config_path()):
        console.print(f"[green]✓[/green] {line}", soft_wrap=True)
    if watchdog:
        if not prefect_api_configured():
            error_console.print(
                "[yellow]Watchdog not created:[/yellow] PREFECT_API_URL is not set, so the "
                "automation would live on a temporary Prefect server that vanishes when this "
                "command ends. Start a persistent server (`prefect server start`), point "
                "PREFECT_API_URL at it, and run `prefect-mlops setup --watchdog` again.",
                soft_wrap=True,
            )
            raise typer.Exit(1)
        seconds = within or default_within()
        automation_id = create_watchdog(seconds)
        console.print(
            f"[green]✓[/green] Prefect automation {automation_id}: flow runs without a heartbeat "
            f"for {seconds} s are marked Crashed; their runs follow (`runs reconcile`).",
            soft_wrap=True,
        )
    console.print(
        "Every flow run is now tracked: run one, then `prefect-mlops runs list`. Undo with "
        "`prefect config unset PREFECT_PLUGINS_ENABLED`."
    )


@app.command()
def demo(
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 20,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 0.002,
    batch_size: Annotated[int, typer.Option(help="Minibatch size.")] = 64,
) -> None:
    """Train a small model inside a tracked Prefect flow and show what was recorded."""
    # Prefect's temporary server otherwise races its own telemetry writes on SQLite.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect_mlops.cli.demo import run_demo  # imports Prefect: only for this command

    run_demo(epochs=epochs, lr=lr, batch_size=batch_size)


if __name__ == "__main__":
    app()
