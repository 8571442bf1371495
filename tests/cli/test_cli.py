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
    filtered = invoke("experiments", "list", "--filter", "name LIKE 'x%'", "--json")
    assert json.loads(filtered) == []
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


@pytest.fixture
def many(mlops_home: Path) -> list[str]:
    client = mlops.TrackingClient()
    exp = client.create_experiment("grid")
    specs = [
        mlops.BulkRun(
            f"{opt}-{i}",
            params={"opt": opt, "lr": str(0.1 / (i + 1))},
            tags={"note": "augment" if i % 2 else "plain"},
            metrics={"acc": 0.5 + i / 10},
            start_time=1000 + i,
        )
        for i, opt in enumerate(["adam", "sgd", "adam", "sgd"])
    ]
    return client.create_runs_bulk(exp, specs)


def test_runs_search_and_count(many: list[str]) -> None:
    out = json.loads(
        invoke("runs", "search", "params.opt = 'adam'", "-o", "metrics.acc DESC", "--json")
    )
    assert [r["info"]["run_name"] for r in out["runs"]] == ["adam-2", "adam-0"]
    assert out["next_page_token"] is None
    paged = json.loads(invoke("runs", "search", "-n", "3", "--json"))
    assert len(paged["runs"]) == 3 and paged["next_page_token"]
    rest = json.loads(
        invoke("runs", "search", "-n", "3", "--page-token", paged["next_page_token"], "--json")
    )
    assert len(rest["runs"]) == 1
    assert json.loads(invoke("runs", "search", "-q", "augment", "--count", "--json")) == {
        "count": 2
    }
    assert "adam-2" in invoke("runs", "search", "metrics.acc > 0.6")
    bad = runner.invoke(app, ["runs", "search", "metrics.acc >"])
    assert bad.exit_code == 1 and "^" in bad.output and "expected a value" in bad.output


def test_runs_aggregate(many: list[str]) -> None:
    rows = json.loads(
        invoke("runs", "aggregate", "-g", "params.opt", "-m", "acc:mean,max", "--json")
    )
    assert [(r["params.opt"], r["runs"], round(r["acc.max"], 3)) for r in rows] == [
        ("adam", 2, 0.7),
        ("sgd", 2, 0.8),
    ]
    assert "acc.mean" in invoke("runs", "aggregate", "-g", "params.opt", "-m", "acc:mean")
    bad = runner.invoke(app, ["runs", "aggregate", "-m", "acc"])
    assert bad.exit_code == 1 and "'val/acc:mean,max'" in bad.output


def test_runs_compare(many: list[str]) -> None:
    out = json.loads(invoke("runs", "compare", many[0], many[1], "--json"))
    assert out["differing_params"] == ["lr", "opt"]
    assert out["params"]["opt"] == ["adam", "sgd"]
    assert "≠" in invoke("runs", "compare", many[0], many[1])


def test_saved_searches_cli(many: list[str]) -> None:
    assert "Saved search 'good'" in invoke(
        "searches", "save", "good", "metrics.acc >= 0.7", "-o", "metrics.acc DESC"
    )
    assert [s["name"] for s in json.loads(invoke("searches", "list", "--json"))] == ["good"]
    out = json.loads(invoke("runs", "search", "--saved", "good", "--json"))
    assert [r["info"]["run_name"] for r in out["runs"]] == ["sgd-3", "adam-2"]
    assert "Deleted" in invoke("searches", "delete", "good")
    assert runner.invoke(app, ["searches", "delete", "good"]).exit_code == 1


def test_setup_enables_auto_tracking(mlops_home: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_MLOPS_HOME": str(mlops_home),
    }
    env.pop("PREFECT_MLOPS_AUTO_TRACK", None)
    done = subprocess.run(
        [sys.executable, "-m", "prefect_mlops.cli.main", "setup"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "PREFECT_PLUGINS_ENABLED=true" in done.stdout
    assert (mlops_home / "prefect-mlops.toml").read_text() == "auto_track = true\n"
    profiles = (tmp_path / "prefect-home" / "profiles.toml").read_text()
    assert "PREFECT_PLUGINS_ENABLED" in profiles
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "from prefect_mlops.core.settings import Settings; print(Settings().auto_track)",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.stdout.strip() == "True"
