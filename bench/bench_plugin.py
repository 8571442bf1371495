"""Zero-code tracking benchmark: what the Prefect plugin adds to every flow run.

    .venv/bin/python bench/bench_plugin.py [--quick]

Two fresh interpreters run the same small flow (two tasks, no prefect_mlops import) N times
against one real `prefect server start`: one with the plugin off, one with
PREFECT_PLUGINS_ENABLED=true and PREFECT_MLOPS_AUTO_TRACK=true (console capture, environment
capture, telemetry and the run summary included). Prefect's flow heartbeat is off in both
(it rounds every flow run up to ~1 s). Reports the median flow-call time of each and the
difference. Writes bench/results/plugin.md and plugin.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_MS = 20.0

WORKLOAD = textwrap.dedent(
    """
    import json, statistics, sys, time
    from prefect import flow, task

    @task
    def double(x: int) -> int:
        return 2 * x

    @flow(name="bench-plugin")
    def small(x: int = 1) -> int:
        return double(x) + double(x + 1)

    import prefect.settings as ps

    def settle():  # the plugin's background work, when it is loaded
        pending = sys.modules.get("prefect_mlops.tracking.pending")
        if pending is not None:
            pending.wait()

    n = int(sys.argv[1])
    times = []
    with ps.temporary_settings(updates={ps.PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        for _ in range(3):  # warm up: imports, first API calls, experiment creation
            small()
        settle()
        cpu = time.process_time()
        for i in range(n):
            start = time.perf_counter()
            small(x=i)
            times.append(time.perf_counter() - start)
        settle()
        cpu = (time.process_time() - cpu) / n
    print(json.dumps({"times": times, "cpu": cpu}))
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = dict(
        os.environ,
        PREFECT_HOME=str(home / "prefect"),
        PREFECT_UI_ENABLED="false",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-services",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("prefect server did not start")


def run_flows(home: Path, api_url: str, n: int, tracked: bool) -> tuple[list[float], float]:
    """Flow-call times (s) and the process's CPU time per flow run (s), background work
    included."""
    script = home / "workload.py"
    script.write_text(WORKLOAD)
    env = dict(
        os.environ,
        PREFECT_HOME=str(home / "prefect"),
        PREFECT_API_URL=api_url,
        PREFECT_LOGGING_TO_API_ENABLED="false",
        PREFECT_MLOPS_HOME=str(home / ("tracked" if tracked else "plain")),
        PREFECT_PLUGINS_ENABLED="true" if tracked else "false",
        PREFECT_MLOPS_AUTO_TRACK="true" if tracked else "false",
    )
    out = subprocess.run(
        [sys.executable, str(script), str(n)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    ).stdout
    got = json.loads(out.strip().splitlines()[-1])
    return got["times"], got["cpu"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 flow runs instead of 50")
    args = parser.parse_args()
    n = 10 if args.quick else 50
    home = Path(tempfile.mkdtemp(prefix="bench-plugin-"))
    server, url = start_server(home)
    try:
        rounds = [(run_flows(home, url, n, False), run_flows(home, url, n, True)) for _ in range(2)]
    finally:
        server.terminate()
        server.wait(timeout=30)
    plain = [t for r in rounds for t in r[0][0]]
    tracked = [t for r in rounds for t in r[1][0]]
    plain_cpu = statistics.median(r[0][1] for r in rounds) * 1000
    tracked_cpu = statistics.median(r[1][1] for r in rounds) * 1000
    plain_ms = statistics.median(plain) * 1000
    tracked_ms = statistics.median(tracked) * 1000
    added = tracked_ms - plain_ms
    rows = [
        ("untracked flow run (plugin off), median", f"{plain_ms:.1f} ms", "", ""),
        (
            "tracked flow run (plugin on, everything captured), median",
            f"{tracked_ms:.1f} ms",
            "",
            "",
        ),
        (
            "added by the plugin",
            f"{added:.1f} ms",
            f"≤ {TARGET_MS:.0f} ms",
            "yes" if added <= TARGET_MS else "**NO**",
        ),
        (
            "CPU time of the flow's process per flow run, off / on (background work included)",
            f"{plain_cpu:.1f} / {tracked_cpu:.1f} ms (+{tracked_cpu - plain_cpu:.1f} ms)",
            "",
            "",
        ),
    ]
    stamp = time.strftime("%Y-%m-%d %H:%M")
    lines = [
        "# Zero-code tracking benchmark: the plugin's cost per flow run",
        "",
        f"{stamp}, {2 * n} flow runs per side in two alternating rounds, on {os.cpu_count()} "
        f"CPUs, {platform.platform()}, Python {platform.python_version()}. Figures are medians.",
        "",
        "| Figure | Value | Target | Met |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
        "The tracked side captures the console and records task runs while the flow runs; a",
        "background thread then creates the run, takes a telemetry sample, saves git,",
        "interpreter, packages, environment and console, ends the run (one transaction) and",
        "publishes its summary to the flow run. Part of that work overlaps the next flow run,",
        "so the CPU it costs is larger than the latency it adds.",
    ]
    RESULTS.mkdir(exist_ok=True)
    name = "plugin-quick" if args.quick else "plugin"
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"{name}.json").write_text(
        json.dumps(
            {
                "plain_s": plain,
                "tracked_s": tracked,
                "added_ms": added,
                "cpu_per_run_ms": {"plain": plain_cpu, "tracked": tracked_cpu},
            },
            indent=1,
        )
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
