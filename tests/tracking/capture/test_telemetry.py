"""System metrics sampling: real psutil, real threads, a real run in a fresh store.

The real NVML path needs an NVIDIA GPU and is exercised by bench/gpu_check.py on one; here a
stand-in ``pynvml`` module (the ``nvml=`` test seam) covers the handling of GPU query failures.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from prefect_mlops import InvalidInput, NotFound, TrackingClient
from prefect_mlops.tracking.capture.telemetry import MB, SystemSampler, gpu_inventory

MACHINE_KEYS = {
    "system/cpu_percent",
    "system/memory_used_mb",
    "system/memory_percent",
    "system/process_rss_mb",
}
RATE_KEYS = {
    "system/disk_read_mb_s",
    "system/disk_write_mb_s",
    "system/net_sent_mb_s",
    "system/net_recv_mb_s",
}
GPU_FIELDS = ("utilization", "memory_used_mb", "memory_total_mb", "temperature_c", "power_w")
HAS_GPU = bool(gpu_inventory())


def _run(client: TrackingClient) -> str:
    experiment = client.get_or_create_experiment("telemetry")
    return client.create_run(experiment.experiment_id).info.run_id


def _histories(client: TrackingClient, run_id: str) -> dict[str, list[Any]]:
    keys = [s.key for s in client.get_metric_summaries(run_id)]
    return {key: list(client.get_metric_history(run_id, key)) for key in keys}


def _expected_rate_keys() -> set[str]:
    keys = set()
    if psutil.disk_io_counters() is not None:
        keys |= {"system/disk_read_mb_s", "system/disk_write_mb_s"}
    if psutil.net_io_counters() is not None:
        keys |= {"system/net_sent_mb_s", "system/net_recv_mb_s"}
    return keys


def test_sampler_logs_machine_metrics_with_consecutive_steps(
    mlops_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="prefect_mlops.telemetry")
    client = TrackingClient()
    run_id = _run(client)
    sampler = SystemSampler(client, run_id, interval=0.1)
    sampler.start()
    thread = sampler._thread
    assert thread is not None and thread.daemon and thread.is_alive()
    time.sleep(0.55)
    sampler.stop()
    assert not thread.is_alive() and not sampler.running
    n = sampler.samples
    assert 3 <= n <= 6

    history = _histories(client, run_id)
    machine = {k for k in history if not k.startswith("system/gpu")}
    assert machine == MACHINE_KEYS | _expected_rate_keys()
    for key in machine:
        points = history[key]
        assert [p.step for p in points] == list(range(n)), key
        assert len({p.timestamp for p in points}) == n  # one timestamp per sample
    ncpu = psutil.cpu_count() or 1
    total_mb = psutil.virtual_memory().total / MB
    for key, points in history.items():
        values = [p.value for p in points]
        assert all(v is not None and v >= 0 for v in values), (key, values)
        if key == "system/cpu_percent":
            assert all(v <= 100 * ncpu for v in values)
        elif key == "system/memory_used_mb":
            assert all(0 < v <= total_mb for v in values)
        elif key == "system/memory_percent":
            assert all(0 < v <= 100 for v in values)
        elif key == "system/process_rss_mb":
            assert all(v > 10 for v in values)  # a Python with SQLAlchemy loaded, at least

    gpu_keys = {k for k in history if k.startswith("system/gpu")}
    no_gpu_logs = [r for r in caplog.records if "No NVIDIA GPU" in r.getMessage()]
    if HAS_GPU:
        assert {f"system/gpu0_{f}" for f in ("utilization", "memory_used_mb")} <= gpu_keys
        assert no_gpu_logs == []
    else:
        assert gpu_keys == set()
        assert len(no_gpu_logs) == 1 and no_gpu_logs[0].levelno == logging.DEBUG
        assert sampler.gpu_count == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "telemetry" in r.name]

    sampler.stop()  # idempotent
    time.sleep(0.25)
    assert sampler.samples == n
    with pytest.raises(InvalidInput, match="cannot be restarted"):
        sampler.start()


def test_context_manager_starts_and_joins(mlops_home: Path) -> None:
    client = TrackingClient()
    run_id = _run(client)
    with SystemSampler(client, run_id, interval=0.05, gpus=False) as sampler:
        assert sampler.running
        deadline = time.monotonic() + 10
        while sampler.samples < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        thread = sampler._thread
    assert thread is not None and not thread.is_alive()
    assert not sampler.running
    n = sampler.samples
    assert n >= 3
    steps = [m.step for m in client.get_metric_history(run_id, "system/cpu_percent")]
    assert steps == list(range(n))
    sampler.stop()


def test_an_exception_in_the_block_still_stops_the_thread(mlops_home: Path) -> None:
    client = TrackingClient()
    run_id = _run(client)
    sampler = SystemSampler(client, run_id, interval=0.05, gpus=False)
    with pytest.raises(RuntimeError, match="boom"), sampler:
        raise RuntimeError("boom")
    assert sampler._thread is not None and not sampler._thread.is_alive()


GRANDPARENT = """
import subprocess, sys, time
code = "import time; b = b'x' * (200 << 20); print('ready', flush=True); time.sleep(60)"
child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
print(child.stdout.readline().strip(), flush=True)
time.sleep(60)
"""


def test_process_rss_counts_children_and_grandchildren(mlops_home: Path) -> None:
    client = TrackingClient()
    sampler = SystemSampler(client, _run(client), interval=60, gpus=False)
    alone = sampler.sample()["system/process_rss_mb"]
    child = subprocess.Popen([sys.executable, "-c", GRANDPARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        with_tree = sampler.sample()["system/process_rss_mb"]
        fast_path = sampler._proc_children
        sampler._proc_children = False  # psutil's portable walk must agree
        portable = sampler.sample()["system/process_rss_mb"]
    finally:
        for proc in psutil.Process(child.pid).children(recursive=True):
            proc.kill()
        child.kill()
        child.wait()
    assert with_tree - alone > 200 + 5  # the grandchild's 200 MB and two interpreters
    assert abs(portable - with_tree) < 10
    assert fast_path == sys.platform.startswith("linux")


def test_network_rate_is_bytes_over_real_elapsed_time(mlops_home: Path) -> None:
    if psutil.net_io_counters() is None:
        pytest.skip("no network counters on this machine")
    client = TrackingClient()
    sampler = SystemSampler(client, _run(client), interval=60, gpus=False)
    payload = 64 << 20

    server = socket.create_server(("127.0.0.1", 0))
    received = []

    def receive() -> None:
        conn, _ = server.accept()
        with conn:
            n = 0
            while chunk := conn.recv(1 << 20):
                n += len(chunk)
            received.append(n)

    reader = threading.Thread(target=receive)
    reader.start()
    t0 = time.monotonic()
    sampler.sample()  # the base reading
    with socket.create_connection(server.getsockname()) as conn:
        conn.sendall(b"x" * payload)
    reader.join()
    server.close()
    values = sampler.sample()
    elapsed_bound = time.monotonic() - t0  # longer than the time between the two readings
    assert received == [payload]
    # Loopback traffic counts as sent and received; other traffic only adds to it.
    assert values["system/net_sent_mb_s"] * elapsed_bound >= payload / MB
    assert values["system/net_recv_mb_s"] * elapsed_bound >= payload / MB
    assert values["system/net_sent_mb_s"] < 1e6  # per second, not per sample interval in ms


def test_disk_write_rate_sees_a_synced_file(mlops_home: Path, tmp_path: Path) -> None:
    if psutil.disk_io_counters() is None:
        pytest.skip("no disk counters on this machine")
    mounts = sorted(psutil.disk_partitions(all=True), key=lambda p: len(p.mountpoint))
    fstype = [p.fstype for p in mounts if str(tmp_path).startswith(p.mountpoint)][-1:]
    if fstype and fstype[0] in {"tmpfs", "ramfs", "overlay", "9p", "virtiofs"}:
        pytest.skip(f"{tmp_path} is on {fstype[0]}: writes may not reach a counted disk")
    client = TrackingClient()
    sampler = SystemSampler(client, _run(client), interval=60, gpus=False)
    t0 = time.monotonic()
    sampler.sample()
    with open(tmp_path / "blob", "wb") as f:
        f.write(os.urandom(32 << 20))
        f.flush()
        os.fsync(f.fileno())
    values = sampler.sample()
    assert values["system/disk_write_mb_s"] * (time.monotonic() - t0) >= 30


def test_interval_comes_from_settings_and_must_be_positive(
    mlops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = TrackingClient()
    run_id = _run(client)
    assert SystemSampler(client, run_id).interval == getattr(
        client.settings, "telemetry_interval", 5.0
    )
    monkeypatch.setattr(client, "settings", SimpleNamespace(telemetry_interval=2.5))
    assert SystemSampler(client, run_id).interval == 2.5
    assert SystemSampler(client, run_id, interval=0.5).interval == 0.5
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InvalidInput, match="interval"):
            SystemSampler(client, run_id, interval=bad)


def test_start_refuses_unknown_and_finished_runs(mlops_home: Path) -> None:
    client = TrackingClient()
    with pytest.raises(NotFound):
        SystemSampler(client, "0" * 32, interval=0.1, gpus=False).start()
    run_id = _run(client)
    client.set_terminated(run_id)
    sampler = SystemSampler(client, run_id, interval=0.1, gpus=False)
    with pytest.raises(InvalidInput, match="FINISHED"):
        sampler.start()
    assert not sampler.running


def test_run_ending_under_a_running_sampler_warns_once(
    mlops_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = TrackingClient()
    run_id = _run(client)
    with SystemSampler(client, run_id, interval=0.05, gpus=False) as sampler:
        while sampler.samples < 2:
            time.sleep(0.01)
        client.set_terminated(run_id)
        time.sleep(0.3)  # several failing intervals
        assert sampler.running
    warnings = [r for r in caplog.records if r.name == "prefect_mlops.telemetry"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "could not be logged" in warnings[0].getMessage()


# -- GPUs through a stand-in NVML (test seam) ----------------------------------------------------


class FakeNVMLError(Exception):
    pass


class FakeNvml:
    """Two GPUs; gpu0 has no temperature sensor, gpu1 reports no power (NOT_SUPPORTED)."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, fail_init: bool = False) -> None:
        self.fail_init = fail_init
        self.inits = self.shutdowns = 0

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise FakeNVMLError("NVML Shared Library Not Found")
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return f"Fake GPU {handle}".encode()

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return f"GPU-{handle:04d}"

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=40 + handle, memory=10)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(used=(1024 + handle) * MB, total=81920 * MB, free=0)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        if handle == 0:
            raise FakeNVMLError("Not Supported")
        return 55

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        if handle == 1:
            raise FakeNVMLError("Not Supported")
        return 312_500  # milliwatts


