"""Tracking benchmark: prefect-mlops against MLflow (mlflow-skinny) on the same workloads.

    .venv/bin/python bench/bench_tracking.py [--quick]

Every measurement runs in its own spawned subprocess with a fresh temporary home, so settings,
caches, threads and memory of one workload never leak into another. MLflow is the peer, called
through its public API with a ``file:`` store and a ``sqlite:///`` store. Figures are medians.
Writes ``bench/results/tracking.md`` (the table) and ``bench/results/tracking.json`` (raw numbers).
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
MB = 1024 * 1024
BATCH = 1000  # log_metric calls per timed batch; MLflow log_batch size
SIZES = {
    "full": dict(calls=300_000, mlflow_calls=500, mlflow_batches=20, points=1_000_000,
                 history=100_000, reads=5, runs=500, flows=30, artifact_mb=1024),
    "quick": dict(calls=20_000, mlflow_calls=100, mlflow_batches=3, points=100_000,
                  history=10_000, reads=3, runs=100, flows=4, artifact_mb=64),
}  # fmt: skip
MLFLOW_SEED_BUDGET_S = 60.0
STORES = {"sqlite": "SQLite", "file": "file store"}


# -- helpers used inside the subprocesses ------------------------------------------------------


def _use_home(home: str) -> None:
    """Point prefect-mlops at ``home`` (before it is imported) and work inside it."""
    os.environ["PREFECT_MLOPS_HOME"] = home
    os.environ.pop("PREFECT_MLOPS_DATABASE_URL", None)
    os.environ.pop("PREFECT_MLOPS_ARTIFACT_STORAGE", None)
    os.chdir(home)


def _mlflow(uri: str, home: str):  # type: ignore[no-untyped-def]
    """The mlflow module, tracking to ``uri``; relative artifact roots land in ``home``."""
    import logging
    import warnings

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # the file store is in maintenance mode
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.chdir(home)
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow


def mlflow_uri(kind: str, home: str) -> str:
    return f"sqlite:///{home}/mlflow.db" if kind == "sqlite" else f"file://{home}/mlruns"


class PeakRss:
    """Samples this process's RSS every 10 ms; ``growth_mb`` is peak minus the value at entry."""

    def __enter__(self) -> PeakRss:
        import psutil

        self._proc = psutil.Process()
        gc.collect()
        self.base = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / MB


def _child(conn, fn, args) -> None:  # type: ignore[no-untyped-def]
    try:
        conn.send(("ok", fn(*args)))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def isolated(fn, *args):  # type: ignore[no-untyped-def]
    """``fn(*args)`` in a fresh spawned interpreter; returns its (picklable) result."""
    ctx = mp.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(sender, fn, args))
    proc.start()
    sender.close()
    try:
        status, value = receiver.recv()
    except EOFError:
        status, value = "error", f"subprocess died with exit code {proc.join() or proc.exitcode}"
    proc.join()
    if status != "ok":
        raise RuntimeError(f"{fn.__name__} failed:\n{value}")
    return value


# -- 1. log_metric latency ---------------------------------------------------------------------


def ours_log_metric(home: str, calls: int) -> dict:
    _use_home(home)
    import prefect_mlops as mlops

    with mlops.start_run():
        mlops.log_metric("warmup", 0.0)
        per_call_us = []
        for start in range(0, calls, BATCH):
            t0 = time.perf_counter_ns()
            for i in range(start, start + BATCH):
                mlops.log_metric("loss", i * 0.001, step=i)
            per_call_us.append((time.perf_counter_ns() - t0) / BATCH / 1000)
        mlops.flush()
    return {"median_us": statistics.median(per_call_us), "batches": len(per_call_us),
            "p90_us": statistics.quantiles(per_call_us, n=10)[-1]}  # fmt: skip


def mlflow_log_metric(home: str, kind: str, calls: int, batches: int) -> dict:
    mlflow = _mlflow(mlflow_uri(kind, home), home)
    from mlflow.entities import Metric

    client = mlflow.MlflowClient()
    with mlflow.start_run() as run:
        mlflow.log_metric("warmup", 0.0, synchronous=True)
        t0 = time.perf_counter()
        for i in range(calls):
            mlflow.log_metric("loss", i * 0.001, step=i, synchronous=True)
        metric_pps = calls / (time.perf_counter() - t0)
        now = int(time.time() * 1000)
        chunks = [[Metric("batch", i * 0.001, now, b * BATCH + i) for i in range(BATCH)]
                  for b in range(batches)]  # fmt: skip
        t0 = time.perf_counter()
        for chunk in chunks:
            client.log_batch(run.info.run_id, metrics=chunk)
        batch_pps = batches * BATCH / (time.perf_counter() - t0)
    return {"log_metric_pps": metric_pps, "log_batch_pps": batch_pps}


