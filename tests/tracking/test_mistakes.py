"""Mistakes a newcomer makes with the API get a clear error, and what is printed reads well."""

from __future__ import annotations

from pathlib import Path

import pytest

import prefect_mlops as mlops
from prefect_mlops import InvalidInput, NotFound
from prefect_mlops.tracking.entities import MetricSummary
from prefect_mlops.tracking.flow_runs.summary import summary_markdown


def test_a_filter_passed_where_experiment_ids_go_is_named(tracking_db: str) -> None:
    with mlops.start_run():
        mlops.log_metric("acc", 0.95)
    with pytest.raises(InvalidInput, match=r"filter_string='metrics.acc > 0.9'"):
        mlops.search_runs("metrics.acc > 0.9")
    with pytest.raises(NotFound, match="is a string, read as one experiment id"):
        mlops.search_runs("0123456789abcdef0123456789abcdef")
    exp = mlops.get_client().get_experiment_by_name("Default")
    assert exp is not None
    assert len(mlops.search_runs(exp.experiment_id)) == 1  # one existing id as a string
    assert len(mlops.search_runs(filter_string="metrics.acc > 0.9")) == 1


def test_metric_history_repr_shows_its_first_points(tracking_db: str) -> None:
    with mlops.start_run() as run:
        for step in range(5):
            mlops.log_metric("rmse", 1.0 / (step + 1), step=step)
    history = mlops.get_metric_history(run.run_id, "rmse")
    assert repr(history) == (
        "MetricHistory('rmse', 5 points: [(step=0, value=1.0), (step=1, value=0.5), "
        "(step=2, value=0.3333333333333333), ... 2 more])"
    )
    assert repr(history[:1]) == "MetricHistory('rmse', 1 points: [(step=0, value=1.0)])"


def test_publishing_a_comparison_outside_a_flow_refuses(mlops_home: Path) -> None:
    ids = []
    for lr in ("0.1", "0.2"):
        with mlops.start_run() as run:
            mlops.log_param("lr", lr)
        ids.append(run.run_id)
    comparison = mlops.compare_runs(ids)  # without publishing, it works anywhere
    assert comparison.differing_params == ["lr"]
    with pytest.raises(InvalidInput, match="inside a flow or task"):
        mlops.compare_runs(ids, publish=True)


def _summary(key: str, count: int) -> MetricSummary:
    return MetricSummary(key=key, last=1.0, step=count, timestamp=0, min=0.5, max=2.0, count=count)


def test_run_summary_keeps_system_metrics_apart_and_shows_the_location_as_text(
    tracking_db: str,
) -> None:
    with mlops.start_run(run_name="summarised") as active:
        mlops.log_metric("val/acc", 0.9)
    run = mlops.get_run(active.run_id)
    text = summary_markdown(
        run,
        "exp",
        [_summary("system/cpu_percent", 1), _summary("val/acc", 20)],
        files=[],
    )
    metrics = text.split("## Metrics")[1].split("## System")[0]
    system = text.split("## System")[1]
    assert "val/acc" in metrics and "system/" not in metrics
    assert "system/cpu_percent" in system
    assert f"- **artifacts**: `{run.info.artifact_uri}`" in text
    assert f"]({run.info.artifact_uri})" not in text  # no link to a path of another machine


def test_a_long_lived_client_forgets_old_runs_instead_of_growing(
    tracking_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = mlops.TrackingClient()
    monkeypatch.setattr(type(client._writable), "limit", 3)
    experiment = client.create_experiment("many")
    runs = [client.create_run(experiment).info.run_id for _ in range(5)]
    assert len(client._writable) <= 3 and runs[-1] in client._writable
    client.log_metric(runs[0], "m", 1.0)  # a forgotten run is checked again, and still works
    client.flush()
    assert client.get_run(runs[0]).data.metrics == {"m": 1.0}
