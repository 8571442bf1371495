"""Telemetry benchmark: what `SystemSampler` costs the process it samples.

    .venv/bin/python bench/bench_telemetry.py [--quick] [--results DIR]

In a spawned subprocess with a fresh temporary home, the process sleeps through alternating
windows with and without a sampler logging every second into a run (3 rounds of 10 s each way:
30 s with, 30 s without) and its CPU time (`time.process_time`, all threads) is compared; the
sampler thread's own CPU time is read from the OS as well. Then `sample()` is timed back to
back. Figures are medians. Writes bench/results/telemetry.md (the table) and telemetry.json (raw
numbers); ``--quick`` runs short windows as a smoke test and writes telemetry-quick.md/.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = {
    "full": dict(rounds=3, window_s=10.0, interval_s=1.0, samples=300),
    "quick": dict(rounds=2, window_s=3.0, interval_s=1.0, samples=50),
}  # fmt: skip
TARGET_PCT = 1.0  # % of one core added by sampling every second


def isolated(fn: Callable[..., dict], *args: Any) -> dict:
    """``fn(home, *args)`` in a fresh spawned interpreter with a new temporary ``home``."""
    home = tempfile.mkdtemp(prefix="bench-telemetry-")
    try:
        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
            return pool.submit(fn, home, *args).result()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _use_home(home: str) -> None:
    """Point prefect-mlops at ``home``; call before importing it."""
    os.environ["PREFECT_MLOPS_HOME"] = home
    os.environ.pop("PREFECT_MLOPS_DATABASE_URL", None)
    os.environ.pop("PREFECT_MLOPS_ARTIFACT_STORAGE", None)
    os.chdir(home)


def overhead(home: str, rounds: int, window_s: float, interval_s: float) -> dict:
    _use_home(home)
    from prefect_mlops import TrackingClient
    from prefect_mlops.tracking.capture.telemetry import SystemSampler

    class TimedSampler(SystemSampler):
        """Adds up the CPU time of each sample in the thread that takes it."""

        thread_cpu_s = 0.0

        def sample(self) -> dict[str, float]:
            t0 = time.thread_time()
            try:
                return super().sample()
            finally:
                self.thread_cpu_s += time.thread_time() - t0

    client = TrackingClient()
    experiment_id = client.get_or_create_experiment("bench-telemetry").experiment_id
    client.log_metric(client.create_run(experiment_id).info.run_id, "warmup", 0.0)
    client.flush()  # the writer thread, the connection and SQL compilation are warm

    def window(on: bool) -> dict:
        sampler = None
        if on:
            run_id = client.create_run(experiment_id).info.run_id
            sampler = TimedSampler(client, run_id, interval_s)
            t0 = time.perf_counter()
            sampler.start()
            start_ms = (time.perf_counter() - t0) * 1000
        cpu0, wall0 = time.process_time(), time.perf_counter()
        time.sleep(window_s)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        result: dict[str, Any] = {
            "on": on,
            "cpu_s": cpu,
            "wall_s": wall,
            "core_pct": 100 * cpu / wall,
        }
        if sampler is not None:
            result["gpus"] = sampler.gpu_count
            sampler.stop()  # no sample is in flight after this
            result["thread_cpu_s"] = sampler.thread_cpu_s
            result["samples"] = sampler.samples
            result["start_ms"] = start_ms
        return result

    windows = []
    for r in range(rounds):  # alternate which goes first
        windows += [window(r % 2 == 0), window(r % 2 == 1)]
    off = [w["core_pct"] for w in windows if not w["on"]]
    on = [w for w in windows if w["on"]]
    per_sample = [1000 * w["thread_cpu_s"] / w["samples"] for w in on if w["samples"]]
    on_pct = statistics.median(w["core_pct"] for w in on)
    return {
        "windows": windows,
        "off_core_pct": statistics.median(off),
        "on_core_pct": on_pct,
        "added_core_pct": on_pct - statistics.median(off),
        "thread_core_pct": statistics.median(100 * w["thread_cpu_s"] / w["wall_s"] for w in on),
        "thread_ms_per_sample": statistics.median(per_sample),
        "start_ms": statistics.median(w["start_ms"] for w in on),
        "gpus": on[0]["gpus"],
    }


def sample_cost(home: str, samples: int) -> dict:
    _use_home(home)
    from prefect_mlops import TrackingClient
    from prefect_mlops.tracking.capture.telemetry import SystemSampler

    client = TrackingClient()
    run_id = client.create_run(client.get_or_create_experiment("bench").experiment_id).info.run_id
    with SystemSampler(client, run_id, interval=3600) as sampler:  # the thread stays idle
        gpus = sampler.gpu_count
        metrics = len(sampler.sample())  # warm-up
        wall_ms, cpu_ms = [], []
        for _ in range(samples):
            c0, t0 = time.process_time(), time.perf_counter()
            sampler.sample()
            wall_ms.append((time.perf_counter() - t0) * 1000)
            cpu_ms.append((time.process_time() - c0) * 1000)
    return {
        "samples": samples,
        "metrics_per_sample": metrics,
        "gpus": gpus,
        "wall_ms": statistics.median(wall_ms),
        "wall_p90_ms": statistics.quantiles(wall_ms, n=10)[-1],
        "cpu_ms": statistics.median(cpu_ms),
    }


def build_rows(r: dict, size: dict) -> list[list[str]]:
    rows: list[list[str]] = []

    def add(figure: str, value: str, target: str = "", ok: bool | None = None) -> None:
        rows.append([figure, value, target, "" if ok is None else "yes" if ok else "**NO**"])

    o, s, every = r["overhead"], r["sample"], f"{size['interval_s']:g} s"
    add("process CPU, no sampler (median window)", f"{o['off_core_pct']:.3f} % of one core")
    add(f"process CPU, sampler every {every} (median window)", f"{o['on_core_pct']:.3f} %")
    added = o["added_core_pct"]
    add("added by the sampler", f"{added:.3f} % of one core", f"≤ {TARGET_PCT:g} %", added <= 1)
    add("sampler thread's own CPU", f"{o['thread_core_pct']:.3f} % of one core")
    add("sampler thread CPU per sample", f"{o['thread_ms_per_sample']:.2f} ms")
    add("`sample()` back to back, wall", f"{s['wall_ms']:.2f} ms (p90 {s['wall_p90_ms']:.2f} ms)")
    add("`sample()` back to back, process CPU", f"{s['cpu_ms']:.2f} ms")
    add("metrics per sample, GPUs sampled", f"{s['metrics_per_sample']}, {s['gpus']}")
    add("`start()` (NVML init included)", f"{o['start_ms']:.1f} ms")
    return rows


NOTES = """\
Notes:

