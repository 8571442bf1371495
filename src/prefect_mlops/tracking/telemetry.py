"""System metrics sampled into a run: CPU, memory, disk and network I/O, NVIDIA GPUs.

    with SystemSampler(mlops.get_client(), run_id, interval=1.0):
        train()

A daemon thread takes a sample every ``interval`` seconds and logs it through the client's
buffered `log_metric` (step = sample index 0, 1, 2, ...):

- ``system/cpu_percent`` (whole machine, 0-100), ``system/memory_used_mb``,
  ``system/memory_percent``, ``system/process_rss_mb`` (this process and its children);
- ``system/disk_read_mb_s``, ``system/disk_write_mb_s``, ``system/net_sent_mb_s``,
  ``system/net_recv_mb_s``: rates over the real time elapsed since the previous sample;
- for every NVIDIA GPU ``i`` (through NVML, package ``nvidia-ml-py``, imported lazily):
  ``system/gpu{i}_utilization``, ``system/gpu{i}_memory_used_mb``,
  ``system/gpu{i}_memory_total_mb``, ``system/gpu{i}_temperature_c``, ``system/gpu{i}_power_w``.

Without an NVIDIA driver only the machine metrics are logged, and one debug message says so. A
GPU query that fails (power readings unsupported, say) skips that metric only. Sampling reads
counters in-process (psutil, NVML): no subprocess is ever started. MB here is MiB (2**20 bytes),
as ``nvidia-smi`` reports memory.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import psutil

from prefect_mlops.core.errors import InvalidInput
from prefect_mlops.core.ids import now_ms

if TYPE_CHECKING:
    from prefect_mlops.tracking.client import TrackingClient

logger = logging.getLogger("prefect_mlops.telemetry")

MB = 1024 * 1024
DEFAULT_INTERVAL = 5.0
PREFIX = "system/"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class Counters:
    """Cumulative machine counters at one moment: rates and CPU use are the differences
    between two of these over the time between them."""

    time: float
    cpu: tuple[float, float] | None  # (busy, total) CPU seconds of the whole machine
    disk: tuple[int, int] | None  # bytes read, written
    net: tuple[int, int] | None  # bytes sent, received


def read_counters() -> Counters:
    """The machine's counters now (a fraction of a millisecond: counter reads only)."""
    return Counters(time.monotonic(), _cpu(), _disk(), _net())


def _load_nvml(nvml: Any = None) -> Any:
    """The NVML module, initialised (raises when the package or the driver is missing)."""
    if nvml is None:
        import pynvml  # nvidia-ml-py; imported only when GPUs are asked for

        nvml = pynvml
    nvml.nvmlInit()
    return nvml


def _shutdown(nvml: Any) -> None:
    try:
        nvml.nvmlShutdown()
    except Exception:  # the driver went away meanwhile: nothing left to release
        pass


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def gpu_inventory(*, nvml: Any = None) -> list[dict[str, Any]]:
    """The NVIDIA GPUs NVML sees: ``index``, ``name``, ``uuid`` and ``memory_total_mb`` each.

    An empty list when there is no NVIDIA driver (or no ``nvidia-ml-py``). ``nvml`` is a test
    seam: a stand-in for the ``pynvml`` module.
    """
    try:
        lib = _load_nvml(nvml)
    except Exception as exc:
        logger.debug("No NVIDIA GPU: NVML is unavailable (%s).", exc)
        return []
    try:
        gpus = []
        for index in range(lib.nvmlDeviceGetCount()):
            handle = lib.nvmlDeviceGetHandleByIndex(index)
            try:
                uuid: str | None = _text(lib.nvmlDeviceGetUUID(handle))
            except Exception:
                uuid = None
            gpus.append(
                {
                    "index": index,
                    "name": _text(lib.nvmlDeviceGetName(handle)),
                    "uuid": uuid,
                    "memory_total_mb": lib.nvmlDeviceGetMemoryInfo(handle).total / MB,
                }
            )
        return gpus
    finally:
        _shutdown(lib)