def test_one_failing_gpu_query_skips_only_its_metric(
    mlops_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="prefect_mlops.telemetry")
    client = TrackingClient()
    run_id = _run(client)
    nvml = FakeNvml()
    with SystemSampler(client, run_id, interval=0.05, nvml=nvml) as sampler:
        assert sampler.gpu_count == 2
        while sampler.samples < 3:
            time.sleep(0.01)
    assert (nvml.inits, nvml.shutdowns) == (1, 1)
    n = sampler.samples
    history = _histories(client, run_id)
    gpu = {k: [p.value for p in v] for k, v in history.items() if k.startswith("system/gpu")}
    assert set(gpu) == {f"system/gpu0_{f}" for f in GPU_FIELDS if f != "temperature_c"} | {
        f"system/gpu1_{f}" for f in GPU_FIELDS if f != "power_w"
    }
    assert gpu["system/gpu0_utilization"] == [40.0] * n
    assert gpu["system/gpu1_utilization"] == [41.0] * n
    assert gpu["system/gpu1_memory_used_mb"] == [1025.0] * n
    assert gpu["system/gpu0_memory_total_mb"] == [81920.0] * n
    assert gpu["system/gpu0_power_w"] == [312.5] * n
    assert gpu["system/gpu1_temperature_c"] == [55.0] * n
    for key in gpu:
        assert [p.step for p in history[key]] == list(range(n))
    assert set(history) >= MACHINE_KEYS  # the machine metrics go on beside the GPU ones
    skipped = [r.getMessage() for r in caplog.records if "not available" in r.getMessage()]
    assert sorted(skipped) == [
        "GPU 0: temperature is not available (Not Supported); skipped.",
        "GPU 1: power is not available (Not Supported); skipped.",
    ]  # once each, though every sample failed


