"""The unmodified mlflow client against our server: fluent API and MlflowClient."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

mlflow: Any = pytest.importorskip("mlflow")


def test_fluent_run_with_params_metrics_tags_lands_in_default_experiment(
    mlflow_server: str,
) -> None:
    with mlflow.start_run(run_name="first") as run:
        mlflow.log_param("lr", 0.01)
        mlflow.log_params({"layers": 3, "act": "relu"})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"acc": 0.9, "nan": math.nan})
        mlflow.set_tag("team", "cv")
        mlflow.set_tags({"stage": "dev"})
    got = mlflow.get_run(run.info.run_id)
    assert got.info.experiment_id == "0"
    assert got.info.run_name == "first"
    assert got.info.status == "FINISHED"
    assert got.info.end_time >= got.info.start_time
    assert got.data.params == {"lr": "0.01", "layers": "3", "act": "relu"}
    assert got.data.metrics["loss"] == pytest.approx(0.2)
    assert got.data.metrics["acc"] == pytest.approx(0.9)
    assert math.isnan(got.data.metrics["nan"])
    assert got.data.tags["team"] == "cv" and got.data.tags["stage"] == "dev"
    assert got.info.artifact_uri.startswith("mlflow-artifacts:/")
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(s, 1.0 / (s + 1)) for s in range(5)]
    assert mlflow.get_experiment("0").name == "Default"
