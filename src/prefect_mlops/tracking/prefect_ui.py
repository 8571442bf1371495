"""What a tracked flow run shows on its Artifacts tab: a run summary and metric charts."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from prefect_mlops.tracking.charts import line_chart_svg, svg_data_uri

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


def summary_markdown(client: TrackingClient, run_id: str) -> str:
    run = client.get_run(run_id)
    info = run.info
    lines = [
        f"# Run `{info.run_name}`",
        "",
        f"- **status**: {info.status.value}",
        f"- **run id**: `{info.run_id}`",
        f"- **experiment**: `{client.get_experiment(info.experiment_id).name}`",
        f"- **artifacts**: [{info.artifact_uri}]({info.artifact_uri})",
        f"- **details**: `prefect-mlops runs show {info.run_id}`",
    ]
    if info.parent_run_id:
        lines.append(f"- **parent run**: `{info.parent_run_id}`")
    if run.data.params:
        lines += ["", "## Params", "", "| param | value |", "|---|---|"]
        for key, value in sorted(run.data.params.items())[:MAX_PARAM_ROWS]:
            lines.append(f"| {_cell(key)} | {_cell(value)} |")
    summaries = client.get_metric_summaries(run_id)
    if summaries:
        lines += [
            "",
            "## Metrics",
            "",
            "| metric | last | min | max | steps |",
            "|---|---|---|---|---|",
        ]
        for s in summaries:
            lines.append(
                f"| {_cell(s.key)} | {_num(s.last)} | {_num(s.min)} | {_num(s.max)} | {s.count} |"
            )
    files = client.store.artifact_files(run_id)
    if files:
        lines += ["", f"## Artifacts ({len(files)})", ""]
        lines += [f"- `{f.path}` ({f.file_size:,} bytes)" for f in files[:50]]
    return "\n".join(lines) + "\n"


def charts_markdown(client: TrackingClient, run_id: str) -> str | None:
    summaries = client.get_metric_summaries(run_id)
    if not summaries:
        return None
    lines = [f"# Metrics of `{client.get_run(run_id).info.run_name}`", ""]
    for s in summaries[:MAX_CHARTS]:
        history = client.get_metric_history(run_id, s.key)
        svg = line_chart_svg(s.key, [m.step for m in history], [m.value for m in history])
        lines += [f"![{s.key}]({svg_data_uri(svg)})", ""]
    if len(summaries) > MAX_CHARTS:
        lines.append(
            f"_{len(summaries) - MAX_CHARTS} more metrics: `prefect-mlops runs show {run_id}`_"
        )
    return "\n".join(lines)


def publish_run_summary(client: TrackingClient, run_id: str, flow_run_id: str) -> list[str]:
    """Create the summary and chart artifacts on ``flow_run_id``; returns their keys."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    experiment = client.get_experiment(client.store.get_run_info(run_id).experiment_id).name
    docs = [
        (
            artifact_key("mlops-summary", experiment),
            summary_markdown(client, run_id),
            "Run summary",
        ),
    ]
    charts = charts_markdown(client, run_id)
    if charts:
        docs.append((artifact_key("mlops-charts", experiment), charts, "Metric charts"))
    with get_client(sync_client=True) as prefect:
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
