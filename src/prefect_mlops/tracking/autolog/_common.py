"""Helpers shared by the autolog integrations."""

from __future__ import annotations

import functools
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

logger = logging.getLogger("prefect_mlops.autolog")

F = TypeVar("F", bound=Callable[..., Any])
_reported: set[str] = set()


def safe_hook(name: str) -> Callable[[F], F]:
    """Run a hook; if it raises, log it once per ``name`` and return None instead.

    Use it for the code *we* add (recording params, metrics, models), never around the
    user's own call: the user's exceptions must propagate unchanged.
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if name not in _reported:
                    _reported.add(name)
                    logger.warning(
                        "prefect-mlops autolog (%s) failed and is skipped: %r", name, exc
                    )
                return None

        return wrapper  # type: ignore[return-value]

    return decorate


def reset_reported() -> None:
    _reported.clear()


# -- training runs, shared by the integrations --------------------------------------------

_MB = 1024 * 1024
_session_lock = threading.Lock()
_session_depth = 0
_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-./ ]")


@contextmanager
def training_session() -> Iterator[bool]:
    """Mark a training call; yields True only for the outermost one in the process.

    Process-wide rather than per thread: a meta-estimator may train its inner models in
    worker threads, and those must not log to the run the outer call logs to. Two separate
    trainings running at once in two threads therefore log only the first; the fluent API's
    active run is process-wide too, so both would otherwise write to one run.
    """
    global _session_depth
    with _session_lock:
        outermost = _session_depth == 0
        _session_depth += 1
    try:
        yield outermost
    finally:
        with _session_lock:
            _session_depth -= 1


def call_safely(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` under `safe_hook` ``name``: None (and one warning) on failure."""
    return safe_hook(name)(fn)(*args, **kwargs)


@dataclass(frozen=True)
class TrainingRun:
    """The run a training call logs to; ``owned`` when autolog started it for this call."""

    run_id: str
    owned: bool


def _open_run() -> TrainingRun:
    from prefect_mlops.tracking import fluent

    run_id = fluent._current_run_id(create=False)
    if run_id:
        return TrainingRun(run_id, False)
    return TrainingRun(fluent.start_run().run_id, True)


def open_run(integration: str) -> TrainingRun | None:
    """The active run (in a flow, the flow run's run); with none, a new run that `close_run`
    ends, as MLflow's autolog does. None if that failed (the failure is logged once)."""
    run: TrainingRun | None = call_safely(f"{integration}: start run", _open_run)
    return run


def _close_run(run: TrainingRun, error: BaseException | None) -> None:
    if not run.owned:
        return
    from prefect_mlops.tracking import fluent
    from prefect_mlops.tracking.entities import RunStatus

    if error is None:
        status = RunStatus.FINISHED
    elif isinstance(error, KeyboardInterrupt):
        status = RunStatus.KILLED
    else:
        status = RunStatus.FAILED
    fluent.end_run(status, run_id=run.run_id)


def close_run(integration: str, run: TrainingRun, error: BaseException | None = None) -> None:
    """End ``run`` if autolog started it: FINISHED, or FAILED/KILLED after ``error``."""
    call_safely(f"{integration}: end run", _close_run, run, error)


def param_text(value: Any) -> str | None:
    """How a param value is stored, or None to leave it out (too long for a param)."""
    from prefect_mlops.tracking.validation import MAX_PARAM_VALUE_LENGTH, stringify

    text = stringify(value)
    return text if len(text) <= MAX_PARAM_VALUE_LENGTH else None


def metric_key(data: str, metric: str) -> str:
    """``<data>-<metric>``, any character a metric key may not hold (``@``) replaced by ``_``."""
    return _BAD_KEY_CHARS.sub("_", f"{data}-{metric}")


def log_model_file(run_id: str, write: Callable[[Path], None], filename: str) -> bool:
    """``write(path)`` a model file in a temporary folder and log it as ``model/<filename>``,
    unless it is larger than ``max_artifact_mb``. True if it was logged."""
    from prefect_mlops.tracking import fluent
    from prefect_mlops.tracking.autolog import current_config

    limit_mb = current_config().max_artifact_mb
    with tempfile.TemporaryDirectory(prefix="mlops-autolog-") as tmp:
        path = Path(tmp) / filename
        write(path)
        size_mb = os.path.getsize(path) / _MB
        if size_mb > limit_mb:
            logger.warning(
                "prefect-mlops autolog: the model (%.1f MB) is larger than max_artifact_mb "
                "(%g MB); it is not logged.",
                size_mb,
                limit_mb,
            )
            return False
        fluent.get_client().log_artifact(run_id, path, "model")
    return True


# -- scikit-learn --------------------------------------------------------------------------------
