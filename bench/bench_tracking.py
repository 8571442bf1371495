"""Tracking benchmark: prefect-mlops against MLflow (mlflow-skinny) on the same workloads.

    .venv/bin/python bench/bench_tracking.py [--quick]

Each measurement runs in its own spawned subprocess with a fresh temporary home, so settings,
caches, threads and memory of one workload never leak into another. MLflow is the peer, called
through its public API on a ``file:`` store and a ``sqlite:///`` store. Figures are medians.
Writes bench/results/tracking.md (the table) and tracking.json (raw numbers); ``--quick`` runs
small sizes as a smoke test and writes tracking-quick.md/.json instead.
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
import urllib.request
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
MB = 1024 * 1024
BATCH = 1000  # log_metric calls per timed batch; points per log_batch call
SEED_BUDGET_S = 60.0  # seeding MLflow's metric history is slow: stop early past this
STORES = {"sqlite": "SQLite", "file": "file store"}
SIZES = {
    "full": dict(
        calls=300_000, mlflow_calls=500, mlflow_batches=20, points=1_000_000,
        history=100_000, reads=5, runs=500, flows=30, artifact_mb=1024,
    ),
    "quick": dict(
        calls=20_000, mlflow_calls=100, mlflow_batches=3, points=100_000,
        history=10_000, reads=3, runs=100, flows=4, artifact_mb=64,
    ),
}  # fmt: skip

# -- plumbing: subprocesses, homes, memory -----------------------------------------------------


def isolated(fn: Callable[..., dict], *args: Any) -> dict:
    """``fn(home, *args)`` in a fresh spawned interpreter with a new temporary ``home``."""
    home = tempfile.mkdtemp(prefix="bench-tracking-")
    try:
        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
            return pool.submit(fn, home, *args).result()
    finally:
        shutil.rmtree(home, ignore_errors=True)
        os.sync()  # write-back of this workload's files must not slow the next one


def _use_home(home: str) -> None:
    """Point prefect-mlops at ``home``; call before importing it."""
    os.environ["PREFECT_MLOPS_HOME"] = home
    os.environ.pop("PREFECT_MLOPS_DATABASE_URL", None)
    os.environ.pop("PREFECT_MLOPS_ARTIFACT_STORAGE", None)
    os.chdir(home)


def _client(home: str, engine: str) -> tuple[Any, type]:
    """(client, Metric class) on a new store in ``home``: a prefect-mlops ``TrackingClient``
    (``engine="ours"``) or an ``MlflowClient`` on a ``"sqlite"`` or ``"file"`` store."""
    if engine == "ours":
        _use_home(home)
        import prefect_mlops as mlops

        return mlops.TrackingClient(), mlops.Metric
    from mlflow.entities import Metric

    return _mlflow(home, engine).MlflowClient(), Metric


def _mlflow(home: str, kind: str) -> Any:
    """The mlflow module tracking to a new ``kind`` store in ``home`` (also the cwd)."""
    import logging
    import warnings

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # the file store is in maintenance mode
    os.chdir(home)
    warnings.filterwarnings("ignore")
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    uri = f"sqlite:///{home}/mlflow.db" if kind == "sqlite" else f"file://{home}/mlruns"
    mlflow.set_tracking_uri(uri)
    return mlflow


def peak_rss_growth_mb(fn: Callable[[], object]) -> tuple[float, float]:
    """Run ``fn``; return (seconds, peak RSS minus RSS before, in MB), RSS sampled every 10 ms."""
    import psutil

    proc, stop = psutil.Process(), threading.Event()
    gc.collect()
    base = peak = proc.memory_info().rss

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.01):
            peak = max(peak, proc.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t0
    stop.set()
    sampler.join()
    return seconds, (max(peak, proc.memory_info().rss) - base) / MB


def _per_second(fn: Callable[[], object], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t0)


def _read_ms(read: Callable[[], list], expected: int, reads: int) -> dict:
    times = []
    for _ in range(reads):
        t0 = time.perf_counter()
        got = len(read())
        times.append((time.perf_counter() - t0) * 1000)
        assert got == expected, (got, expected)
    return {"points": expected, "median_ms": statistics.median(times), "all_ms": times}


# -- workloads (each runs in a subprocess) -----------------------------------------------------


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
    p90 = statistics.quantiles(per_call_us, n=10)[-1]
    return {"median_us": statistics.median(per_call_us), "p90_us": p90, "calls": calls}


def mlflow_log_metric(home: str, kind: str, calls: int, batches: int) -> dict:
    mlflow = _mlflow(home, kind)
    from mlflow.entities import Metric

    with mlflow.start_run() as run:
        mlflow.log_metric("warmup", 0.0, synchronous=True)
        t0 = time.perf_counter()
        for i in range(calls):
            mlflow.log_metric("loss", i * 0.001, step=i, synchronous=True)
        metric_pps = calls / (time.perf_counter() - t0)
        now, client = int(time.time() * 1000), mlflow.MlflowClient()
        chunks = [
            [Metric("batch", i * 0.001, now, i) for i in range(b * BATCH, (b + 1) * BATCH)]
            for b in range(batches)
        ]
        t0 = time.perf_counter()
        for chunk in chunks:
            client.log_batch(run.info.run_id, metrics=chunk)
        batch_pps = batches * BATCH / (time.perf_counter() - t0)
    return {"log_metric_pps": metric_pps, "log_batch_pps": batch_pps}


def ours_million(home: str, points: int) -> dict:
    _use_home(home)
    import prefect_mlops as mlops

    with mlops.start_run() as run:
        for i in range(BATCH):  # warm up the writer thread, the connection and SQL compilation
            mlops.log_metric("warmup", 0.0, step=i)
        mlops.flush()

        def log_all() -> None:
            for i in range(points):
                mlops.log_metric("loss", i * 1e-6, step=i)
            mlops.flush()

        seconds, growth = peak_rss_growth_mb(log_all)
        stored = {s.key: s.count for s in mlops.get_client().get_metric_summaries(run.run_id)}
    assert stored["loss"] == points, stored
    return {"seconds": seconds, "rss_growth_mb": growth, "points_per_s": points / seconds}


def history(home: str, engine: str, points: int, reads: int) -> dict:
    client, metric = _client(home, engine)
    run_id = client.create_run(client.create_experiment("bench")).info.run_id
    now, seeded, t0 = int(time.time() * 1000), 0, time.perf_counter()
    while seeded < points and time.perf_counter() - t0 < SEED_BUDGET_S:
        batch = [metric("loss", i * 1e-3, now, i) for i in range(seeded, seeded + BATCH)]
        client.log_batch(run_id, metrics=batch)
        seeded += BATCH
    seed_s = time.perf_counter() - t0
    result = _read_ms(lambda: client.get_metric_history(run_id, "loss"), seeded, reads)
    return {**result, "seed_s": seed_s}


def create_runs(home: str, engine: str, runs: int) -> dict:
    client, _ = _client(home, engine)
    experiment_id = client.create_experiment("bench")
    client.create_run(experiment_id)  # warm-up
    return {"runs_per_s": _per_second(lambda: client.create_run(experiment_id), runs)}


def ours_prefect_flow(home: str, api: str, runs: int) -> dict:
    _use_home(home)
    os.environ.update(PREFECT_HOME=home, PREFECT_API_URL=api, PREFECT_LOGGING_LEVEL="WARNING")
    import prefect.settings as ps
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

    def ms(fn: Callable[[], None]) -> float:
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1000

    # Prefect joins its heartbeat thread, which sleeps in 1 s steps, when a flow ends: every
    # run would be rounded up to ~1 s, hiding the cost measured here. Off for both flows.
    on, off = [], []
    with ps.temporary_settings(updates={ps.PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        for fn in (tracked, untracked, tracked, untracked):  # warm-up: imports, experiment...
            fn()
        for n in range(runs):  # interleaved, alternating which goes first
            if n % 2:
                off.append(ms(untracked))
                on.append(ms(tracked))
            else:
                on.append(ms(tracked))
                off.append(ms(untracked))
    logged = mlops.search_runs(experiment_names=["bench-tracked"])
    assert len(logged) == runs + 2, len(logged)
    assert all(r.info.status.value == "FINISHED" and len(r.data.metrics) == 10 for r in logged)
    tracked_ms, untracked_ms = statistics.median(on), statistics.median(off)
    return {
        "tracked_ms": tracked_ms,
        "untracked_ms": untracked_ms,
        "added_ms": tracked_ms - untracked_ms,
        "paired_added_ms": statistics.median(a - b for a, b in zip(on, off, strict=True)),
    }


def log_artifact(home: str, engine: str, path: str) -> dict:
    client, _ = _client(home, engine)
    run_id = client.create_run(client.create_experiment("bench")).info.run_id
    seconds, growth = peak_rss_growth_mb(lambda: client.log_artifact(run_id, path))
    stored = {f.path: f.file_size for f in client.list_artifacts(run_id)}
    assert stored == {"artifact.bin": os.path.getsize(path)}, stored
    return {"mb_per_s": os.path.getsize(path) / MB / seconds, "rss_growth_mb": growth}


# -- driver ------------------------------------------------------------------------------------


def start_prefect_server(home: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = f"http://127.0.0.1:{port}/api"
    cmd = [str(Path(sys.executable).with_name("prefect")), "server", "start"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--no-ui", "--no-services"]
    env = {**os.environ, "PREFECT_HOME": home, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    with open(Path(home) / "server.log", "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
                if response.status == 200:
                    return proc, api
        except OSError:
            time.sleep(0.5)
    stop_prefect_server(proc)
    tail = (Path(home) / "server.log").read_text(errors="replace")[-3000:]
    raise RuntimeError(f"The Prefect server did not come up:\n{tail}")


def stop_prefect_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its workers
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_all(size: dict) -> dict:
    mlflow_sizes = (size["mlflow_calls"], size["mlflow_batches"])
    steps: list[tuple[str, Callable[..., dict], tuple]] = [
        ("ours_log_metric", ours_log_metric, (size["calls"],)),
        *[(f"mlflow_log_metric_{k}", mlflow_log_metric, (k, *mlflow_sizes)) for k in STORES],
        ("ours_million", ours_million, (size["points"],)),
        ("ours_history", history, ("ours", size["history"], size["reads"])),
        ("mlflow_history", history, ("sqlite", size["history"], size["reads"])),
        ("ours_runs", create_runs, ("ours", size["runs"])),
        *[(f"mlflow_runs_{k}", create_runs, (k, size["runs"])) for k in STORES],
    ]
    results = {}
    for name, fn, args in steps:
        print(f"... {name}", flush=True)
        results[name] = isolated(fn, *args)

    print("... ours_prefect_flow (with a Prefect server)", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-prefect-") as prefect_home:
        server, api = start_prefect_server(prefect_home)
        try:
            results["ours_prefect_flow"] = isolated(ours_prefect_flow, api, size["flows"])
        finally:
            stop_prefect_server(server)

    print(f"... ours_artifact, mlflow_artifact ({size['artifact_mb']} MB file)", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-artifact-") as tmp:
        path = Path(tmp) / "artifact.bin"
        with open(path, "wb") as out:
            for _ in range(size["artifact_mb"] // 16):
                out.write(os.urandom(16 * MB))
        os.sync()
        results["ours_artifact"] = isolated(log_artifact, "ours", str(path))
        results["mlflow_artifact"] = isolated(log_artifact, "file", str(path))
    return results


# -- report ------------------------------------------------------------------------------------


def build_rows(r: dict, size: dict) -> list[list[str]]:
    """Table rows: workload, figure, value, target, whether the target is met."""
    rows: list[list[str]] = []

    def add(w: str, figure: str, value: str, target: str = "", ok: bool | None = None) -> None:
        rows.append([w, figure, value, target, "" if ok is None else "yes" if ok else "**NO**"])

    w, us = "1. log_metric", r["ours_log_metric"]["median_us"]
    add(w, "prefect-mlops `log_metric`, median per call", f"{us:.2f} µs", "≤ 10 µs", us <= 10)
    for k, label in STORES.items():
        m = r[f"mlflow_log_metric_{k}"]
        add(w, f"MLflow `log_metric` (sync), {label}", f"{m['log_metric_pps']:,.0f} points/s")
        add(w, f"MLflow `log_batch` of {BATCH}, {label}", f"{m['log_batch_pps']:,.0f} points/s")
    for k, label in STORES.items():
        m = r[f"mlflow_log_metric_{k}"]
        x = 1e6 / us / m["log_metric_pps"]
        add(w, f"ratio vs MLflow `log_metric`, {label}", f"{x:,.0f}x", "≥ 100x", x >= 100)
        x = 1e6 / us / m["log_batch_pps"]
        add(w, f"ratio vs MLflow `log_batch`, {label}", f"{x:,.1f}x", "≥ 10x", x >= 10)

    w, m = f"2. {size['points']:,} points to SQLite", r["ours_million"]
    s, limit, mb = m["seconds"], 10 * size["points"] / 1e6, m["rss_growth_mb"]
    add(w, "`log_metric` N times, then `flush()`", f"{s:.2f} s", f"≤ {limit:g} s", s <= limit)
    add(w, "RSS growth (peak)", f"{mb:.1f} MB", "≤ 100 MB", mb <= 100)
    x = m["points_per_s"] / r["mlflow_log_metric_sqlite"]["log_batch_pps"]
    pps = f"{m['points_per_s']:,.0f} ({x:,.1f}x)"
    add(w, "persisted points/s (ratio vs MLflow `log_batch`, SQLite)", pps)

    ours, peer = r["ours_history"], r["mlflow_history"]
    w, ms = f"3. get_metric_history, {ours['points']:,} points", ours["median_ms"]
    add(w, "prefect-mlops, median read", f"{ms:.1f} ms", "≤ 100 ms", ms <= 100)
    short = peer["points"] < ours["points"]
    note = f" ({peer['points']:,} points only)" if short else ""
    add(w, f"MLflow `get_metric_history`, SQLite{note}", f"{peer['median_ms']:.1f} ms")
    x = (peer["median_ms"] / peer["points"]) / (ms / ours["points"])
    add(w, "ratio per point" if short else "ratio", f"{x:,.1f}x")

    w, rps = f"4. create_run, {size['runs']} runs", r["ours_runs"]["runs_per_s"]
    add(w, "prefect-mlops `TrackingClient.create_run`", f"{rps:,.0f} runs/s", "≥ 500/s", rps >= 500)
    for k, label in STORES.items():
        peer_rps = r[f"mlflow_runs_{k}"]["runs_per_s"]
        value = f"{peer_rps:,.0f} runs/s ({rps / peer_rps:,.1f}x)"
        add(w, f"MLflow `MlflowClient.create_run`, {label} (ratio)", value)

    w, m = f"5. Prefect flow logging 10 metrics, {size['flows']} runs each", r["ours_prefect_flow"]
    add(w, "untracked flow, median", f"{m['untracked_ms']:.1f} ms")
    add(w, "tracked flow, median", f"{m['tracked_ms']:.1f} ms")
    add(w, "added by tracking", f"{m['added_ms']:.1f} ms", "≤ 50 ms", m["added_ms"] <= 50)
    add(w, "added, median of paired differences", f"{m['paired_added_ms']:.1f} ms")

    ours, peer = r["ours_artifact"], r["mlflow_artifact"]
    w, mb = f"6. log_artifact, {size['artifact_mb']:,} MB file", ours["rss_growth_mb"]
    add(w, "prefect-mlops RSS growth (peak)", f"{mb:.1f} MB", "≤ 64 MB", mb <= 64)
    add(w, "prefect-mlops throughput (sha256 included)", f"{ours['mb_per_s']:,.0f} MB/s")
    value = f"{peer['mb_per_s']:,.0f} MB/s, RSS +{peer['rss_growth_mb']:.1f} MB"
    add(w, "MLflow `log_artifact`, file store", value)
    add(w, "throughput ratio", f"{ours['mb_per_s'] / peer['mb_per_s']:.2f}x")
    return rows


NOTES = """\
Notes:

