"""Client mistakes against MLflow's REST API: each is a 4xx with MLflow's error body that
names the problem, and no artifact route reads or writes outside the artifact root."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import start_tracking_server, stop_tracking_server

API = "/api/2.0/mlflow"
ART = "/api/2.0/mlflow-artifacts/artifacts"


@pytest.fixture
def http(tracking_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tracking_server, timeout=30) as client:
        yield client


def _run_id(http: httpx.Client) -> str:
    run = http.post(f"{API}/runs/create", json={"experiment_id": "0"}).json()["run"]
    return str(run["info"]["run_id"])


def _refused(response: httpx.Response, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code
    for word in words:
        assert word in body["message"]


def test_malformed_json_is_a_400(http: httpx.Client) -> None:
    response = http.post(
        f"{API}/runs/create", content=b"{not json", headers={"content-type": "application/json"}
    )
    _refused(response, 400, "BAD_REQUEST", "Malformed JSON")


def test_a_body_that_is_not_an_object_is_a_400(http: httpx.Client) -> None:
    _refused(http.post(f"{API}/runs/create", json=[1, 2]), 400, "INVALID_PARAMETER_VALUE")


def test_wrong_types_are_400s_naming_the_field(http: httpx.Client) -> None:
    run_id = _run_id(http)
    response = http.post(
        f"{API}/runs/log-metric",
        json={"run_id": run_id, "key": "x", "value": "high", "timestamp": 1},
    )
    _refused(response, 400, "INVALID_PARAMETER_VALUE", "value", "number")
    response = http.post(f"{API}/runs/create", json={"experiment_id": "0", "start_time": "soon"})
    _refused(response, 400, "INVALID_PARAMETER_VALUE", "start_time", "integer")
    response = http.post(f"{API}/runs/log-batch", json={"run_id": run_id, "metrics": {"a": 1}})
    _refused(response, 400, "INVALID_PARAMETER_VALUE", "metrics", "list")
    response = http.post(f"{API}/runs/update", json={"run_id": run_id, "status": "DONE"})
    _refused(response, 400, "INVALID_PARAMETER_VALUE", "status")
    response = http.get(f"{API}/metrics/get-history", params={"run_id": run_id, "max_results": "x"})
    _refused(response, 400, "INVALID_PARAMETER_VALUE", "max_results")


def test_unknown_fields_are_400s_naming_the_field(http: httpx.Client) -> None:
    response = http.post(f"{API}/experiments/create", json={"name": "e", "colour": "red"})
    _refused(response, 400, "INVALID_PARAMETER_VALUE", "colour")
    run_id = _run_id(http)
    response = http.post(
        f"{API}/runs/log-batch",
        json={"run_id": run_id, "params": [{"key": "a", "value": "1", "unit": "m"}]},
    )
    _refused(response, 400, "INVALID_PARAMETER_VALUE", "'unit' in params[0]")
    response = http.get(f"{API}/runs/get", params={"run_id": run_id, "verbose": "1"})
    _refused(response, 400, "INVALID_PARAMETER_VALUE", "verbose")


def test_missing_required_fields_are_400s(http: httpx.Client) -> None:
    response = http.post(f"{API}/experiments/create", json={})
    _refused(response, 400, "INVALID_PARAMETER_VALUE", "name")
    _refused(http.get(f"{API}/runs/get"), 400, "INVALID_PARAMETER_VALUE", "run_id")


def test_ids_that_do_not_exist_are_404s(http: httpx.Client) -> None:
    missing = "f" * 32
    _refused(
        http.get(f"{API}/runs/get", params={"run_id": missing}), 404, "RESOURCE_DOES_NOT_EXIST"
    )
    _refused(
        http.get(f"{API}/experiments/get", params={"experiment_id": missing}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    _refused(
        http.get(f"{API}/experiments/get-by-name", params={"experiment_name": "nope"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    _refused(
        http.post(f"{API}/runs/log-parameter", json={"run_id": missing, "key": "a", "value": "1"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    _refused(http.get(f"{API}/logged-models/m-{missing}"), 404, "RESOURCE_DOES_NOT_EXIST")
    _refused(http.get(f"{ART}/nothing/here.txt"), 404, "RESOURCE_DOES_NOT_EXIST")


def test_a_taken_experiment_name_and_a_relogged_param_are_400s(http: httpx.Client) -> None:
    assert http.post(f"{API}/experiments/create", json={"name": "dup"}).status_code == 200
    _refused(
        http.post(f"{API}/experiments/create", json={"name": "dup"}),
        400,
        "RESOURCE_ALREADY_EXISTS",
    )
    run_id = _run_id(http)
    body = {"run_id": run_id, "key": "lr", "value": "1"}
    assert http.post(f"{API}/runs/log-parameter", json=body).status_code == 200
    response = http.post(f"{API}/runs/log-parameter", json={**body, "value": "2"})
    _refused(response, 400, "INVALID_PARAMETER_VALUE", "lr")


def _raw(base_url: str, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, str]]:
    """A request whose path goes out exactly as written (httpx would remove dot segments)."""
    parsed = urlsplit(base_url)
    conn = HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    try:
        conn.request(method, path, body=body or None)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


@pytest.mark.parametrize(
    "path",
    [
        "../outside.txt",
        "a/../../outside.txt",
        "%2e%2e/outside.txt",
        "a/%2E%2E/%2e%2e/outside.txt",
        "%252e%252e/outside.txt",
        "a\\..\\..\\outside.txt",
        "%5c..%5coutside.txt",
    ],
)
def test_path_traversal_in_artifact_routes_is_refused(
    tracking_server: str, tmp_path: Path, path: str
) -> None:
    for method in ("PUT", "GET", "DELETE"):
        status, body = _raw(tracking_server, method, f"{ART}/{path}", b"evil")
        assert status == 400, (method, path, body)
        assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    status, body = _raw(tracking_server, "GET", f"{ART}?path={path}")
    assert status == 400, (path, body)
    assert not (tmp_path / "outside.txt").exists()
    assert not (tmp_path / "server-home" / "outside.txt").exists()


def test_absolute_paths_are_refused(http: httpx.Client, tmp_path: Path) -> None:
    target = tmp_path / "abs.txt"
    status, body = _raw(str(http.base_url).rstrip("/"), "PUT", f"{ART}/{target}", b"x")
    assert status == 400, body
    assert not target.exists()
    _refused(http.get(ART, params={"path": str(tmp_path)}), 400, "INVALID_PARAMETER_VALUE")


def test_a_symlink_out_of_the_artifact_root_is_refused(http: httpx.Client, tmp_path: Path) -> None:
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    (secret_dir / "key.txt").write_text("s3cret")
    root = tmp_path / "server-home" / "artifacts"
    root.mkdir(parents=True, exist_ok=True)
    os.symlink(secret_dir, root / "link")
    _refused(http.get(f"{ART}/link/key.txt"), 403, "PERMISSION_DENIED")
    _refused(http.put(f"{ART}/link/new.txt", content=b"x"), 403, "PERMISSION_DENIED")
    _refused(http.get(ART, params={"path": "link"}), 403, "PERMISSION_DENIED")
    _refused(http.delete(f"{ART}/link/key.txt"), 403, "PERMISSION_DENIED")
    assert sorted(p.name for p in secret_dir.iterdir()) == ["key.txt"]
    assert (secret_dir / "key.txt").read_text() == "s3cret"


def test_proxy_round_trip_lists_downloads_and_deletes(http: httpx.Client) -> None:
    assert http.put(f"{ART}/x/y/file.bin", content=b"0123" * 1000).status_code == 200
    listing = http.get(ART, params={"path": "x/y"}).json()
    assert listing == {"files": [{"path": "file.bin", "is_dir": False, "file_size": 4000}]}
    assert http.get(f"{ART}/x/y/file.bin").content == b"0123" * 1000
    assert http.delete(f"{ART}/x/y/file.bin").status_code == 200
    assert http.get(ART, params={"path": "x/y"}).json() == {}


def test_a_body_over_the_limit_is_a_413_naming_it(tmp_path: Path) -> None:
    home = tmp_path / "limited"
    home.mkdir()
    proc, url = start_tracking_server(home, {"PREFECT_MLOPS_SERVER_MAX_REQUEST_MB": "1"})
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            run_id = _run_id(http)
            tags = [{"key": f"k{i}", "value": "v" * 8000} for i in range(100)]
            tags += [{"key": f"j{i}", "value": "v" * 8000} for i in range(100)]
            response = http.post(f"{API}/runs/log-batch", json={"run_id": run_id, "tags": tags})
            _refused(response, 413, "REQUEST_LIMIT_EXCEEDED", "1,048,576 bytes")
            # artifact uploads are streamed and not bound by the limit
            big = b"x" * (2 * 1024 * 1024)
            assert http.put(f"{ART}/big.bin", content=big).status_code == 200
            assert len(http.get(f"{ART}/big.bin").content) == len(big)
    finally:
        stop_tracking_server(proc)