class SystemSampler:
    """Log system metrics into ``run_id`` every ``interval`` seconds from a daemon thread.

    ``interval`` defaults to the ``telemetry_interval`` setting (5 s). ``gpus=False`` leaves
    NVML alone. ``nvml`` is a test seam only: a stand-in for the ``pynvml`` module, so that GPU
    failure handling can be tested without a GPU; real code leaves it ``None``.

    The first sample is taken one interval after `start` (rates need two readings); `stop` takes
    no final sample. `sample` takes one at any time, from any thread; `sample_once` does so
    without a thread, GPUs included (a run shorter than one interval). ``baseline`` (from
    `read_counters`) is where rates and CPU use start from: by default, `start`.
    """

    def __init__(
        self,
        client: TrackingClient,
        run_id: str,
        interval: float | None = None,
        *,
        gpus: bool = True,
        nvml: Any = None,
        baseline: Counters | None = None,
    ) -> None:
        if interval is None:
            settings = getattr(client, "settings", None)
            interval = float(getattr(settings, "telemetry_interval", DEFAULT_INTERVAL))
        if not (interval > 0 and math.isfinite(interval)):
            raise InvalidInput(f"Telemetry interval must be > 0 seconds, got {interval!r}.")
        self.client = client
        self.run_id = run_id
        self.interval = float(interval)
        self.gpus = gpus
        self._nvml_module = nvml
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._reported: set[tuple[int, str]] = set()  # GPU queries whose failure was logged
        self._step = 0
        self._lock = threading.Lock()  # one sample at a time
        self._state_lock = threading.Lock()  # start/stop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed = False
        self._process = psutil.Process()
        # Linux lists each thread's children in /proc: walking them costs a few file reads per
        # process of ours, where psutil's children() reads the stat file of every process.
        pid = self._process.pid
        self._proc_children = os.path.exists(f"/proc/{pid}/task/{pid}/children")
        self._last: Counters | None = baseline

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def samples(self) -> int:
        """How many samples were logged so far (the next sample's step)."""
        return self._step

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def gpu_count(self) -> int:
        """GPUs being sampled (0 before `start` and without an NVIDIA driver)."""
        return len(self._handles)

    def start(self) -> SystemSampler:
        """Start the sampling thread (a no-op while it runs; a stopped sampler stays stopped)."""
        with self._state_lock:
            if self._stop.is_set():
                raise InvalidInput("A stopped SystemSampler cannot be restarted.")
            if self._thread is not None:
                return self
            self.client.require_writable(self.run_id)  # fail here, not in the thread
            if self.gpus:
                self._open_gpus()
            if self._last is None:
                self._last = read_counters()
            self._thread = threading.Thread(
                target=self._loop, name=f"prefect-mlops-telemetry-{self.run_id[:8]}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and wait for it; no final sample. Safe to call more than once."""
        with self._state_lock:
            self._stop.set()
            thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                thread.join()
            with self._lock:
                if self._nvml is not None:
                    _shutdown(self._nvml)
                    self._nvml, self._handles = None, []

    def __enter__(self) -> SystemSampler:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _open_gpus(self) -> None:
        try:
            nvml = _load_nvml(self._nvml_module)
        except Exception as exc:
            logger.debug("No NVIDIA GPU (%s): logging CPU and system metrics only.", exc)
            return
        try:
            self._handles = [
                nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())
            ]
        except Exception as exc:
            logger.debug("NVML lists no usable GPU (%s): logging CPU and system metrics only.", exc)
            _shutdown(nvml)
            return
        self._nvml = nvml
        if not self._handles:
            logger.debug("NVML found no GPU: logging CPU and system metrics only.")

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:
                if not self._failed:  # once: a dead run or database fails every sample alike
                    self._failed = True
                    logger.warning(
                        "System metrics for run %s could not be logged; retrying each interval.",
                        self.run_id,
                        exc_info=True,
                    )

    # -- sampling --------------------------------------------------------------------------------

    def sample(self) -> dict[str, float]:
        """Take one sample now and log it with the next step; returns what was logged."""
        with self._lock:
            values = self._read()
            step, timestamp = self._step, now_ms()
            for key, value in values.items():
                self.client.log_metric(self.run_id, key, value, timestamp, step)
            self._step += 1
            return values

    def sample_once(self) -> dict[str, float]:
        """One sample without the thread: GPUs are opened for it and closed again."""
        with self._state_lock:
            opened = self.gpus and self._nvml is None and not self._stop.is_set()
            if opened:
                self._open_gpus()
            try:
                return self.sample()
            finally:
                if opened and self._nvml is not None:
                    with self._lock:
                        _shutdown(self._nvml)
                        self._nvml, self._handles = None, []

    def _read(self) -> dict[str, float]:
        now, before = read_counters(), self._last
        self._last = now
        memory = psutil.virtual_memory()
        values = {
            f"{PREFIX}memory_used_mb": memory.used / MB,
            f"{PREFIX}memory_percent": memory.percent,
            f"{PREFIX}process_rss_mb": self._rss() / MB,
        }
        if before is not None:
            if now.cpu is not None and before.cpu is not None:
                values[f"{PREFIX}cpu_percent"] = _cpu_percent(now.cpu, before.cpu)
            elapsed = max(now.time - before.time, 1e-9)
            values.update(_rates(now.disk, before.disk, elapsed, "disk_read", "disk_write"))
            values.update(_rates(now.net, before.net, elapsed, "net_sent", "net_recv"))
        if self._handles:
            values.update(self._read_gpus())
        return values

    def _rss(self) -> int:
        if self._proc_children:
            try:
                return _proc_tree_rss(self._process.pid)
            except OSError:  # /proc went odd: fall back for good
                self._proc_children = False
        rss = self._process.memory_info().rss
        try:
            children = self._process.children(recursive=True)  # scans every process
        except psutil.Error:
            return rss
        for child in children:
            try:
                rss += child.memory_info().rss
            except psutil.Error:  # exited or not ours to read: skip it
                pass
        return rss

    def _read_gpus(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for i, handle in enumerate(self._handles):
            for name, query in GPU_QUERIES:
                try:
                    got = query(self._nvml, handle)
                except Exception as exc:
                    if (i, name) not in self._reported:  # say it once per GPU and query
                        self._reported.add((i, name))
                        logger.debug("GPU %d: %s is not available (%s); skipped.", i, name, exc)
                    continue
                values.update({f"{PREFIX}gpu{i}_{key}": float(v) for key, v in got.items()})
        return values


def _gpu_utilization(nvml: Any, handle: Any) -> dict[str, float]:
    return {"utilization": nvml.nvmlDeviceGetUtilizationRates(handle).gpu}


def _gpu_memory(nvml: Any, handle: Any) -> dict[str, float]:
    info = nvml.nvmlDeviceGetMemoryInfo(handle)
    return {"memory_used_mb": info.used / MB, "memory_total_mb": info.total / MB}


def _gpu_temperature(nvml: Any, handle: Any) -> dict[str, float]:
    return {"temperature_c": nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)}


