"""Keras auto-logging: ``Model.fit`` records its params, every epoch's metrics and the model.

``install`` patches ``keras.Model.fit``. Each outermost ``fit`` records, to the active run (or
to a run started for it and ended after it, FAILED if ``fit`` raises):

- params: the ``fit`` arguments ``epochs``, ``batch_size``, ``validation_split``, ``shuffle``,
  ``initial_epoch``, ``steps_per_epoch``, ``validation_steps``, ``validation_batch_size`` and
  ``validation_freq`` (defaults included, ``None`` left out), ``optimizer_name`` (the
  optimizer's class) and ``learning_rate`` (a number) or ``learning_rate_schedule`` (the
  schedule's class); the tag ``mlflow.autologging=keras``;
- metrics: every numeric entry of the ``logs`` Keras hands to ``on_epoch_end`` (``loss``,
  ``val_loss``, ``accuracy``..., and ``learning_rate`` where a callback such as
  ``LearningRateScheduler`` puts it there) at ``step=epoch``, the epoch index Keras counts
  (from ``initial_epoch``), logged live by a callback appended to the ``callbacks`` given to
  ``fit`` (the caller's list is not modified; a prebuilt ``CallbackList`` is left alone);
- the model at ``model/model.keras`` (``log_models``; skipped past ``max_artifact_mb``).

A ``fit`` started inside a logged scikit-learn fit is not logged separately. Works with
Keras 3 (the tests run it on its PyTorch backend) and with the Keras 2 that TensorFlow
2.12-2.15 ships as ``keras``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import math
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from prefect_mlops.tracking import fluent
from prefect_mlops.tracking.autolog import AutologConfig
from prefect_mlops.tracking.autolog._common import (
    AttributePatches,
    call_safely,
    close_run,
    log_model_file,
    open_run,
    param_text,
    safe_hook,
    safe_key,
    training_session,
)
from prefect_mlops.tracking.entities import Param, RunTag

LIBRARY = "keras"
SUPPORTED = ">=2.12,<4"
DISTRIBUTIONS = ("keras", "tensorflow")

logger = logging.getLogger("prefect_mlops.autolog")

_ORIGINAL_ATTR = "__prefect_mlops_original__"
_CALLBACK_MARK = "__prefect_mlops_callback__"
#: ``fit`` arguments logged as params (with their defaults when not given)
_FIT_PARAMS = (
    "epochs",
    "batch_size",
    "validation_split",
    "shuffle",
    "initial_epoch",
    "steps_per_epoch",
    "validation_steps",
    "validation_batch_size",
    "validation_freq",
)

_config: AutologConfig | None = None
_patches = AttributePatches(_ORIGINAL_ATTR)
_callback_class: type | None = None
_lock = threading.Lock()


def _number(value: Any) -> float | None:
    """``value`` as a float, or None for entries that are not single numbers."""
    if isinstance(value, (bool, str, bytes)):
        return None
    if hasattr(value, "numpy") and callable(value.numpy):  # eager tensors (TensorFlow)
        try:
            value = value.numpy()
        except Exception:
            return None
    if hasattr(value, "item") and getattr(value, "size", 1) == 1:
        value = value.item()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


# -- params ------------------------------------------------------------------------------------


def _plain_rate(value: float) -> float:
    """A learning rate Keras keeps as float32 (0.009999999776482582) as the user wrote it
    (0.01): the shortest decimal that is the same float32. Other values are left alone."""
    import numpy as np

    single = np.float32(value)
    if not math.isfinite(value) or float(single) != value:
        return value
    return float(str(single))


def _optimizer_params(model: Any) -> dict[str, Any]:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:  # not compiled: fit raises its own error
        return {}
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
    values: dict[str, Any] = {"optimizer_name": type(optimizer).__name__}
    rate = optimizer.get_config().get("learning_rate")
    number = _number(rate)
    if number is not None:
        values["learning_rate"] = _plain_rate(number)
    elif isinstance(rate, Mapping) and "class_name" in rate:  # a serialized schedule
        values["learning_rate_schedule"] = rate["class_name"]
    return values


def _log_params(run_id: str, model: Any, bound: inspect.BoundArguments) -> None:

    parameters = bound.signature.parameters
    values: dict[str, Any] = {
        name: bound.arguments.get(name, parameters[name].default)
        for name in _FIT_PARAMS
        if name in parameters
    }
    values.update(_optimizer_params(model))
    texts = {
        k: param_text(v)
        for k, v in values.items()
        if v is not None and v is not inspect.Parameter.empty
    }
    client = fluent.get_client()
    client.log_batch(run_id, tags=[RunTag("mlflow.autologging", "keras")])
    client.log_batch(run_id, params=[Param(k, v) for k, v in texts.items() if v is not None])


# -- metrics -----------------------------------------------------------------------------------


@safe_hook("keras: metrics")
def _log_epoch(run_id: str, epoch: int, logs: Mapping[str, Any] | None) -> None:

    client = fluent.get_client()
    for name, value in (logs or {}).items():
        number = _number(value)
        if number is not None:
            client.log_metric(run_id, safe_key(name), number, None, int(epoch))


def _make_callback_class(keras: Any) -> type:
    base = keras.callbacks.Callback

    class PrefectMlopsCallback(base):  # type: ignore[misc, valid-type]
        """Logs the metrics of every epoch to a prefect-mlops run."""

        def __init__(self, run_id: str) -> None:
            super().__init__()
            self._run_id = run_id

        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            _log_epoch(self._run_id, epoch, logs)

    setattr(PrefectMlopsCallback, _CALLBACK_MARK, True)
    return PrefectMlopsCallback


def _with_callback(callbacks: Any, run_id: str) -> Any:
    """The caller's callbacks plus ours; unchanged when ours is there or the value is odd."""
    assert _callback_class is not None
    if callbacks is None:
        return [_callback_class(run_id)]
    if not isinstance(callbacks, (list, tuple)):
        return callbacks  # e.g. a prebuilt CallbackList: leave it as the caller built it
    if any(getattr(type(c), _CALLBACK_MARK, False) for c in callbacks):
        return callbacks
    return [*callbacks, _callback_class(run_id)]


