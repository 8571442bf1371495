"""The prefect-mlops command, run through typer's runner on a real store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import prefect_mlops as mlops
from prefect_mlops.cli.main import app

runner = CliRunner()


@pytest.fixture
def seeded(mlops_home: Path) -> str:
    mlops.set_experiment("cli-exp")
    with mlops.start_run(run_name="cli-run") as run:
        mlops.log_params({"lr": 0.1})
        for step, value in enumerate([3.0, 1.0, 2.0]):
            mlops.log_metric("loss", value, step=step)
        mlops.log_text("hi", "notes.txt")
        mlops.set_tag("team", "ml")
    return run.run_id


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_experiments_and_runs_list(seeded: str) -> None:
    assert "cli-exp" in invoke("experiments", "list")
    assert [e["name"] for e in json.loads(invoke("experiments", "list", "--json"))] == ["cli-exp"]
    assert seeded in invoke("runs", "list")
    runs = json.loads(invoke("runs", "list", "--experiment", "cli-exp", "--json"))
    assert [r["info"]["run_id"] for r in runs] == [seeded]
    assert runs[0]["data"]["metrics"] == {"loss": 2.0}
    result = runner.invoke(app, ["runs", "list", "--experiment", "nope"])
    assert result.exit_code == 1 and "No experiment named 'nope'" in result.output


def test_runs_show(seeded: str) -> None:
    text = invoke("runs", "show", seeded)
    for expected in ("cli-run", "cli-exp", "FINISHED", "lr", "loss", "notes.txt", "team"):
        assert expected in text
    shown = json.loads(invoke("runs", "show", seeded, "--json"))
    (loss,) = shown["metrics"]
    assert (loss["last"], loss["min"], loss["max"], loss["count"]) == (2.0, 1.0, 3.0, 3)
    assert shown["artifacts"][0]["path"] == "notes.txt"
    assert shown["artifacts"][0]["file_size"] == 2
    missing = runner.invoke(app, ["runs", "show", "0" * 32])
    assert missing.exit_code == 1 and "No run with id" in missing.output


def test_runs_history(seeded: str) -> None:
    history = json.loads(invoke("runs", "history", seeded, "loss", "--json"))
    assert [(m["step"], m["value"]) for m in history] == [(0, 3.0), (1, 1.0), (2, 2.0)]
    assert "loss" in invoke("runs", "history", seeded, "loss")


def test_db_upgrade(mlops_home: Path) -> None:
    from prefect_mlops.core.migrate import HEAD_REVISION

    assert f"is at revision {HEAD_REVISION}" in invoke("db", "upgrade")


def test_runs_reconcile_with_nothing_to_do(prefect_server: str, seeded: str) -> None:
    assert "agree with Prefect" in invoke("runs", "reconcile")
    assert json.loads(invoke("runs", "reconcile", "--json")) == []


def test_demo_runs_a_tracked_flow(prefect_server: str, mlops_home: Path) -> None:
    text = invoke("demo", "--epochs", "3")
    assert "mlops-demo" in text and "val/acc" in text and "model/weights.npz" in text
    (run,) = mlops.get_client().search_runs()
    assert run.info.status.value == "FINISHED"
    assert len(mlops.get_metric_history(run.info.run_id, "val/acc")) == 3
    assert run.data.params["epochs"] == "3"
