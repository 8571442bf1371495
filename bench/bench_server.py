"""Tracking-server benchmark: `prefect-mlops server start` against `mlflow server`.

    .venv/bin/python bench/bench_server.py [--quick]

Both servers run on this machine in the same benchmark run, one at a time, each on SQLite with
a local artifact folder and one worker process, seeded with the same data before they start
(10,000 runs with params, tags and metrics, and one run with a 100,000-point metric). Every
figure comes through HTTP on loopback: raw keep-alive requests for latency, the stock
`MlflowClient` for the client-side figures. Figures are medians. Writes bench/results/server.md
and server.json (``--quick``: server-quick.md/.json, smaller sizes).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_search

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = {
    "full": dict(runs=10_000, history=100_000, requests=1000, mlflow_requests=200,
                 client_calls=300, mlflow_client_calls=100, writers=16, batches=20, reads=5,
                 upload_mb=256),
    "quick": dict(runs=1_000, history=10_000, requests=100, mlflow_requests=30,
                  client_calls=50, mlflow_client_calls=20, writers=4, batches=3, reads=3,
                  upload_mb=32),
}  # fmt: skip
HISTORY_KEY = "loss"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- seeding (straight into each server's database, before it starts) -------------------------


def seed_ours(home: Path, runs: int, points: int) -> tuple[str, str]:
    """Our SQLite database with the search runs and a history run; (experiment id, run id)."""
    os.environ["PREFECT_MLOPS_HOME"] = str(home)
    from prefect_mlops import BulkRun, TrackingClient

    client = TrackingClient()
    experiment_id = client.create_experiment("search-bench")
    for start in range(0, runs, 2000):
        specs = bench_search.make_runs(start, min(runs, start + 2000))
        client.create_runs_bulk(experiment_id, [BulkRun(**s) for s in specs])
    run = client.create_run(client.create_experiment("history-bench"), run_name="history")
    for step in range(points):
        client.log_metric(run.info.run_id, HISTORY_KEY, 1.0 / (step + 1), step=step)
    client.flush()
    return experiment_id, run.info.run_id


def seed_mlflow(home: Path, runs: int, points: int) -> tuple[str, str]:
    """MLflow's SQLite database with the same runs (through its ORM tables, as the search
    benchmark does: its API would take half an hour) and a history run."""
    from mlflow import MlflowClient
    from mlflow.store.tracking.dbmodels import models as m

    uri = f"sqlite:///{home}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    root = f"{home}/artifacts"
    experiment_id = client.create_experiment("search-bench", artifact_location=root)
    store = client._tracking_client.store
    for start in range(0, runs, 2000):
        specs = bench_search.make_runs(start, min(runs, start + 2000))
        rows = bench_search._mlflow_rows(specs, int(experiment_id), root, "bench")
        with store.engine.begin() as conn:
            conn.execute(m.SqlRun.__table__.insert(), rows["runs"])
            conn.execute(m.SqlParam.__table__.insert(), rows["params"])
            conn.execute(m.SqlTag.__table__.insert(), rows["tags"])
            conn.execute(m.SqlMetric.__table__.insert(), rows["metrics"])
            conn.execute(m.SqlLatestMetric.__table__.insert(), rows["latest"])
    history = client.create_run(client.create_experiment("history-bench"))
    run_id = history.info.run_id
    now = int(time.time() * 1000)
    metric_rows = [
        {"key": HISTORY_KEY, "value": 1.0 / (s + 1), "timestamp": now, "step": s,
         "is_nan": False, "run_uuid": run_id}
        for s in range(points)
    ]  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(m.SqlMetric.__table__.insert(), metric_rows)
        conn.execute(m.SqlLatestMetric.__table__.insert(), [metric_rows[-1]])
    store.engine.dispose()
    return experiment_id, run_id


# -- the servers ---------------------------------------------------------------------------------


def start_server(kind: str, home: Path) -> tuple[subprocess.Popen[bytes], str, float]:
    """Start one server; (process, URL, seconds from launch to the first answered request)."""
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_MLOPS_HOME": str(home),
        "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false",
    }
    if kind == "ours":
        cmd = [
            sys.executable,
            "-m",
            "prefect_mlops.cli.main",
            "server",
            "start",
            "--port",
            str(port),
        ]
    else:
        cmd = [
            sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--backend-store-uri", f"sqlite:///{home}/mlflow.db",
            "--artifacts-destination", f"{home}/artifacts",
        ]  # fmt: skip
    log = open(home / f"{kind}-server.log", "wb")  # noqa: SIM115
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.perf_counter() - started > 120:
            raise RuntimeError(
                f"{kind} server did not start: {(home / f'{kind}-server.log').read_text()[-2000:]}"
            )
        time.sleep(0.02)
    return proc, url, time.perf_counter() - started


def server_rss_mb(proc: subprocess.Popen[bytes]) -> float:
    import psutil

    root = psutil.Process(proc.pid)
    total = root.memory_info().rss
    for child in root.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total / 1024 / 1024


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- workloads, each through HTTP ------------------------------------------------------------------


def _post(conn: http.client.HTTPConnection, path: str, body: dict[str, Any]) -> dict[str, Any]:
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"{path}: {resp.status} {data[:300]!r}")
    return json.loads(data) if data else {}


def _new_run(url: str, experiment_name: str) -> tuple[http.client.HTTPConnection, str]:
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=60)
    exp = _post(conn, "/api/2.0/mlflow/experiments/create", {"name": experiment_name})
    run = _post(
        conn,
        "/api/2.0/mlflow/runs/create",
        {"experiment_id": exp["experiment_id"], "start_time": int(time.time() * 1000)},
    )
    return conn, run["run"]["info"]["run_id"]


def log_metric_latency(url: str, requests: int) -> dict[str, float]:
    """One keep-alive connection; the time of each log-metric request."""
    conn, run_id = _new_run(url, f"latency-{time.time_ns()}")
    times = []
    for step in range(requests):
        body = {"run_id": run_id, "key": "m", "value": step * 0.5, "timestamp": 1, "step": step}
        t0 = time.perf_counter()
        _post(conn, "/api/2.0/mlflow/runs/log-metric", body)
        times.append((time.perf_counter() - t0) * 1000)
    conn.close()
    return {"p50_ms": statistics.median(times), "p90_ms": statistics.quantiles(times, n=10)[-1]}


def stock_client_loop(url: str, calls: int) -> float:
    """`MlflowClient.log_metric` calls per second against ``url``."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url)
    exp = client.create_experiment(f"client-{time.time_ns()}")
    run_id = client.create_run(exp).info.run_id
    client.log_metric(run_id, "warm", 0.0)
    t0 = time.perf_counter()
    for step in range(calls):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    return calls / (time.perf_counter() - t0)