def test_nvml_init_failure_means_cpu_only(
    mlops_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="prefect_mlops.telemetry")
    client = TrackingClient()
    run_id = _run(client)
    with SystemSampler(client, run_id, interval=0.05, nvml=FakeNvml(fail_init=True)) as sampler:
        while sampler.samples < 2:
            time.sleep(0.01)
    keys = {s.key for s in client.get_metric_summaries(run_id)}
    assert keys >= MACHINE_KEYS and not any(k.startswith("system/gpu") for k in keys)
    messages = [r for r in caplog.records if "No NVIDIA GPU" in r.getMessage()]
    assert len(messages) == 1 and messages[0].levelno == logging.DEBUG


def test_gpus_false_never_touches_nvml(mlops_home: Path) -> None:
    client = TrackingClient()
    nvml = FakeNvml()
    with SystemSampler(client, _run(client), interval=0.05, gpus=False, nvml=nvml) as sampler:
        assert sampler.gpu_count == 0
    assert nvml.inits == 0


def test_gpu_inventory() -> None:
    nvml = FakeNvml()
    assert gpu_inventory(nvml=nvml) == [
        {"index": 0, "name": "Fake GPU 0", "uuid": "GPU-0000", "memory_total_mb": 81920.0},
        {"index": 1, "name": "Fake GPU 1", "uuid": "GPU-0001", "memory_total_mb": 81920.0},
    ]
    assert (nvml.inits, nvml.shutdowns) == (1, 1)
    assert gpu_inventory(nvml=FakeNvml(fail_init=True)) == []
    real = gpu_inventory()
    assert isinstance(real, list)
    for gpu in real:
        assert gpu["memory_total_mb"] > 0 and gpu["name"]


def test_one_sample_from_a_baseline_in_a_fresh_thread(mlops_home: Path) -> None:
    """A run shorter than the interval gets one sample taken in another thread: CPU use and
    rates are measured from the run's start, not from that thread's first psutil call."""
    import threading

    from prefect_mlops.tracking.capture.telemetry import read_counters

    client = TrackingClient()
    run_id = _run(client)
    baseline = read_counters()
    deadline = time.thread_time() + 0.4
    while time.thread_time() < deadline:  # one core busy for 0.4 s of CPU time
        pass
    got: dict[str, float] = {}

    def take() -> None:
        got.update(SystemSampler(client, run_id, baseline=baseline, gpus=False).sample_once())

    worker = threading.Thread(target=take)
    worker.start()
    worker.join()
    ncpu = psutil.cpu_count() or 1
    assert got["system/cpu_percent"] >= 100 / ncpu * 0.5, got  # at least our busy core
    assert MACHINE_KEYS | _expected_rate_keys() <= set(got)
    history = client.get_metric_history(run_id, "system/cpu_percent")
    assert [(m.step, m.value) for m in history] == [(0, got["system/cpu_percent"])]
