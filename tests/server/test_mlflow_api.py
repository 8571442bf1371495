"""MLflow's REST API answered as its protos define: paged metric history, the UI's sampled
history over a step interval, and the ajax and 3.0 prefixes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

API = "/api/2.0/mlflow"


@pytest.fixture
def http(tracking_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tracking_server, timeout=30) as client:
        yield client


def _run_with_history(http: httpx.Client, points: int) -> str:
    run = http.post(f"{API}/runs/create", json={"experiment_id": "0"}).json()["run"]
    run_id = str(run["info"]["run_id"])
    metrics = [
        {"key": "loss", "value": s / 10, "timestamp": 1000 + s, "step": s} for s in range(points)
    ]
    assert (
        http.post(f"{API}/runs/log-batch", json={"run_id": run_id, "metrics": metrics}).status_code
        == 200
    )
    return run_id


def test_metric_history_whole_and_in_pages(http: httpx.Client) -> None:
    run_id = _run_with_history(http, 25)
    whole = http.get(f"{API}/metrics/get-history", params={"run_id": run_id, "metric_key": "loss"})
    assert [m["step"] for m in whole.json()["metrics"]] == list(range(25))
    assert "next_page_token" not in whole.json()
    steps: list[int] = []
    token = None
    while True:
        params = {"run_id": run_id, "metric_key": "loss", "max_results": 10}
        page = http.get(
            f"{API}/metrics/get-history",
            params={**params, **({"page_token": token} if token else {})},
        ).json()
        steps += [m["step"] for m in page["metrics"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert steps == list(range(25))


def test_bulk_interval_samples_steps_evenly_per_run(http: httpx.Client) -> None:
    a, b = _run_with_history(http, 100), _run_with_history(http, 3)
    answer = http.get(
        "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
        params={"run_ids": [a, b], "metric_key": "loss", "max_results": 5},
    ).json()["metrics"]
    a_steps = [m["step"] for m in answer if m["run_id"] == a]
    assert len(a_steps) == 5 and a_steps[0] == 0 and a_steps[-1] == 99
    assert [m["step"] for m in answer if m["run_id"] == b] == [0, 1, 2]
    ranged = http.get(
        f"{API}/metrics/get-history-bulk-interval",
        params={"run_ids": [a], "metric_key": "loss", "start_step": 10, "end_step": 12},
    ).json()["metrics"]
    assert [m["step"] for m in ranged] == [10, 11, 12]


def test_run_answer_spells_mlflow_fields_and_the_3_0_prefix_works(http: httpx.Client) -> None:
    run_id = _run_with_history(http, 2)
    run = http.get("/api/3.0/mlflow/runs/get", params={"run_id": run_id}).json()["run"]
    assert set(run["info"]) == {
        "run_id",
        "run_uuid",
        "run_name",
        "experiment_id",
        "user_id",
        "status",
        "start_time",
        "artifact_uri",
        "lifecycle_stage",
    } - ({"user_id"} if not run["info"].get("user_id") else set())
    assert run["info"]["experiment_id"] == "0"
    assert run["data"]["metrics"] == [{"key": "loss", "value": 0.1, "timestamp": 1001, "step": 1}]