def concurrent_batches(url: str, writers: int, batches: int) -> float:
    """Metrics per second stored by ``writers`` threads, each with its own connection and run,
    each sending ``batches`` log-batch requests of 1,000 points."""
    ready = [_new_run(url, f"batch-{time.time_ns()}-{i}") for i in range(writers)]
    errors: list[BaseException] = []

    def write(conn: http.client.HTTPConnection, run_id: str) -> None:
        try:
            for b in range(batches):
                metrics = [
                    {"key": "m", "value": float(i), "timestamp": 1, "step": b * 1000 + i}
                    for i in range(1000)
                ]
                _post(
                    conn, "/api/2.0/mlflow/runs/log-batch", {"run_id": run_id, "metrics": metrics}
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=pair) for pair in ready]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return writers * batches * 1000 / elapsed


def upload_mb_s(url: str, work: Path, megabytes: int) -> float:
    """The stock client's `log_artifact` of one file through the server's artifacts proxy."""
    from mlflow import MlflowClient

    path = work / "upload.bin"
    if not path.exists():
        with open(path, "wb") as out:
            block = os.urandom(1024 * 1024)
            for _ in range(megabytes):
                out.write(block)
    client = MlflowClient(tracking_uri=url)
    run_id = client.create_run(client.create_experiment(f"upload-{time.time_ns()}")).info.run_id
    rates = []
    for i in range(2):
        t0 = time.perf_counter()
        client.log_artifact(run_id, str(path), f"copy-{i}")
        rates.append(megabytes / (time.perf_counter() - t0))
    return max(rates)