# -- model -------------------------------------------------------------------------------------


def _log_model(run_id: str, model: Any) -> None:
    def write(path: Path) -> None:
        model.save(str(path))

    log_model_file(run_id, write, "model.keras")


# -- fit ---------------------------------------------------------------------------------------


def _wrap_fit(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        with training_session() as outermost:
            if not (outermost and _config is not None):
                return original(self, *args, **kwargs)
            try:
                bound = signature.bind(self, *args, **kwargs)
            except TypeError:
                return original(self, *args, **kwargs)  # the user's own error, raised by fit
            run = open_run("keras")
            if run is None:
                return original(self, *args, **kwargs)
            call_safely("keras: params", _log_params, run.run_id, self, bound)
            callbacks = call_safely(
                "keras: callback", _with_callback, bound.arguments.get("callbacks"), run.run_id
            )
            if callbacks is not None:
                bound.arguments["callbacks"] = callbacks
            try:
                history = original(*bound.args, **bound.kwargs)
            except BaseException as exc:
                close_run("keras", run, exc)
                raise
            from prefect_mlops.tracking.autolog import current_config

            if current_config().log_models:
                call_safely("keras: model", _log_model, run.run_id, self)
            close_run("keras", run)
            return history

    setattr(fit, _ORIGINAL_ATTR, original)
    return fit


def install(config: AutologConfig) -> None:
    """Patch ``keras.Model.fit`` (once)."""
    global _config, _callback_class
    with _lock:
        if not _patches:
            keras = importlib.import_module("keras")
            _callback_class = _make_callback_class(keras)
            _patches.apply(keras.Model, "fit", _wrap_fit)
        _config = config


def uninstall() -> None:
    """Put ``Model.fit`` back exactly as it was; a ``fit`` kept from before logs no more."""
    global _config
    with _lock:
        _patches.restore()
        _config = None
