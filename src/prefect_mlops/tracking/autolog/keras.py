"""Keras auto-logging: ``Model.fit`` gets a callback that logs each epoch's ``logs``.

Every numeric entry of the ``logs`` dict Keras hands to ``on_epoch_end`` (``loss``,
``val_loss``, ``accuracy``...) is logged as a metric at ``step=epoch``. The callback is appended
to the ``callbacks`` given to ``fit`` (the caller's list is not modified). Like the ``log_*``
functions, a ``fit`` with no active run starts one. Works with Keras 3 and with the Keras 2
that TensorFlow 2.12-2.15 ships as ``keras``.
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from prefect_mlops.tracking.autolog import AutologConfig
from prefect_mlops.tracking.autolog._common import AttributePatches, safe_hook

LIBRARY = "keras"
SUPPORTED = ">=2.12,<4"
DISTRIBUTIONS = ("keras", "tensorflow")

logger = logging.getLogger("prefect_mlops.autolog")

_ORIGINAL_ATTR = "__prefect_mlops_original__"
_CALLBACK_MARK = "__prefect_mlops_callback__"
_KEY_BAD = re.compile(r"[^A-Za-z0-9_\-./ ]")
#: ``fit(x, y, batch_size, epochs, verbose, callbacks, ...)``: callbacks' position after self
_CALLBACKS_INDEX = 5

_config: AutologConfig | None = None
_patches = AttributePatches(_ORIGINAL_ATTR)
_callback_class: type | None = None
_lock = threading.Lock()


def sanitize_key(name: object) -> str:
    key = _KEY_BAD.sub("_", str(name))[:250]
    return key or "_"


def _number(value: Any) -> float | None:
    """``value`` as a float, or None for entries that are not single numbers."""
    if isinstance(value, (bool, str, bytes)):
        return None
    if hasattr(value, "numpy") and callable(value.numpy):  # eager tensors (TensorFlow, torch)
        try:
            value = value.numpy()
        except Exception:
            return None
    if hasattr(value, "item") and getattr(value, "size", 1) == 1:
        value = value.item()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


@safe_hook("keras.on_epoch_end")
def _log_epoch(run_id: str, epoch: int, logs: Mapping[str, Any] | None) -> None:
    from prefect_mlops.tracking import fluent

    client = fluent.get_client()
    for name, value in (logs or {}).items():
        number = _number(value)
        if number is not None:
            client.log_metric(
                run_id or fluent._current_run_id(), sanitize_key(name), number, None, int(epoch)
            )


@safe_hook("keras.on_train_begin")
def _resolve_run() -> str:
    from prefect_mlops.tracking import fluent

    return fluent._current_run_id()


def _make_callback_class(keras: Any) -> type:
    base = keras.callbacks.Callback

    class PrefectMlopsCallback(base):  # type: ignore[misc, valid-type]
        """Logs the metrics of every epoch to the active prefect-mlops run."""

        def __init__(self) -> None:
            super().__init__()
            self._run_id = ""

        def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
            self._run_id = _resolve_run() or ""

        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            _log_epoch(self._run_id, epoch, logs)

    setattr(PrefectMlopsCallback, _CALLBACK_MARK, True)
    return PrefectMlopsCallback


def _with_callback(callbacks: Any) -> Any:
    """The caller's callbacks plus ours; unchanged when ours is there or the value is odd."""
    assert _callback_class is not None
    if callbacks is None:
        return [_callback_class()]
    if not isinstance(callbacks, (list, tuple)):
        return callbacks  # e.g. a prebuilt CallbackList: leave it as the caller built it
    if any(getattr(type(c), _CALLBACK_MARK, False) for c in callbacks):
        return callbacks
    return [*callbacks, _callback_class()]


def _wrap_fit(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            if len(args) > _CALLBACKS_INDEX:
                args = (
                    *args[:_CALLBACKS_INDEX],
                    _with_callback(args[_CALLBACKS_INDEX]),
                    *args[_CALLBACKS_INDEX + 1 :],
                )
            else:
                kwargs["callbacks"] = _with_callback(kwargs.get("callbacks"))
        except Exception as exc:  # our code: never break the user's fit
            logger.warning("prefect-mlops autolog (keras.fit) failed and is skipped: %r", exc)
        return original(self, *args, **kwargs)

    setattr(fit, _ORIGINAL_ATTR, original)
    return fit


def install(config: AutologConfig) -> None:
    """Patch ``keras.Model.fit`` (once)."""
    global _config, _callback_class
    with _lock:
        _config = config
        if _patches:
            return
        keras = importlib.import_module("keras")
        _callback_class = _make_callback_class(keras)
        _patches.apply(keras.Model, "fit", _wrap_fit)


def uninstall() -> None:
    """Put ``Model.fit`` back exactly as it was."""
    global _config
    with _lock:
        _patches.restore()
        _config = None