def history_ms(url: str, run_id: str, points: int, reads: int) -> tuple[float, float, float]:
    """(raw HTTP: request until the whole answer is received; the same with its JSON
    parsed; the stock client's `get_metric_history`, which also builds an MLflow `Metric` per
    point), median ms."""
    from mlflow import MlflowClient

    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=120)
    path = f"/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key={HISTORY_KEY}"
    raw, parsed = [], []
    for _ in range(reads):
        t0 = time.perf_counter()
        conn.request("GET", path)
        body = conn.getresponse().read()
        raw.append((time.perf_counter() - t0) * 1000)
        answer = json.loads(body)
        parsed.append((time.perf_counter() - t0) * 1000)
        assert len(answer["metrics"]) == points, len(answer["metrics"])
    conn.close()
    client = MlflowClient(tracking_uri=url)
    stock = []
    for _ in range(max(1, reads // 2)):
        t0 = time.perf_counter()
        history = client.get_metric_history(run_id, HISTORY_KEY)
        stock.append((time.perf_counter() - t0) * 1000)
        assert len(history) == points, len(history)
    return statistics.median(raw), statistics.median(parsed), statistics.median(stock)


def search_ms(url: str, experiment_id: str, reads: int) -> tuple[float, float, list[str]]:
    """(raw HTTP search request with JSON parsed, the stock client's `search_runs`) median ms,
    and the run names the stock client got."""
    from mlflow import MlflowClient

    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=120)
    body = {
        "experiment_ids": [experiment_id],
        "filter": bench_search.FILTER,
        "order_by": bench_search.ORDER,
        "max_results": bench_search.TOP,
    }
    raw = []
    for _ in range(reads * 2 + 1):
        t0 = time.perf_counter()
        answer = _post(conn, "/api/2.0/mlflow/runs/search", body)
        raw.append((time.perf_counter() - t0) * 1000)
        assert len(answer["runs"]) == bench_search.TOP
    conn.close()
    client = MlflowClient(tracking_uri=url)
    stock = []
    names: list[str] = []
    for _ in range(reads + 1):
        t0 = time.perf_counter()
        page = client.search_runs(
            [experiment_id],
            filter_string=bench_search.FILTER,
            order_by=bench_search.ORDER,
            max_results=bench_search.TOP,
        )
        stock.append((time.perf_counter() - t0) * 1000)
        names = [r.info.run_name for r in page]
    return statistics.median(raw[1:]), statistics.median(stock[1:]), names


def measure(kind: str, size: dict[str, int], work: Path) -> dict[str, Any]:
    home = work / kind
    home.mkdir()
    seed = seed_ours if kind == "ours" else seed_mlflow
    experiment_id, history_run = seed(home, size["runs"], size["history"])
    proc, url, start_s = start_server(kind, home)
    try:
        requests = size["requests" if kind == "ours" else "mlflow_requests"]
        calls = size["client_calls" if kind == "ours" else "mlflow_client_calls"]
        latency = log_metric_latency(url, requests)
        client_rate = stock_client_loop(url, calls)
        batch_rate = concurrent_batches(url, size["writers"], size["batches"])
        history, history_parsed, history_stock = history_ms(
            url, history_run, size["history"], size["reads"]
        )
        search, search_stock, names = search_ms(url, experiment_id, size["reads"])
        upload = upload_mb_s(url, work, size["upload_mb"])
        rss = server_rss_mb(proc)
    finally:
        stop_server(proc)
    return {
        "start_s": start_s, **latency, "client_calls_per_s": client_rate,
        "batch_metrics_per_s": batch_rate, "history_ms": history,
        "history_parsed_ms": history_parsed,
        "history_stock_ms": history_stock, "search_ms": search, "search_stock_ms": search_stock,
        "search_top": names, "upload_mb_s": upload, "rss_mb": rss,
    }  # fmt: skip


def table(ours: dict[str, Any], peer: dict[str, Any], size: dict[str, int]) -> list[list[str]]:
    def ratio(a: float, b: float) -> str:
        return f"{a / b:,.1f}x"

    writers = size["writers"]
    return [
        ["server start to first answer", f"{ours['start_s']:.2f} s", f"{peer['start_s']:.2f} s",
         ratio(peer["start_s"], ours["start_s"]), "≤ 2 s", _met(ours["start_s"] <= 2)],
        ["one log-metric request, keep-alive, p50", f"{ours['p50_ms']:.2f} ms",
         f"{peer['p50_ms']:.2f} ms", ratio(peer["p50_ms"], ours["p50_ms"]), "≤ 2 ms",
         _met(ours["p50_ms"] <= 2)],
        ["stock `MlflowClient.log_metric` loop", f"{ours['client_calls_per_s']:,.0f} calls/s",
         f"{peer['client_calls_per_s']:,.0f} calls/s",
         ratio(ours["client_calls_per_s"], peer["client_calls_per_s"]), "≥ 10x",
         _met(ours["client_calls_per_s"] >= 10 * peer["client_calls_per_s"])],
        [f"log-batch, {writers} concurrent clients",
         f"{ours['batch_metrics_per_s']:,.0f} metrics/s",
         f"{peer['batch_metrics_per_s']:,.0f} metrics/s",
         ratio(ours["batch_metrics_per_s"], peer["batch_metrics_per_s"]), "≥ 10x",
         _met(ours["batch_metrics_per_s"] >= 10 * peer["batch_metrics_per_s"])],
        [f"get-history, {size['history']:,} points, over HTTP", f"{ours['history_ms']:,.0f} ms",
         f"{peer['history_ms']:,.0f} ms", ratio(peer["history_ms"], ours["history_ms"]),
         "≤ 200 ms", _met(ours["history_ms"] <= 200)],
        ["the same, and its JSON parsed by the caller", f"{ours['history_parsed_ms']:,.0f} ms",
         f"{peer['history_parsed_ms']:,.0f} ms",
         ratio(peer["history_parsed_ms"], ours["history_parsed_ms"]), "", ""],
        ["the same through the stock client (its parsing included)",
         f"{ours['history_stock_ms']:,.0f} ms", f"{peer['history_stock_ms']:,.0f} ms",
         ratio(peer["history_stock_ms"], ours["history_stock_ms"]), "", ""],
        [f"search {size['runs']:,} runs, filter + order, top 100, over HTTP",
         f"{ours['search_ms']:.1f} ms", f"{peer['search_ms']:.1f} ms",
         ratio(peer["search_ms"], ours["search_ms"]), "≤ 30 ms", _met(ours["search_ms"] <= 30)],
        ["the same through the stock client (its parsing included)",
         f"{ours['search_stock_ms']:.1f} ms", f"{peer['search_stock_ms']:.1f} ms",
         ratio(peer["search_stock_ms"], ours["search_stock_ms"]), "", ""],
        [f"stock `log_artifact` of {size['upload_mb']} MB through the proxy",
         f"{ours['upload_mb_s']:,.0f} MB/s", f"{peer['upload_mb_s']:,.0f} MB/s",
         ratio(ours["upload_mb_s"], peer["upload_mb_s"]), "≥ MLflow",
         _met(ours["upload_mb_s"] >= peer["upload_mb_s"])],
        ["server RSS after the benchmark", f"{ours['rss_mb']:.0f} MB", f"{peer['rss_mb']:.0f} MB",
         "", "≤ 250 MB", _met(ours["rss_mb"] <= 250)],
    ]  # fmt: skip


def _met(ok: bool) -> str:
    return "yes" if ok else "no"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    size = SIZES[mode]
    work = Path(tempfile.mkdtemp(prefix="bench-server-"))
    t0 = time.perf_counter()
    try:
        ours = measure("ours", size, work)
        peer = measure("mlflow", size, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    same = ours["search_top"] == peer["search_top"]
    import mlflow

    rows = table(ours, peer, size)
    header = (
        "| Figure | prefect-mlops | mlflow server | ratio | target | met |\n" + "|---" * 6 + "|"
    )
    lines = [
        "# Tracking server benchmark: prefect-mlops against `mlflow server`",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')}, {mode} run ({time.perf_counter() - t0:.0f} s) on "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; mlflow {mlflow.__version__}. "
        "Both servers on SQLite with local artifacts, one worker each, seeded with the same "
        "data, measured one after the other over HTTP on loopback. Medians.",
        "",
        header,
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
        f"Both servers returned the same top {bench_search.TOP} runs for the search: {same}.",
        "Ratios are how many times faster prefect-mlops is (above 1: faster).",
    ]
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if mode == "full" else "-quick"
    (RESULTS / f"server{suffix}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"server{suffix}.json").write_text(
        json.dumps({"ours": ours, "mlflow": peer, "size": size}, indent=2)
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
