"""Buffered metric writing under concurrency and crashes (real processes, real SQLite)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from prefect_mlops import TrackingClient
from prefect_mlops.tracking.writer import MetricWriter

WORKER = textwrap.dedent(
    """
    import sys, threading
    from prefect_mlops import TrackingClient
    run_id = sys.argv[1]
    proc, threads, points = (int(x) for x in sys.argv[2:5])
    client = TrackingClient()
    def work(t):
        key = f"p{proc}/t{t}"
        for i in range(points):
            client.log_metric(run_id, key, float(i), step=i)
    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in ts: t.start()
    for t in ts: t.join()
    client.flush()
    print("ok")
    """
)


def test_four_processes_four_threads_into_one_sqlite_file(mlops_home: Path) -> None:
    client = TrackingClient()
    exp = client.get_or_create_experiment("stress")
    run_id = client.create_run(exp.experiment_id).info.run_id
    procs, threads, points = 4, 4, 50_000
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, run_id, str(p), str(threads), str(points)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(procs)
    ]
    for w in workers:
        out, err = w.communicate(timeout=600)
        assert w.returncode == 0, err
        assert out.strip() == "ok"
        assert "locked" not in err.lower()
    summaries = {s.key: s for s in client.get_metric_summaries(run_id)}
    assert len(summaries) == procs * threads
    for s in summaries.values():
        assert (s.count, s.min, s.max, s.last, s.step) == (
            points,
            0,
            points - 1,
            points - 1,
            points - 1,
        )
    history = client.get_metric_history(run_id, "p3/t3")
    assert [m.value for m in history] == [float(i) for i in range(points)]


KILLED_LOGGER = textwrap.dedent(
    """
    import sys, time
    from prefect_mlops import TrackingClient
    client = TrackingClient()
    run_id, log_path = sys.argv[1], sys.argv[2]
    with open(log_path, "w", buffering=1) as log:
        i = 0
        while True:
            client.log_metric(run_id, "beat", float(i), step=i)
            log.write(f"{i} {time.time()}\\n")
            i += 1
            time.sleep(0.001)
    """
)


def test_points_older_than_flush_interval_survive_sigkill(mlops_home: Path, tmp_path: Path) -> None:
    client = TrackingClient()
    flush_interval = client.settings.flush_interval
    exp = client.get_or_create_experiment("crash")
    run_id = client.create_run(exp.experiment_id).info.run_id
    log_path = tmp_path / "logged.txt"
    child = subprocess.Popen([sys.executable, "-c", KILLED_LOGGER, run_id, str(log_path)])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if log_path.exists() and log_path.read_text().count("\n") > 2000:
                break
            time.sleep(0.1)
        time.sleep(1.5)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    killed_at = time.time()
    logged = [line.split() for line in log_path.read_text().splitlines() if line.count(" ") == 1]
    must_have = {int(i) for i, ts in logged if float(ts) < killed_at - flush_interval - 0.5}
    assert len(must_have) > 1000
    stored = {int(m.step) for m in client.get_metric_history(run_id, "beat")}
    assert must_have <= stored, f"lost {len(must_have - stored)} points"


def test_writer_bounds_memory_by_writing_inline() -> None:
    written: list[int] = []
    writer = MetricWriter(
        lambda rows: written.append(len(rows)), flush_interval=60, max_buffered=1000
    )
    for i in range(2500):
        writer.append(("r", "k", float(i), 0, i))
    assert writer.pending < 1000
    assert sum(written) + writer.pending == 2500
    writer.close()
    assert sum(written) == 2500


def test_failed_write_keeps_points_for_the_next_attempt() -> None:
    attempts: list[int] = []

    def flaky(rows):  # type: ignore[no-untyped-def]
        attempts.append(len(rows))
        if len(attempts) == 1:
            raise RuntimeError("disk full")

    writer = MetricWriter(flaky, flush_interval=60)
    writer.append(("r", "k", 1.0, 0, 0))
    with pytest.raises(RuntimeError, match="disk full"):
        writer.flush()
    writer.append(("r", "k", 2.0, 0, 1))
    writer.flush()
    assert attempts == [1, 2]
    writer.close()