def _gpu_power(nvml: Any, handle: Any) -> dict[str, float]:
    return {"power_w": nvml.nvmlDeviceGetPowerUsage(handle) / 1000}  # milliwatts


# One NVML query each; a failing one skips its own metrics only.
GPU_QUERIES: tuple[tuple[str, Callable[[Any, Any], dict[str, float]]], ...] = (
    ("utilization", _gpu_utilization),
    ("memory", _gpu_memory),
    ("temperature", _gpu_temperature),
    ("power", _gpu_power),
)


def _proc_tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants, from /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            total = int(f.read().split()[1]) * PAGE_SIZE
    except (IndexError, ValueError) as exc:
        raise OSError(f"unreadable /proc/{pid}/statm: {exc}") from exc
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tids = os.listdir(f"/proc/{parent}/task")
        except OSError:  # exited meanwhile
            continue
        for tid in tids:
            try:
                with open(f"/proc/{parent}/task/{tid}/children", "rb") as f:
                    children = [int(c) for c in f.read().split()]
            except OSError:  # the thread just ended
                continue
            for child in children:
                try:
                    with open(f"/proc/{child}/statm", "rb") as f:
                        total += int(f.read().split()[1]) * PAGE_SIZE
                except (OSError, IndexError):  # the child just ended (or was reaped)
                    continue
                todo.append(child)
    return total


def _cpu() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the machine since boot, as psutil's cpu_percent counts
    them (idle and I/O wait are not busy; guest time is already inside user time)."""
    try:
        times = psutil.cpu_times()
    except Exception:
        return None
    total = sum(times)
    total -= getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


def _cpu_percent(now: tuple[float, float], before: tuple[float, float]) -> float:
    """Busy share of the machine's CPU time between two readings, 0-100 (0 when no clock
    tick passed between them, as psutil does)."""
    total = now[1] - before[1]
    if total <= 0:
        return 0.0
    return round(min(max((now[0] - before[0]) / total, 0.0), 1.0) * 100, 1)


_SYS_BLOCK = os.path.isdir("/sys/block")
_whole_disks: dict[str, bool] = {}  # device name -> whether it is a whole disk (not a partition)


def _is_whole_disk(name: str) -> bool:
    """Partitions and whole disks both appear in /proc/diskstats: summing only whole disks
    counts each byte once (psutil's own rule, cached here: it costs a stat per device)."""
    known = _whole_disks.get(name)
    if known is None:
        known = _whole_disks[name] = os.path.exists(f"/sys/block/{name.replace('/', '!')}")
    return known


def _disk() -> tuple[int, int] | None:
    try:
        per_disk = psutil.disk_io_counters(perdisk=True)
    except Exception:  # no /proc/diskstats in some sandboxes
        return None
    if not per_disk:
        return None
    if _SYS_BLOCK:
        per_disk = {name: c for name, c in per_disk.items() if _is_whole_disk(name)}
    read = sum(c.read_bytes for c in per_disk.values())
    written = sum(c.write_bytes for c in per_disk.values())
    return read, written


def _net() -> tuple[int, int] | None:
    try:
        counters = psutil.net_io_counters()
    except Exception:
        return None
    return None if counters is None else (counters.bytes_sent, counters.bytes_recv)


def _rates(
    now: tuple[int, int] | None, before: tuple[int, int] | None, seconds: float, *names: str
) -> dict[str, float]:
    """MB/s per counter pair; nothing when a reading is missing or a counter went back."""
    if now is None or before is None:
        return {}
    return {
        f"{PREFIX}{name}_mb_s": (new - old) / MB / seconds
        for name, new, old in zip(names, now, before, strict=True)
        if new >= old
    }
