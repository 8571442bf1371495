"""Runs our own API made show their name to MLflow's clients and UI as MLflow writes it."""

from __future__ import annotations

import pytest

import prefect_mlops as mlops
from prefect_mlops.core.settings import reset_settings
from prefect_mlops.tracking.client import close_all_clients


def test_run_made_by_our_client_carries_mlflow_run_name(
    mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    monkeypatch.setenv("PREFECT_MLOPS_TRACKING_URI", mlflow_server)
    reset_settings()
    close_all_clients()
    try:
        ours = mlops.TrackingClient()
        run = ours.create_run(ours.create_experiment("named"), run_name="from-prefect-mlops")
        seen = MlflowClient().get_run(run.info.run_id)
        assert seen.info.run_name == "from-prefect-mlops"
        assert seen.data.tags["mlflow.runName"] == "from-prefect-mlops"
        assert "mlflow.runName" not in ours.get_run(run.info.run_id).data.tags  # ours: info only
    finally:
        close_all_clients()
        reset_settings()
