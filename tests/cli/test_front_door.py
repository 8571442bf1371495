"""The CLI as a newcomer meets it: 80-column terminals, ids that can be copied, and mistakes
that are named instead of passing silently."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import prefect_mlops as mlops
from prefect_mlops.cli.main import app

runner = CliRunner()


def run_cli(*args: str, columns: int = 80) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": str(columns)})
    return result.exit_code, result.output


@pytest.fixture
def twins(mlops_home: Path) -> list[str]:
    """Two runs made together: time-ordered ids that share a long prefix."""
    client = mlops.TrackingClient()
    exp = client.create_experiment("a-rather-long-experiment-name")
    return client.create_runs_bulk(
        exp,
        [
            mlops.BulkRun(
                f"run-{i}",
                params={"lr": str(0.1 * (i + 1))},
                metrics={"train/loss": 0.5 - i / 10, "val/acc": 0.7 + i / 10},
            )
            for i in range(2)
        ],
    )


def test_runs_list_at_80_columns_keeps_whole_ids(twins: list[str]) -> None:
    code, text = run_cli("runs", "list")
    assert code == 0
    for run_id in twins:
        assert run_id in text  # never cut, so it can be copied
    assert "stat…" not in text and "status" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "left out to fit 80 columns" in text and "--wide" in text
    code, wide = run_cli("runs", "list", "--wide")
    assert code == 0 and "metrics" in wide and "a-rather-long-experiment-name" in wide
    assert "val/acc=0.8" in wide.replace("\n", "")


def test_ids_and_latest_make_commands_pasteable(twins: list[str]) -> None:
    code, text = run_cli("runs", "list", "--ids")
    assert code == 0 and set(text.split()) == set(twins)
    newest = mlops.search_runs(max_results=1)[0].info.run_id
    code, shown = run_cli("runs", "show", "latest", "--json")
    assert code == 0 and json.loads(shown)["info"]["run_id"] == newest


def test_compare_heads_columns_with_names_and_distinct_id_ends(twins: list[str]) -> None:
    assert twins[0][:8] == twins[1][:8]  # the prefixes collide: time-ordered ids
    code, text = run_cli("runs", "compare", *twins, columns=120)
    assert code == 0
    assert "run-0" in text and "run-1" in text
    ends = next(line for line in text.splitlines() if "…" in line)
    shown = [part.strip("│ ┃") for part in ends.split("…")[1:]]
    assert len(shown) == 2 and shown[0] != shown[1]
    assert twins[0].endswith(shown[0].split()[0]) and twins[1].endswith(shown[1].split()[0])


def test_history_of_a_misspelt_metric_names_the_ones_the_run_has(twins: list[str]) -> None:
    code, text = run_cli("runs", "history", twins[0], "val/accc", columns=200)
    assert code == 1
    assert "has no metric 'val/accc'" in text and "train/loss, val/acc" in text


def test_an_unknown_experiment_is_an_error_in_search_as_in_list(twins: list[str]) -> None:
    for args in (("runs", "search", "-e", "no-such-exp"), ("runs", "list", "-e", "no-such-exp")):
        code, text = run_cli(*args, columns=200)
        assert code == 1 and "No experiment named 'no-such-exp'" in text
        assert "a-rather-long-experiment-name" in text  # what exists instead
    code, _ = run_cli("runs", "search", "-e", "no-such-exp", "--count")
    assert code == 1


def test_watchdog_needs_a_persistent_prefect_server(mlops_home: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_MLOPS_HOME=str(mlops_home))
    done = subprocess.run(
        [sys.executable, "-m", "prefect_mlops.cli.main", "setup", "--watchdog"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Watchdog not created" in done.stderr and "PREFECT_API_URL" in done.stderr
    assert "automation" not in done.stdout.lower()


DEMO_ARGS = ("--epochs", "2", "--lr", "0.01", "--batch-size", "32")


def test_demo_takes_a_sweep_and_links_its_own_flow_run(
    prefect_server: str, mlops_home: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "prefect_mlops.cli.main", "demo", *DEMO_ARGS],
        env={**os.environ, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = done.stdout
    (run,) = mlops.search_runs()
    assert (run.data.params["lr"], run.data.params["batch_size"]) == ("0.01", "32")
    url = run.data.tags["prefect.url"]
    assert url.startswith(prefect_server.removesuffix("/api"))
    lines = text.splitlines()
    assert any(line.endswith(url) for line in lines)  # the link, unbroken
    assert any(line.endswith(f"runs show {run.info.run_id}") for line in lines)