# -- 2. one million points, persisted ----------------------------------------------------------


def ours_million(home: str, points: int) -> dict:
    _use_home(home)
    import prefect_mlops as mlops

    with mlops.start_run() as run:
        for i in range(BATCH):  # warm up the writer, SQL compilation and the connection
            mlops.log_metric("warmup", 0.0, step=i)
        mlops.flush()
        with PeakRss() as rss:
            t0 = time.perf_counter()
            for i in range(points):
                mlops.log_metric("loss", i * 1e-6, step=i)
            mlops.flush()
            seconds = time.perf_counter() - t0
        counts = {s.key: s.count for s in mlops.get_client().get_metric_summaries(run.run_id)}
    assert counts["loss"] == points, counts
    return {"seconds": seconds, "rss_growth_mb": rss.growth_mb, "points_per_s": points / seconds}


# -- 3. get_metric_history ---------------------------------------------------------------------


def _time_reads(read, expected: int, reads: int) -> list[float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(reads):
        t0 = time.perf_counter()
        n = len(read())
        times.append((time.perf_counter() - t0) * 1000)
        assert n == expected, (n, expected)
    return times


def ours_history(home: str, points: int, reads: int) -> dict:
    _use_home(home)
    import prefect_mlops as mlops

    client = mlops.TrackingClient()
    run = client.create_run(client.create_experiment("bench"))
    rid = run.info.run_id
    now = int(time.time() * 1000)
    for start in range(0, points, BATCH):
        metrics = [mlops.Metric("loss", i * 1e-3, now, i) for i in range(start, start + BATCH)]
        client.log_batch(rid, metrics=metrics)
    times = _time_reads(lambda: client.get_metric_history(rid, "loss"), points, reads)
    return {"points": points, "median_ms": statistics.median(times), "all_ms": times}


def mlflow_history(home: str, points: int, reads: int) -> dict:
    mlflow = _mlflow(mlflow_uri("sqlite", home), home)
    from mlflow.entities import Metric

    client = mlflow.MlflowClient()
    rid = client.create_run(client.create_experiment("bench")).info.run_id
    now, seeded, t0 = int(time.time() * 1000), 0, time.perf_counter()
    while seeded < points and time.perf_counter() - t0 < MLFLOW_SEED_BUDGET_S:
        client.log_batch(rid, [Metric("loss", i * 1e-3, now, i) for i in range(seeded, seeded + BATCH)])
        seeded += BATCH
    seed_s = time.perf_counter() - t0
    times = _time_reads(lambda: client.get_metric_history(rid, "loss"), seeded, reads)
    return {"points": seeded, "seed_s": seed_s, "median_ms": statistics.median(times),
            "all_ms": times}  # fmt: skip


# -- 4. creating runs --------------------------------------------------------------------------


def ours_create_runs(home: str, runs: int) -> dict:
    _use_home(home)
    import prefect_mlops as mlops

    client = mlops.TrackingClient()
    exp = client.create_experiment("bench")
    client.create_run(exp)
    t0 = time.perf_counter()
    for _ in range(runs):
        client.create_run(exp)
    return {"runs_per_s": runs / (time.perf_counter() - t0)}


def mlflow_create_runs(home: str, kind: str, runs: int) -> dict:
    client = _mlflow(mlflow_uri(kind, home), home).MlflowClient()
    exp = client.create_experiment("bench")
    client.create_run(exp)
    t0 = time.perf_counter()
    for _ in range(runs):
        client.create_run(exp)
    return {"runs_per_s": runs / (time.perf_counter() - t0)}


# -- 5. a tracked Prefect flow -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_prefect_server(prefect_home: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": prefect_home, "PREFECT_API_URL": api}
    cmd = [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host",
           "127.0.0.1", "--port", str(port), "--no-ui", "--no-services", "--analytics-off"]  # fmt: skip
    log = open(Path(prefect_home) / "server.log", "wb")  # noqa: SIM115 - outlives this function
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
                if response.status == 200:
                    return proc, api
        except OSError:
            time.sleep(0.5)
    stop_prefect_server(proc)
    tail = (Path(prefect_home) / "server.log").read_text(errors="replace")[-3000:]
    raise RuntimeError(f"Prefect server did not become healthy:\n{tail}")


def stop_prefect_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its workers
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def ours_prefect_flow(home: str, prefect_home: str, api: str, runs: int) -> dict:
    _use_home(home)
    os.environ.update(PREFECT_HOME=prefect_home, PREFECT_API_URL=api, PREFECT_LOGGING_LEVEL="WARNING")
    from prefect import flow

    import prefect_mlops as mlops

    @flow(name="bench-tracked")
    def tracked() -> None:
        for i in range(10):
            mlops.log_metric(f"metric_{i}", i * 0.1)

    @flow(name="bench-untracked")
    def untracked() -> None:
        for i in range(10):
            _ = (f"metric_{i}", i * 0.1)

    def timed(fn) -> float:  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1000

    for _ in range(2):  # warm-up: imports, the experiment, Prefect's client and flow records
        timed(tracked), timed(untracked)
    on, off = [], []
    for n in range(runs):  # interleaved, alternating which goes first
        if n % 2:
            off.append(timed(untracked))
            on.append(timed(tracked))
        else:
            on.append(timed(tracked))
            off.append(timed(untracked))
    finished = mlops.search_runs(experiment_names=["bench-tracked"])
    assert len(finished) == runs + 2, len(finished)
    assert all(r.info.status.value == "FINISHED" and len(r.data.metrics) == 10 for r in finished)
    return {"tracked_ms": statistics.median(on), "untracked_ms": statistics.median(off),
            "added_ms": statistics.median(on) - statistics.median(off),
            "paired_added_ms": statistics.median(a - b for a, b in zip(on, off))}  # fmt: skip


# -- 6. a 1 GB artifact ------------------------------------------------------------------------


def ours_artifact(home: str, path: str) -> dict:
    _use_home(home)
    import prefect_mlops as mlops

    size = os.path.getsize(path)
    with mlops.start_run():
        mlops.log_text("warm-up", "warmup.txt")
        with PeakRss() as rss:
            t0 = time.perf_counter()
            info = mlops.log_artifact(path)
            seconds = time.perf_counter() - t0
    assert info.file_size == size
    return {"seconds": seconds, "mb_per_s": size / MB / seconds, "rss_growth_mb": rss.growth_mb}


def mlflow_artifact(home: str, path: str) -> dict:
    client = _mlflow(mlflow_uri("file", home), home).MlflowClient()
    run = client.create_run(client.create_experiment("bench"))
    size = os.path.getsize(path)
    with PeakRss() as rss:
        t0 = time.perf_counter()
        client.log_artifact(run.info.run_id, path)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "mb_per_s": size / MB / seconds, "rss_growth_mb": rss.growth_mb}


