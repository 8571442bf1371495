"""Shared rendering for CLI commands: rich tables for people, JSON for scripts.

Tables fit the terminal (80 columns in a pipe or a small window): ids are never cut, columns
that do not fit are dropped (and said so) or folded; ``--wide`` and ``--json`` give everything.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from prefect_mlops.core.errors import MlopsError
from prefect_mlops.tracking.client import TrackingClient
from prefect_mlops.tracking.entities import Run

console = Console()
error_console = Console(stderr=True)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {k: _jsonable(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, Sequence)) and not isinstance(value, str):
        return [_jsonable(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/Infinity
    return value


def print_json(value: Any) -> None:
    print(json.dumps(_jsonable(value), indent=2))


def fail(error: MlopsError | str) -> NoReturn:
    """Print ``error`` and exit with status 1."""
    console.print(f"[red]Error:[/red] {error}", soft_wrap=True, highlight=False)
    raise typer.Exit(1)


def when(ms: int | None, short: bool = False) -> str:
    if ms is None:
        return "-"
    fmt = "%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S"
    return dt.datetime.fromtimestamp(ms / 1000).strftime(fmt)


def duration(start: int, end: int | None) -> str:
    if end is None:
        return "-"
    seconds = (end - start) / 1000
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def num(value: float, digits: int = 6) -> str:
    return f"{value:.{digits}g}" if math.isfinite(value) else str(value)


STATUS_STYLE = {
    "RUNNING": "cyan",
    "SCHEDULED": "blue",
    "FINISHED": "green",
    "FAILED": "red",
    "KILLED": "magenta",
}


def status_text(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


@dataclass
class Column:
    """A table column; ``drop`` ranks columns that may be left out when the terminal is too
    narrow (higher: dropped first; 0: always shown), ``fold`` lets a column wrap its cells."""

    header: str
    cells: list[str] = field(default_factory=list)
    drop: int = 0
    fold: bool = False
    min_width: int = 16

    def natural_width(self) -> int:
        widths = [Text.from_markup(c).cell_len for c in self.cells]
        return max([len(self.header), *widths])

    def needed(self) -> int:
        """Cells of the terminal this column takes at least (borders and padding included)."""
        width = self.natural_width()
        return (min(width, self.min_width) if self.fold else width) + 3


def fit_table(
    columns: Sequence[Column], width: int, wide: bool = False, title: str | None = None
) -> tuple[Table, list[str]]:
    """A table of ``columns`` that fits ``width`` terminal cells, and the headers of the
    columns left out to make it fit (none with ``wide``)."""
    shown = list(columns)
    dropped: list[str] = []
    if not wide:
        for column in sorted((c for c in columns if c.drop), key=lambda c: -c.drop):
            if sum(c.needed() for c in shown) + 1 <= width:
                break
            shown.remove(column)
            dropped.append(column.header)
    table = Table(title=title)
    for column in shown:
        table.add_column(
            column.header,
            no_wrap=not column.fold,
            overflow="fold",
            min_width=min(column.natural_width(), column.min_width) if column.fold else None,
        )
    rows = len(columns[0].cells) if columns else 0
    for i in range(rows):
        table.add_row(*(c.cells[i] for c in shown))
    return table, dropped


def print_table(columns: Sequence[Column], wide: bool = False, title: str | None = None) -> None:
    """Print a fitted table; with ``wide``, every column at full width whatever the terminal."""
    if wide:
        table, _ = fit_table(columns, 0, wide=True, title=title)
        needed = sum(c.natural_width() + 3 for c in columns) + 1
        Console(width=max(needed, console.width)).print(table)
        return
    table, dropped = fit_table(columns, console.width, title=title)
    console.print(table)
    if dropped:
        console.print(
            f"[dim]({', '.join(dropped)} left out to fit {console.width} columns; "
            "--wide or --json shows everything)[/dim]"
        )


def own_metrics(metrics: dict[str, float]) -> list[tuple[str, float]]:
    """A run's metrics by key, its own first and system telemetry (``system/*``) after."""
    return sorted(metrics.items(), key=lambda kv: (kv[0].startswith("system/"), kv[0]))


def runs_columns(runs: Sequence[Run], experiment_names: dict[str, str] | None) -> list[Column]:
    """The columns of a runs listing; the experiment column only with ``experiment_names``."""
    columns = [
        Column("run id", [r.info.run_id for r in runs]),
        Column("name", [r.info.run_name for r in runs], drop=2),
    ]
    if experiment_names is not None:
        columns.append(
            Column(
                "experiment",
                [experiment_names.get(r.info.experiment_id, r.info.experiment_id) for r in runs],
                drop=4,
            )
        )
    columns += [
        Column("status", [status_text(r.info.status.value) for r in runs]),
        Column("started", [when(r.info.start_time, short=True) for r in runs], drop=5),
        Column("duration", [duration(r.info.start_time, r.info.end_time) for r in runs], drop=6),
        Column(
            "metrics",
            [
                " ".join(f"{k}={num(v, 4)}" for k, v in own_metrics(r.data.metrics)[:4])
                for r in runs
            ],
            drop=3,
            fold=True,
            min_width=22,
        ),
    ]
    return columns


def print_run(client: TrackingClient, run_id: str, as_json: bool = False) -> None:
    """Params, metrics (last/min/max), tags, artifacts and the Prefect link of one run."""
    try:
        run = client.get_run(run_id)
        summaries = client.get_metric_summaries(run_id)
        artifacts = client.list_artifact_files(run_id)
        experiment = client.get_experiment(run.info.experiment_id)
        histograms = client.list_histogram_keys(run_id)
    except MlopsError as exc:
        fail(exc)
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
    console.print(f"[bold]{info.run_name}[/bold]  {info.run_id}", soft_wrap=True)
    console.print(
        f"experiment [bold]{experiment.name}[/bold] · {status_text(info.status.value)} · "
        f"started {when(info.start_time)} · duration {duration(info.start_time, info.end_time)}"
    )
    if info.parent_run_id:
        console.print(f"parent run {info.parent_run_id}", soft_wrap=True)
    if url := run.data.tags.get("prefect.url"):
        console.print(f"Prefect: [link={url}]{url}[/link]", soft_wrap=True)
    console.print(f"artifacts: {info.artifact_uri}", soft_wrap=True, highlight=False)
    if run.data.params:
        table = Table("param", "value", title="Params")
        for k, v in sorted(run.data.params.items()):
            table.add_row(k, v)
        console.print(table)
    own = [s for s in summaries if not s.key.startswith("system/")]
    system = [s for s in summaries if s.key.startswith("system/")]
    for title, rows in (("Metrics", own), ("System metrics", system)):
        if rows:
            table = Table("metric", "last", "min", "max", "steps", title=title)
            for s in rows:
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
