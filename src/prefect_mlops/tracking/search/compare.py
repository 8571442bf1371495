"""Runs side by side: params (differences marked), metrics (last/min/max), overlaid charts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from prefect_mlops.core.errors import InvalidInput
from prefect_mlops.tracking import runtime
from prefect_mlops.tracking.charts import multi_line_chart_svg, svg_data_uri
from prefect_mlops.tracking.entities import MetricHistory, MetricSummary, Run

MAX_COMPARED = 20
MAX_CHARTS = 12


class MetricHistorySource(Protocol):
    """Anything that reads metric histories (a `TrackingClient`)."""

    def get_metric_history(self, run_id: str, key: str) -> MetricHistory: ...


def distinguishing_suffixes(ids: Sequence[str], minimum: int = 4) -> list[str]:
    """The shortest ends of ``ids`` (at least ``minimum`` characters) that tell them apart.

    Run ids are time-ordered, so runs made together share long prefixes; their ends differ."""
    for length in range(minimum, max((len(i) for i in ids), default=minimum) + 1):
        ends = [i[-length:] for i in ids]
        if len(set(ends)) == len(set(ids)):
            return ends
    return list(ids)


@dataclass(frozen=True)
class RunComparison:
    """``params[key][i]`` and ``metrics[key][i]`` belong to ``runs[i]`` (None when missing)."""

    runs: list[Run]
    params: dict[str, list[str | None]]
    differing_params: list[str]
    metrics: dict[str, list[MetricSummary | None]]

    @property
    def run_ids(self) -> list[str]:
        return [r.info.run_id for r in self.runs]

    def to_markdown(self, client: MetricHistorySource | None = None) -> str:
        """A markdown report; with ``client``, one overlaid chart per metric too."""
        ends = distinguishing_suffixes(self.run_ids)
        names = [f"{r.info.run_name} (…{end})" for r, end in zip(self.runs, ends, strict=True)]
        header = "| | " + " | ".join(names) + " |"
        rule = "|---" * (len(names) + 1) + "|"
        lines = ["# Run comparison", "", "## Params", "", header, rule]
        for key, values in self.params.items():
            mark = " **≠**" if key in self.differing_params else ""
            cells = " | ".join("-" if v is None else v for v in values)
            lines.append(f"| {key}{mark} | {cells} |")
        lines += ["", "## Metrics (last · min · max)", "", header, rule]
        for key, summaries in self.metrics.items():
            cells = " | ".join(
                "-" if s is None else f"{s.last:.4g} · {s.min:.4g} · {s.max:.4g}" for s in summaries
            )
            lines.append(f"| {key} | {cells} |")
        if client is not None:
            lines.append("")
            for key in list(self.metrics)[:MAX_CHARTS]:
                series = []
                for run, name in zip(self.runs, names, strict=True):
                    history = client.get_metric_history(run.info.run_id, key)
                    series.append((name, list(history.steps), list(history.values)))
                svg = multi_line_chart_svg(key, series)
                lines += [f"![{key}]({svg_data_uri(svg)})", ""]
        return "\n".join(lines) + "\n"

    def publish(self, client: MetricHistorySource, key: str = "mlops-run-comparison") -> str:
        """Add the report as a markdown artifact to the current Prefect flow run."""
        publish = runtime.hooks.publish_markdown
        if publish is None:
            raise InvalidInput(
                "compare_runs(..., publish=True) publishes to a Prefect flow run; call it "
                "inside a flow or task."
            )
        return publish(key, self.to_markdown(client), f"Comparison of {len(self.runs)} runs")


def compared_ids(run_ids: Sequence[str]) -> list[str]:
    """The distinct ids of ``run_ids``, in order; InvalidInput unless 2 to `MAX_COMPARED`."""
    ids = list(dict.fromkeys(run_ids))
    if not 2 <= len(ids) <= MAX_COMPARED:
        raise InvalidInput(
            f"compare_runs needs 2 to {MAX_COMPARED} distinct run ids; got {len(ids)}."
        )
    return ids


def compare(runs: Sequence[Run], summaries: Sequence[Sequence[MetricSummary]]) -> RunComparison:
    """Line up ``runs`` and their metric summaries (``summaries[i]`` belongs to ``runs[i]``)."""
    compared_ids([r.info.run_id for r in runs])
    param_keys = sorted({k for r in runs for k in r.data.params})
    params = {k: [r.data.params.get(k) for r in runs] for k in param_keys}
    differing = [k for k, values in params.items() if len(set(values)) > 1]
    by_key = [{s.key: s for s in run_summaries} for run_summaries in summaries]
    metric_keys = sorted({k for s in by_key for k in s})
    metrics = {k: [s.get(k) for s in by_key] for k in metric_keys}
    return RunComparison(list(runs), params, differing, metrics)