- CPU is `time.process_time()` of the benchmark process (all its threads: the sampler and the
  metric writer that persists its points) over windows in which the main thread sleeps; "added"
  is the median with the sampler minus the median without. The CPU the sampler thread spends
  in its samples is added up with `time.thread_time()`.
- Every sample reads psutil's whole-machine CPU, memory, disk and network counters, this
  process's and its children's RSS (on Linux from /proc, walking only this process tree), and
  NVML for each GPU; it starts no subprocess.
- `sample()` back to back: the same work as the thread's, timed in the calling thread,
  including the buffered `log_metric` calls.
"""


def markdown(rows: list[list[str]], info: dict, mode: str, size: dict, seconds: float) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    each = size["rounds"] * size["window_s"]
    head = (
        f"{info['date']}, {mode} run ({seconds:.0f} s) on {info['cpus']} CPUs, "
        f"{info['platform']}, Python {info['python']}; {versions}. {size['rounds']} rounds of "
        f"{size['window_s']:g} s windows with and without the sampler ({each:g} s each way), "
        f"then {size['samples']} `sample()` calls; each part in its own subprocess with a "
        "fresh temporary home. Figures are medians."
    )
    table = ["| Figure | Value | Target | Met |", "|---|---|---|---|"]
    table += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(
        ["# Telemetry benchmark: SystemSampler overhead", "", head, "", *table, "", NOTES]
    )


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:  # run from a source tree (PYTHONPATH=src)
        return "(source tree)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows, for a smoke run")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the results")
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    size = SIZES[mode]
    started = time.perf_counter()
    print("... overhead", flush=True)
    results = {"overhead": isolated(overhead, size["rounds"], size["window_s"], size["interval_s"])}
    print("... sample cost", flush=True)
    results["sample"] = isolated(sample_cost, size["samples"])
    seconds = time.perf_counter() - started
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in ("prefect-mlops", "psutil", "nvidia-ml-py")},
    }
    rows = build_rows(results, size)
    text = markdown(rows, info, mode, size, seconds)
    print("\n" + text)
    stem = "telemetry" if mode == "full" else "telemetry-quick"
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{stem}.md").write_text(text, encoding="utf-8")
    raw = {"mode": mode, "seconds": seconds, "sizes": size, "machine": info, "results": results}
    (args.results / f"{stem}.json").write_text(json.dumps({**raw, "table": rows}, indent=2))
    print(f"Wrote {args.results / stem}.md and {args.results / stem}.json")


if __name__ == "__main__":
    main()