def make_file(path: Path, size_mb: int) -> None:
    with open(path, "wb") as out:
        for _ in range(size_mb // 16):
            out.write(os.urandom(16 * MB))
    os.sync()  # so its write-back does not slow the measured copies


# -- driver ------------------------------------------------------------------------------------


def in_home(fn, *args):  # type: ignore[no-untyped-def]
    """``isolated(fn, <fresh temp dir>, *args)``; the temp dir is removed afterwards."""
    home = tempfile.mkdtemp(prefix="bench-tracking-")
    try:
        return isolated(fn, home, *args)
    finally:
        shutil.rmtree(home, ignore_errors=True)
        os.sync()


def run_all(size: dict) -> dict:
    r: dict = {}
    steps = [
        ("ours_log_metric", ours_log_metric, size["calls"]),
        *[(f"mlflow_log_metric_{k}", mlflow_log_metric, k, size["mlflow_calls"],
           size["mlflow_batches"]) for k in STORES],
        ("ours_million", ours_million, size["points"]),
        ("ours_history", ours_history, size["history"], size["reads"]),
        ("mlflow_history", mlflow_history, size["history"], size["reads"]),
        ("ours_runs", ours_create_runs, size["runs"]),
        *[(f"mlflow_runs_{k}", mlflow_create_runs, k, size["runs"]) for k in STORES],
    ]  # fmt: skip
    for name, fn, *args in steps:
        print(f"... {name}", flush=True)
        r[name] = in_home(fn, *args)

    print("... ours_prefect_flow (starting a Prefect server)", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-prefect-") as prefect_home:
        server, api = start_prefect_server(prefect_home)
        try:
            r["ours_prefect_flow"] = in_home(ours_prefect_flow, prefect_home, api, size["flows"])
        finally:
            stop_prefect_server(server)

    print(f"... artifacts ({size['artifact_mb']} MB file)", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-artifact-") as tmp:
        path = Path(tmp) / "artifact.bin"
        make_file(path, size["artifact_mb"])
        r["ours_artifact"] = in_home(ours_artifact, str(path))
        r["mlflow_artifact"] = in_home(mlflow_artifact, str(path))
    return r