- Ratios are prefect-mlops over MLflow: above 1, prefect-mlops is faster. Targets are for a
  2-core machine.
- 1: prefect-mlops calls/s is 1e6 / median µs per call; `log_metric` buffers and a background
  thread writes. MLflow is timed over all its calls (sync, one transaction or file append each).
- 2: from the first call until `flush()` returns (everything in SQLite); RSS sampled every 10 ms.
- 5: both flows run with Prefect's flow heartbeat off: Prefect joins its heartbeat thread (which
  sleeps in 1 s steps) when a flow ends, rounding every run up to about 1 s. The tracked time
  includes creating the bound run and publishing its summary artifacts to Prefect.
- 6: prefect-mlops streams in 1 MiB chunks and hashes sha256 on the way; MLflow copies the file.
"""


def markdown(rows: list[list[str]], info: dict, mode: str, seconds: float) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    head = (
        f"{info['date']}, {mode} run ({seconds:.0f} s) on {info['cpus']} CPUs, "
        f"{info['platform']}, Python {info['python']}; {versions}. Every workload ran in its "
        "own subprocess with a fresh temporary home. Figures are medians."
    )
    table = ["| Workload | Figure | Value | Target | Met |", "|---|---|---|---|---|"]
    table += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(
        ["# Tracking benchmark: prefect-mlops vs MLflow", "", head, "", *table, "", NOTES]
    )


def main() -> None:
    from importlib.metadata import version

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    mode = "quick" if parser.parse_args().quick else "full"
    size = SIZES[mode]
    started = time.perf_counter()
    results = run_all(size)
    seconds = time.perf_counter() - started
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "versions": {p: version(p) for p in ("prefect-mlops", "mlflow-skinny", "prefect")},
    }
    rows = build_rows(results, size)
    text = markdown(rows, info, mode, seconds)
    print("\n" + text)
    stem = "tracking" if mode == "full" else "tracking-quick"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.md").write_text(text, encoding="utf-8")
    raw = {"mode": mode, "seconds": seconds, "sizes": size, "machine": info, "results": results}
    (RESULTS / f"{stem}.json").write_text(json.dumps({**raw, "table": rows}, indent=2))
    print(f"Wrote {RESULTS / stem}.md and {RESULTS / stem}.json")


if __name__ == "__main__":
    main()
