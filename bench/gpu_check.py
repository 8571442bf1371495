"""GPU telemetry check: a tiny PyTorch model trains on the GPU inside a tracked Prefect flow while
a `SystemSampler` logs system metrics; then the ``system/gpu0_*`` metrics are checked.

    .venv/bin/python bench/gpu_check.py               # needs an NVIDIA GPU (exit 2 without)
    .venv/bin/python bench/gpu_check.py --allow-cpu   # no GPU: train on CPU, check CPU metrics

It uses a temporary PREFECT_HOME and PREFECT_MLOPS_HOME, and needs no Prefect server: Prefect
starts a temporary one. Exit status: 0 all checks passed (or no GPU with ``--allow-cpu``),
1 a check failed, 2 no usable NVIDIA GPU. One GPU is assumed: PyTorch's ``cuda:0`` is NVML's
GPU 0 (set CUDA_VISIBLE_DEVICES to the first GPU on a machine with several).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Prefect and prefect-mlops read their settings on import: point both at a temporary home first.
WORKDIR = Path(tempfile.mkdtemp(prefix="gpu-check-"))
os.environ["PREFECT_HOME"] = str(WORKDIR / "prefect-home")
os.environ["PREFECT_MLOPS_HOME"] = str(WORKDIR / "mlops-home")
for _var in ("PREFECT_API_URL", "PREFECT_MLOPS_DATABASE_URL", "PREFECT_MLOPS_ARTIFACT_STORAGE"):
    os.environ.pop(_var, None)  # no API URL: Prefect runs the flow on a temporary server
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

MB = 1024 * 1024
GPU_FIELDS = ("utilization", "memory_used_mb", "memory_total_mb", "temperature_c", "power_w")
CPU_KEYS = ("cpu_percent", "memory_used_mb", "memory_percent", "process_rss_mb")


def say(text: str = "") -> None:
    print(text, flush=True)


def find_gpu() -> tuple[dict[str, Any] | None, str]:
    """(NVML's GPU 0, "") when NVML and PyTorch both see a GPU, else (None, why not)."""
    from prefect_mlops.tracking.capture.telemetry import gpu_inventory

    gpus = gpu_inventory()
    if not gpus:
        return None, "NVML sees no NVIDIA GPU (no driver, or nvidia-ml-py missing)"
    import torch

    if not torch.cuda.is_available():
        return None, f"NVML sees {gpus[0]['name']} but PyTorch {torch.__version__} has no CUDA"
    for gpu in gpus:
        say(f"  NVML GPU {gpu['index']}: {gpu['name']}, {gpu['memory_total_mb']:,.0f} MB")
    say(f"  PyTorch {torch.__version__}, cuda:0 = {torch.cuda.get_device_name(0)}")
    return gpus[0], ""


def train(seconds: float, device: str) -> dict[str, Any]:
    """Train an MLP on random data for ``seconds``; log the loss; return what was done."""
    import torch

    import prefect_mlops as mlops

    torch.manual_seed(0)
    width, batch = (4096, 8192) if device == "cuda" else (256, 256)
    model = torch.nn.Sequential(
        torch.nn.Linear(1024, width),
        torch.nn.ReLU(),
        torch.nn.Linear(width, width),
        torch.nn.ReLU(),
        torch.nn.Linear(width, 10),
    ).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(batch, 1024, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    step, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % 50 == 0:
            mlops.log_metric("train/loss", loss.item(), step=step)  # .item() syncs the GPU
    final = loss.item()
    reserved_mb = torch.cuda.max_memory_reserved() / MB if device == "cuda" else 0.0
    return {"steps": step, "seconds": time.monotonic() - started, "loss": final, "mb": reserved_mb}


def run_flow(seconds: float, device: str, interval: float) -> tuple[str, dict[str, Any]]:
    from prefect import flow

    import prefect_mlops as mlops
    from prefect_mlops.tracking.capture.telemetry import SystemSampler
    from prefect_mlops.tracking.fluent import current_run_id

    @flow(name="gpu-check")
    def gpu_check(seconds: float, device: str) -> tuple[str, dict[str, Any]]:
        mlops.log_param("device", device)
        run_id = current_run_id()
        with SystemSampler(mlops.get_client(), run_id, interval=interval) as sampler:
            stats = train(seconds, device)
        stats["samples"] = sampler.samples
        return run_id, stats

    return gpu_check(seconds, device)


def summaries(run_id: str) -> dict[str, Any]:
    import prefect_mlops as mlops

    return {s.key: s for s in mlops.get_client().get_metric_summaries(run_id)}


def table(found: dict[str, Any], keys: list[str]) -> None:
    say(f"  {'metric':<30} {'count':>5} {'min':>11} {'max':>11} {'last':>11}")
    for key in keys:
        s = found.get(key)
        if s is None:
            say(f"  {key:<30} {'-':>5} {'(not logged)':>11}")
        else:
            say(f"  {key:<30} {s.count:>5} {s.min:>11.1f} {s.max:>11.1f} {s.last:>11.1f}")


def check_gpu(found: dict[str, Any], stats: dict[str, Any], gpu: dict[str, Any]) -> list[str]:
    """Failed checks, as sentences (empty when all pass)."""
    failures = []
    n = stats["samples"]
    for field in GPU_FIELDS:
        s = found.get(f"system/gpu0_{field}")
        if s is None and field in ("temperature_c", "power_w"):
            say(f"  note: gpu0 {field} was not logged (not supported by this GPU or driver)")
        elif s is None:
            failures.append(f"system/gpu0_{field} was not logged")
        elif s.count != n or s.step != n - 1:
            failures.append(f"system/gpu0_{field}: {s.count} points, last step {s.step}; want {n}")
    util = found.get("system/gpu0_utilization")
    if util is not None and util.max <= 0:
        failures.append("gpu0 utilization never rose above 0 % while the model trained")
    used, total = found.get("system/gpu0_memory_used_mb"), found.get("system/gpu0_memory_total_mb")
    if used is not None and total is not None:
        if abs(total.max - gpu["memory_total_mb"]) > 1:
            failures.append(
                f"gpu0 memory_total {total.max:.0f} MB != NVML's {gpu['memory_total_mb']}"
            )
        if not 0 < used.max <= total.max:
            failures.append(
                f"gpu0 memory_used max {used.max:.0f} MB is not in (0, {total.max:.0f}]"
            )
        if used.max < 0.9 * stats["mb"]:
            failures.append(
                f"gpu0 memory_used max {used.max:.0f} MB is below the {stats['mb']:.0f} MB "
                "PyTorch reserved while training"
            )
    if n < 5:
        failures.append(f"only {n} samples in {stats['seconds']:.0f} s of training")
    return failures


def check_cpu(found: dict[str, Any], stats: dict[str, Any]) -> list[str]:
    failures = []
    n = stats["samples"]
    for key in CPU_KEYS:
        s = found.get(f"system/{key}")
        if s is None or s.count != n:
            failures.append(f"system/{key}: {None if s is None else s.count} points; want {n}")
    if n < 2:
        failures.append(f"only {n} samples")
    gpu_keys = [k for k in found if k.startswith("system/gpu")]
    if gpu_keys:
        failures.append(f"GPU metrics logged without a GPU: {gpu_keys}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--allow-cpu", action="store_true", help="without a GPU, train on CPU and exit 0"
    )
    parser.add_argument("--seconds", type=float, help="training time (default 20; CPU: 5)")
    parser.add_argument("--interval", type=float, default=1.0, help="sampling interval, s")
    parser.add_argument("--keep", action="store_true", help=f"keep {WORKDIR}")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        say(f"GPU telemetry check (temporary homes under {WORKDIR})")
        gpu, why = find_gpu()
        if gpu is None:
            say(f"no NVIDIA GPU found: {why}")
            if not args.allow_cpu:
                say("FAILED: this check needs an NVIDIA GPU (--allow-cpu runs it on CPU)")
                return 2
            say("--allow-cpu: training on CPU, checking the CPU metrics only")
        device = "cpu" if gpu is None else "cuda"
        seconds = args.seconds or (20.0 if gpu else 5.0)
        say(f"training on {device} for {seconds:g} s in a Prefect flow, sampling every")
        say(f"  {args.interval:g} s (Prefect starts a temporary server first) ...")
        run_id, stats = run_flow(seconds, device, args.interval)
        say(
            f"  run {run_id}: {stats['steps']} steps in {stats['seconds']:.1f} s, "
            f"final loss {stats['loss']:.3f}, {stats['samples']} samples"
        )
        if gpu is not None:
            say(f"  PyTorch reserved at most {stats['mb']:,.0f} MB on the GPU")
        found = summaries(run_id)
        gpu_keys = [f"system/gpu0_{f}" for f in GPU_FIELDS]
        table(found, gpu_keys if gpu is not None else [f"system/{k}" for k in CPU_KEYS])
        if gpu is not None:
            say("  other system metrics:")
            table(found, sorted(k for k in found if k.startswith("system/") and "gpu" not in k))
        failures = check_gpu(found, stats, gpu) if gpu is not None else check_cpu(found, stats)
        for failure in failures:
            say(f"FAILED: {failure}")
        if failures:
            return 1
        if gpu is None:
            say(f"no NVIDIA GPU found; CPU telemetry OK ({time.monotonic() - started:.0f} s)")
        else:
            say(f"OK: gpu0 telemetry is plausible ({time.monotonic() - started:.0f} s)")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(WORKDIR, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
