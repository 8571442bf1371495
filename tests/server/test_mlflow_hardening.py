"""Requests that once escaped the artifact root, half-stored a batch or gave a 5xx."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

API = "/api/2.0/mlflow"


@pytest.fixture
def api(tracking_server: str) -> httpx.Client:
    with httpx.Client(base_url=tracking_server, timeout=30) as client:
        yield client


def _run(api: httpx.Client, name: str) -> str:
    experiment = api.post(f"{API}/experiments/create", json={"name": name}).json()
    created = api.post(f"{API}/runs/create", json={"experiment_id": experiment["experiment_id"]})
    return str(created.json()["run"]["info"]["run_id"])


@pytest.mark.parametrize(
    "location", ["mlflow-artifacts:/../../escape", "/etc", "file:///tmp/elsewhere", "foo"]
)
def test_an_artifact_location_outside_the_root_is_refused(
    api: httpx.Client, location: str, tmp_path: Path
) -> None:
    answer = api.post(
        f"{API}/experiments/create", json={"name": "escape", "artifact_location": location}
    )
    assert answer.status_code == 400
    assert "outside this server's artifact root" in answer.json()["message"] or (
        "'..'" in answer.json()["message"]
    )
    assert api.get(f"{API}/experiments/get-by-name?experiment_name=escape").status_code == 404
    native = api.post(
        "/api/mlops/v1/experiments",
        json={"name": "escape2", "artifact_root": location, "tags": {}},
        headers={"Idempotency-Key": "k-" + location.replace("/", "_")},
    )
    assert native.status_code == 400


def test_a_location_under_the_root_is_kept(api: httpx.Client) -> None:
    answer = api.post(
        f"{API}/experiments/create",
        json={"name": "inside", "artifact_location": "mlflow-artifacts:/team/inside"},
    )
    assert answer.status_code == 200
    got = api.get(f"{API}/experiments/get?experiment_id={answer.json()['experiment_id']}")
    assert got.json()["experiment"]["artifact_location"].startswith(
        "mlflow-artifacts:/team/inside/"
    )


def test_a_refused_batch_stores_nothing(api: httpx.Client) -> None:
    run_id = _run(api, "atomic")
    first = {"run_id": run_id, "params": [{"key": "lr", "value": "0.1"}]}
    assert api.post(f"{API}/runs/log-batch", json=first).status_code == 200
    batch = {
        "run_id": run_id,
        "params": [{"key": "lr", "value": "0.2"}, {"key": "new", "value": "1"}],  # lr changes
        "tags": [{"key": "t1", "value": "x"}],
        "metrics": [{"key": "m", "value": 1.0, "timestamp": 1, "step": 0}],
    }
    refused = api.post(f"{API}/runs/log-batch", json=batch)
    assert refused.status_code == 400 and "immutable" in refused.json()["message"]
    data = api.get(f"{API}/runs/get?run_id={run_id}").json()["run"]["data"]
    assert data["params"] == [{"key": "lr", "value": "0.1"}]  # nothing of the batch
    assert "metrics" not in data
    assert [t["key"] for t in data["tags"]] == ["mlflow.runName"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("experiments/create", {"name": "e1", "tags": [{"value": "x"}]}),
        ("runs/log-metric", {"key": "m", "value": 1.0, "timestamp": 1, "step": "²"}),
        ("runs/log-metric", {"key": "m", "value": 1.0, "timestamp": 1, "step": "--5"}),
        ("runs/log-metric", {"key": "m", "value": 1.0, "timestamp": 1, "step": 2**70}),
        ("runs/log-metric", {"key": "m", "value": 1.0, "timestamp": 10**25, "step": 1}),
    ],
)
def test_client_mistakes_are_400s_not_500s(api: httpx.Client, path: str, body: dict) -> None:
    if path.startswith("runs/"):
        body = {**body, "run_id": _run(api, f"mistake-{len(str(body))}")}
    answer = api.post(f"{API}/{path}", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_a_hand_set_model_history_tag_does_not_break_log_model(api: httpx.Client) -> None:
    run_id = _run(api, "history-tag")
    tag = {"run_id": run_id, "key": "mlflow.log-model.history", "value": "not json"}
    assert api.post(f"{API}/runs/set-tag", json=tag).status_code == 200
    model = {"run_id": run_id, "model_json": '{"artifact_path": "model", "flavors": {}}'}
    assert api.post(f"{API}/runs/log-model", json=model).status_code == 200


def test_enums_given_as_numbers_mean_what_protobuf_numbers_mean(api: httpx.Client) -> None:
    run_id = _run(api, "enums")
    experiment_id = api.get(f"{API}/runs/get?run_id={run_id}").json()["run"]["info"][
        "experiment_id"
    ]
    found = api.post(
        f"{API}/runs/search", json={"experiment_ids": [experiment_id], "run_view_type": 1}
    )
    assert [r["info"]["run_id"] for r in found.json()["runs"]] == [run_id]  # 1 = ACTIVE_ONLY
    updated = api.post(f"{API}/runs/update", json={"run_id": run_id, "status": 5})
    assert updated.json()["run_info"]["status"] == "KILLED"  # 5 = KILLED


def test_experiments_search_answers_get_too_and_a_wrong_method_gets_mlflows_body(
    api: httpx.Client,
) -> None:
    api.post(f"{API}/experiments/create", json={"name": "listed"})
    found = api.get(f"{API}/experiments/search?max_results=10")
    assert found.status_code == 200
    assert "listed" in [e["name"] for e in found.json()["experiments"]]
    wrong = api.delete(f"{API}/experiments/search")
    assert wrong.status_code == 405 and "is not allowed" in wrong.json()["message"]


def test_the_staging_folder_is_not_reachable_through_the_proxy(api: httpx.Client) -> None:
    proxy = "/api/2.0/mlflow-artifacts/artifacts"
    assert api.put(f"{proxy}/.mpu/x", content=b"x").status_code == 400
    assert api.get(f"{proxy}/.mpu/x").status_code == 400
    assert api.get(f"{proxy}?path=.mpu").status_code == 400


NATIVE = "/api/mlops/v1"


def _native(api: httpx.Client, method: str, path: str, body: dict, key: str) -> httpx.Response:
    return api.request(method, f"{NATIVE}{path}", json=body, headers={"Idempotency-Key": key})


def test_native_runs_cannot_point_outside_the_artifact_root(
    api: httpx.Client, tmp_path: Path
) -> None:
    run_id = _run(api, "native-escape")
    info = api.get(f"{API}/runs/get?run_id={run_id}").json()["run"]["info"]
    body = {"experiment_id": info["experiment_id"], "run_name": "x", "artifact_location": "/etc"}
    assert _native(api, "POST", "/runs", body, "k1").status_code == 400
    body = {**body, "artifact_location": None, "run_id": "../../" + "a" * 26}
    assert _native(api, "POST", "/runs", body, "k2").status_code == 400


def test_native_artifact_routes_refuse_symlinks_out_of_the_root(
    api: httpx.Client, tmp_path: Path
) -> None:
    run_id = _run(api, "native-links")
    ours = __import__("prefect_mlops").TrackingClient(
        database_url=f"sqlite:///{tmp_path / 'server-home' / 'mlops.db'}",
        artifact_storage=str(tmp_path / "server-home" / "artifacts"),
    )
    folder = Path(ours.get_run(run_id).info.artifact_uri)
    folder.mkdir(parents=True, exist_ok=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP SECRET")
    (folder / "link").symlink_to(outside)
    record = {"path": "link/secret.txt", "size": 10, "sha256": "0" * 64}
    assert _native(api, "POST", f"/runs/{run_id}/artifact-records", record, "k3").status_code in (
        200,
        403,
    )
    read = api.get(f"{NATIVE}/artifacts/{run_id}/link/secret.txt")
    assert read.status_code == 403 and b"TOP SECRET" not in read.content
    write = api.put(f"{NATIVE}/artifacts/{run_id}/link/new.txt", content=b"x")
    assert write.status_code == 403
    assert not (outside / "new.txt").exists()


def test_a_run_deleted_by_another_process_is_refused_by_the_server(
    api: httpx.Client, tmp_path: Path
) -> None:
    run_id = _run(api, "deleted-elsewhere")
    point = {"run_id": run_id, "key": "m", "value": 1.0, "timestamp": 1, "step": 0}
    assert api.post(f"{API}/runs/log-metric", json=point).status_code == 200
    elsewhere = __import__("prefect_mlops").TrackingClient(
        database_url=f"sqlite:///{tmp_path / 'server-home' / 'mlops.db'}",
        artifact_storage=str(tmp_path / "server-home" / "artifacts"),
    )
    elsewhere.delete_run(run_id)  # another worker, another host: same database
    refused = api.post(f"{API}/runs/log-metric", json={**point, "step": 1})
    assert refused.status_code == 400 and "deleted" in refused.json()["message"]


def test_native_metrics_for_a_run_that_does_not_exist_are_refused(api: httpx.Client) -> None:
    rows = {"rows": [["0" * 32, "m", 1.0, 1, 0]]}
    answer = _native(api, "POST", "/metrics", rows, "k-missing")
    assert answer.status_code == 404


def test_old_idempotency_keys_are_pruned(tmp_path: Path) -> None:
    from prefect_mlops.tracking.store import SqlTrackingStore

    store = SqlTrackingStore(f"sqlite:///{tmp_path / 'keys.db'}")
    applied, _ = store.apply_once("key-1", lambda: store.create_experiment("keys", str(tmp_path)))
    assert applied
    assert store.prune_request_keys(older_than_ms=10**12) == 0  # recent: kept
    assert store.prune_request_keys(older_than_ms=-1) == 1  # past any age: forgotten
