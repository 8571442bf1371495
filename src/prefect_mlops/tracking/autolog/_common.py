"""Helpers shared by the autolog integrations."""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from prefect_mlops.tracking import fluent
from prefect_mlops.tracking.entities import RunStatus
from prefect_mlops.tracking.validation import (
    INVALID_KEY_CHARACTER,
    MAX_KEY_LENGTH,
    MAX_PARAM_VALUE_LENGTH,
    stringify,
)

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

    run_id = fluent.current_run_id(create=False)
    if run_id:
        return TrainingRun(run_id, False)
    return TrainingRun(fluent.start_run().run_id, True)


def open_run(integration: str) -> TrainingRun | None:
    """The active run (in a flow, the flow run's run); with none, a new run that `close_run`
    ends, as MLflow's autolog does. None if that failed (the failure is logged once)."""
    run: TrainingRun | None = call_safely(f"{integration}: start run", _open_run)
    return run


def _close_run(run: TrainingRun, error: BaseException | None) -> None:
    if run.owned:
        fluent.end_run(RunStatus.after(error), run_id=run.run_id)


def close_run(integration: str, run: TrainingRun, error: BaseException | None = None) -> None:
    """End ``run`` if autolog started it: FINISHED, or FAILED/KILLED after ``error``."""
    call_safely(f"{integration}: end run", _close_run, run, error)


def param_text(value: Any) -> str | None:
    """How a param value is stored, or None to leave it out (too long for a param)."""

    text = stringify(value)
    return text if len(text) <= MAX_PARAM_VALUE_LENGTH else None


def safe_key(name: object) -> str:
    """``name`` (a TensorBoard tag, a Keras metric name) as a valid key: characters a key may
    not hold become ``_``, empty, ``.`` and ``..`` path segments are dropped (``train//loss``
    is ``train/loss``), at most 250 characters."""
    text = INVALID_KEY_CHARACTER.sub("_", str(name))
    parts = [p for p in text.split("/") if p not in ("", ".", "..")]
    key = "/".join(parts)[:MAX_KEY_LENGTH].rstrip("/")
    return key or "_"


def metric_key(data: str, metric: str) -> str:
    """``<data>-<metric>``, any character a metric key may not hold (``@``) replaced by ``_``."""
    return safe_key(f"{data}-{metric}")


def log_model_file(run_id: str, write: Callable[[Path], None], filename: str) -> bool:
    """``write(path)`` a model file in a temporary folder and log it as ``model/<filename>``,
    unless it is larger than ``max_artifact_mb``. True if it was logged."""
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


# -- patching a library's ``train`` (XGBoost, LightGBM) ----------------------------------------


class TrainPatch:
    """Wraps ``train`` in each of ``targets`` (a library re-exports it from several modules)
    so the outermost call logs params, trains with ``make_callback``'s callback added, then
    runs ``after`` loggers on the returned booster and logs the model."""

    ORIGINAL = "__prefect_mlops_original__"

    def __init__(
        self,
        integration: str,
        targets: tuple[str, ...],
        log_params: Callable[[str, Any], None],
        make_callback: Callable[[str], Any],
        after: list[tuple[str, Callable[[str, Any], None]]],
        log_model: Callable[[str, Any], None],
    ) -> None:
        self.integration = integration
        self.targets = targets
        self.log_params = log_params
        self.make_callback = make_callback
        self.after = after
        self.log_model = log_model
        self.patches = AttributePatches(self.ORIGINAL)
        self.lock = threading.Lock()
        self.active = False

    def install(self) -> None:
        """Patch ``train`` in every target module that exposes it (idempotent)."""
        import importlib

        with self.lock:
            if not self.patches:
                wrapped: dict[int, Callable[..., Any]] = {}

                def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
                    if id(original) not in wrapped:  # one wrapper for a re-exported train
                        wrapped[id(original)] = self._patched(original)
                    return wrapped[id(original)]

                for i, name in enumerate(self.targets):
                    try:
                        module: Any = importlib.import_module(name)
                    except ImportError:
                        if i == 0:
                            raise
                        continue  # e.g. the scikit-learn wrapper, where it cannot load
                    if getattr(module, "train", None) is not None:
                        self.patches.apply(module, "train", wrap)
            self.active = True

    def uninstall(self) -> None:
        """Put every original ``train`` back."""
        with self.lock:
            self.active = False
            self.patches.restore()

    def _patched(self, original: Callable[..., Any]) -> Callable[..., Any]:
        import inspect

        signature = inspect.signature(original)
        name = self.integration

        @functools.wraps(original)
        def train(*args: Any, **kwargs: Any) -> Any:
            with training_session() as outermost:
                if not (outermost and self.active):
                    return original(*args, **kwargs)
                try:
                    bound = signature.bind(*args, **kwargs)
                except TypeError:
                    return original(*args, **kwargs)  # the user's own error, raised by train
                run = open_run(name)
                if run is None:
                    return original(*args, **kwargs)
                call_safely(f"{name}: params", self.log_params, run.run_id, bound)
                callback = call_safely(f"{name}: callback", self.make_callback, run.run_id)
                if callback is not None:
                    callbacks = bound.arguments.get("callbacks")
                    bound.arguments["callbacks"] = [*(callbacks or ()), callback]
                try:
                    booster = original(*bound.args, **bound.kwargs)
                except BaseException as exc:
                    close_run(name, run, exc)
                    raise
                for what, logger_fn in self.after:
                    call_safely(f"{name}: {what}", logger_fn, run.run_id, booster)
                from prefect_mlops.tracking.autolog import current_config

                if current_config().log_models:
                    call_safely(f"{name}: model", self.log_model, run.run_id, booster)
                close_run(name, run)
                return booster

        setattr(train, self.ORIGINAL, original)
        return train


class AttributePatches:
    """Attributes replaced on classes or modules, restorable exactly: an attribute the owner
    only inherited is deleted again rather than set to the inherited value."""

    _MISSING = object()

    def __init__(self, marker: str = "__prefect_mlops_original__") -> None:
        self.marker = marker  # set on our wrappers; a wrapped attribute is not wrapped twice
        self._done: list[tuple[Any, str, Any]] = []  # (owner, name, owner.__dict__ before)

    def __bool__(self) -> bool:
        return bool(self._done)

    def apply(
        self, owner: Any, name: str, make: Callable[[Any], Any], *, own_only: bool = False
    ) -> None:
        """Replace ``owner.name`` by ``make(current value)``, unless it is one of our wrappers
        already (with ``own_only``, unless ``owner`` itself holds one: a subclass inheriting a
        wrapped method still gets a wrapper of its own)."""
        before = owner.__dict__.get(name, self._MISSING)
        current = getattr(owner, name)
        if hasattr(before if own_only else current, self.marker):
            return
        setattr(owner, name, make(current))
        self._done.append((owner, name, before))

    def restore(self) -> None:
        while self._done:
            owner, name, before = self._done.pop()
            if before is self._MISSING:
                try:
                    delattr(owner, name)
                except AttributeError:
                    pass
            else:
                setattr(owner, name, before)
