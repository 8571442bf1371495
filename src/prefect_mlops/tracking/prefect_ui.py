"""What a tracked flow run shows on its Artifacts tab: a run summary and metric charts."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prefect_mlops.tracking.charts import line_chart_svg, svg_data_uri
from prefect_mlops.tracking.entities import FileInfo, Metric, MetricSummary, Run

if TYPE_CHECKING:
    from prefect_mlops.tracking.client import TrackingClient

MAX_CHARTS = 12
MAX_PARAM_ROWS = 200


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key: lowercase letters, digits and dashes."""
    key = re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")
    return key[:200] or "mlops"


def _cell(value: object) -> str:
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 120 else text[:117] + "..."


def _num(value: float) -> str:
    return str(value) if not math.isfinite(value) else f"{value:.6g}"


def summary_markdown(
    run: Run,
    experiment: str,
    summaries: Sequence[MetricSummary],
    files: Sequence[FileInfo],
    steps: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    info = run.info
    lines = [
        f"# Run `{info.run_name}`",
        "",
        f"- **status**: {info.status.value}",
        f"- **run id**: `{info.run_id}`",
        f"- **experiment**: `{experiment}`",
        f"- **artifacts**: [{info.artifact_uri}]({info.artifact_uri})",
        f"- **details**: `prefect-mlops runs show {info.run_id}`",
    ]
    if info.parent_run_id:
        lines.append(f"- **parent run**: `{info.parent_run_id}`")
    if run.data.params:
        lines += ["", "## Params", "", "| param | value |", "|---|---|"]
        for key, value in sorted(run.data.params.items())[:MAX_PARAM_ROWS]:
            lines.append(f"| {_cell(key)} | {_cell(value)} |")
    if summaries:
        lines += ["", "## Metrics", "", "| metric | last | min | max | steps |"]
        lines.append("|---|---|---|---|---|")
        for s in summaries:
            lines.append(
                f"| {_cell(s.key)} | {_num(s.last)} | {_num(s.min)} | {_num(s.max)} | {s.count} |"
            )
    if steps:
        lines += ["", "## Task runs", "", "| task | state | seconds |", "|---|---|---|"]
        for step in sorted(steps, key=lambda s: s["start"])[:MAX_PARAM_ROWS]:
            lines.append(f"| {_cell(step['task'])} | {step['state']} | {step['duration_s']:.3f} |")
    if files:
        lines += ["", f"## Artifacts ({len(files)})", ""]
        lines += [f"- `{f.path}` ({f.file_size:,} bytes)" for f in files[:50]]
    return "\n".join(lines) + "\n"


def charts_markdown(
    run: Run, summaries: Sequence[MetricSummary], histories: Mapping[str, Sequence[Metric]]
) -> str:
    lines = [f"# Metrics of `{run.info.run_name}`", ""]
    for s in summaries[:MAX_CHARTS]:
        history = histories.get(s.key, [])
        svg = line_chart_svg(s.key, [m.step for m in history], [m.value for m in history])
        lines += [f"![{s.key}]({svg_data_uri(svg)})", ""]
    if len(summaries) > MAX_CHARTS:
        more = len(summaries) - MAX_CHARTS
        lines.append(f"_{more} more metrics: `prefect-mlops runs show {run.info.run_id}`_")
    return "\n".join(lines)


def publish_run_summary(
    client: TrackingClient,
    run_id: str,
    flow_run_id: str,
    steps: Sequence[Mapping[str, Any]] | None = None,
) -> list[str]:
    """Create the summary and chart artifacts on ``flow_run_id``; returns their keys."""
    from uuid import UUID

    from prefect.client.schemas.actions import ArtifactCreate

    from prefect_mlops.tracking.prefect_binding import prefect_client

    client.flush()
    store = client.store
    run = store.get_run(run_id)
    experiment = store.get_experiment(run.info.experiment_id).name
    summaries = store.get_metric_summaries(run_id)
    docs = [
        (
            artifact_key("mlops-summary", experiment),
            summary_markdown(run, experiment, summaries, client.list_artifact_files(run_id), steps),
            "Run summary",
        )
    ]
    # User metrics first; system telemetry is charted only once it has a curve to show.
    charted = [s for s in summaries if not s.key.startswith("system/")]
    charted += [s for s in summaries if s.key.startswith("system/") and s.count > 1]
    if charted:
        keys = [s.key for s in charted[:MAX_CHARTS]]
        charts = charts_markdown(run, charted, store.get_metric_histories(run_id, keys))
        docs.append((artifact_key("mlops-charts", experiment), charts, "Metric charts"))
    with prefect_client() as prefect:
        for key, markdown, description in docs:
            prefect.create_artifact(
                ArtifactCreate(
                    key=key,
                    type="markdown",
                    data=markdown,
                    description=description,
                    flow_run_id=UUID(flow_run_id),
                )
            )
    return [d[0] for d in docs]
