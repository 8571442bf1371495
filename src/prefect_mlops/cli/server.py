"""``prefect-mlops server``: start the tracking server, and say what it serves."""

from __future__ import annotations

import ipaddress
import urllib.request
from typing import Annotated

import typer

from prefect_mlops import __version__
from prefect_mlops.cli.output import console, fail, print_json
from prefect_mlops.core.db import mask_url
from prefect_mlops.core.settings import get_settings
from prefect_mlops.server.run import serve
from prefect_mlops.tracking.client import TrackingClient
from prefect_mlops.tracking.entities import ViewType

server_app = typer.Typer(help="The tracking server.", no_args_is_help=True)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@server_app.command("start")
def server_start(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every one).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
) -> None:
    """Serve MLflow's REST API and the native API over the configured store and artifacts
    (PREFECT_MLOPS_DATABASE_URL, PREFECT_MLOPS_ARTIFACT_STORAGE; SQLite and a local folder
    by default)."""
    settings = get_settings()
    where = "every address" if host in ("0.0.0.0", "::") else host
    console.print(
        f"prefect-mlops {__version__} serving {mask_url(settings.resolved_database_url)} "
        f"and artifacts at {settings.resolved_artifact_storage} on {where}, port {port} "
        f"({workers} worker{'s' if workers > 1 else ''}).\n"
        f"Clients: MLFLOW_TRACKING_URI=http://{host if _loopback(host) else '<this host>'}:"
        f"{port} (stock mlflow) or PREFECT_MLOPS_TRACKING_URI=... (prefect-mlops).",
        soft_wrap=True,
        highlight=False,
    )
    serve(host=host, port=port, workers=workers)


def _server_version(url: str) -> str:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/version", timeout=10) as answer:
            return str(answer.read().decode())
    except OSError as exc:
        fail(f"The tracking server at {url} does not answer ({exc}); is it running?")


@server_app.command("info")
def server_info(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Version, store, artifact root and how many experiments and runs it holds: of the
    tracking server at PREFECT_MLOPS_TRACKING_URI when it is set, else of the local store."""
    settings = get_settings()
    client = TrackingClient(settings=settings)
    remote = client.tracking_uri
    info = {
        "version": _server_version(remote) if remote else __version__,
        "store": remote or mask_url(client.database_url),
        "artifact_root": "(the server's)" if remote else client.artifact_root,
        "experiments": len(client.search_experiments(view_type=ViewType.ALL, max_results=50_000)),
        "runs": client.count_runs(run_view_type=ViewType.ALL),
    }
    if as_json:
        print_json(info)
        return
    for key, value in info.items():
        console.print(f"{key:>13}: {value}", soft_wrap=True, highlight=False)
