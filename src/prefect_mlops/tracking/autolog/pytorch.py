"""PyTorch auto-logging: existing TensorBoard code gets tracked, checkpoints get recorded.

``SummaryWriter`` (``torch.utils.tensorboard`` and, when installed, ``tensorboardX``) keeps
writing its event files; each call is also recorded on the active run:

- ``add_scalar(tag, value, step)`` -> metric ``tag`` at ``step``;
- ``add_scalars(main, {sub: value}, step)`` -> metrics ``main/sub``;
- ``add_histogram(tag, values, step)`` -> a histogram of ``values`` at ``step``;
- ``add_image(tag, img, step, dataformats=...)`` -> ``tensorboard/images/<tag>/step_<n>.png``.

Tags are made valid keys (characters other than letters, digits, ``_ - . / space`` become
``_``). Like the ``log_*`` functions, a writer call with no active run starts one.

``torch.save(obj, path)`` is recorded on the active run (it never starts one): the file is
uploaded as ``checkpoints/<file name>`` when it is at most ``max_artifact_mb`` (and
``log_models`` is on), and the tags ``checkpoint.<name>.path``, ``.size``, ``.sha256`` and
``.uploaded`` are set either way. Saves to file objects are left alone.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from prefect_mlops.tracking import fluent
from prefect_mlops.tracking.autolog import AutologConfig
from prefect_mlops.tracking.autolog._common import AttributePatches, safe_hook, safe_key
from prefect_mlops.tracking.entities import RunTag

LIBRARY = "torch"
SUPPORTED = ">=2.0,<3"
DISTRIBUTIONS = ("torch",)

logger = logging.getLogger("prefect_mlops.autolog")

_WRITER_MODULES = ("torch.utils.tensorboard", "tensorboardX")
_WRITER_METHODS = ("add_scalar", "add_scalars", "add_histogram", "add_image")
_ORIGINAL_ATTR = "__prefect_mlops_original__"

_config: AutologConfig | None = None
_patches = AttributePatches(_ORIGINAL_ATTR)
_lock = threading.Lock()
_state = threading.local()


# -- helpers ---------------------------------------------------------------------------------


def _artifact_segment(tag: object) -> str:
    """``tag`` as a relative artifact folder (``/`` kept, ``.``/``..`` parts neutralised)."""
    parts = [p for p in safe_key(tag).split("/") if p.strip()]
    parts = ["_" if p in (".", "..") else p for p in parts]
    return "/".join(parts) or "_"


def _config_now() -> AutologConfig:
    """The config of the latest `autolog()` call while we are installed through it."""
    from prefect_mlops.tracking import autolog as package

    if "pytorch" in package.installed():
        return package.current_config()
    return _config or package.current_config()


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name)


def _step(value: Any) -> int | None:
    if value is None:
        return None
    if hasattr(value, "item"):  # 0-d tensors and numpy scalars
        value = value.item()
    return int(value)


def _timestamp(walltime: Any) -> int | None:
    return None if walltime is None else int(float(walltime) * 1000)


def _to_numpy(value: Any) -> Any:
    import numpy as np

    torch = importlib.import_module("torch")
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        if tensor.is_floating_point() and tensor.dtype not in (torch.float32, torch.float64):
            tensor = tensor.float()  # bfloat16/float16 have no (or lossy) numpy twins
        return tensor.numpy()
    return np.asarray(value)


def _scalar(value: Any) -> float:
    if hasattr(value, "item"):
        value = value.item()
    return float(value)


def _image_array(image: Any, dataformats: str | None) -> Any:
    """An (H, W) or (H, W, C) uint8 array, as TensorBoard would draw ``image``."""
    import numpy as np

    array = _to_numpy(image)
    fmt = (dataformats or "CHW").upper()
    if array.ndim != len(fmt) or len(set(fmt)) != len(fmt):
        raise ValueError(f"image of shape {array.shape} does not match dataformats {fmt!r}")
    if len(fmt) == 4:  # NCHW, NHWC...: a grid, as TensorBoard's make_grid draws it
        array = array.transpose([fmt.index(c) for c in "NHWC"])
        count, height, width, channels = array.shape
        cols = math.ceil(math.sqrt(count))
        rows = math.ceil(count / cols)
        grid = np.zeros((rows * height, cols * width, channels), dtype=array.dtype)
        for i in range(count):
            r, c = divmod(i, cols)
            grid[r * height : (r + 1) * height, c * width : (c + 1) * width] = array[i]
        array = grid
    elif len(fmt) == 3:
        array = array.transpose([fmt.index(c) for c in "HWC"])
    elif len(fmt) == 2:
        array = array.transpose([fmt.index(c) for c in "HW"])
    else:
        raise ValueError(f"unsupported dataformats {fmt!r}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype != np.uint8:  # TensorBoard's rule: non-uint8 images are in [0, 1]
        array = (array.astype(np.float32) * 255).clip(0, 255).astype(np.uint8)
    return array


def _run_id(create: bool) -> str:

    return fluent.current_run_id(create=create)


# -- SummaryWriter hooks ---------------------------------------------------------------------


@safe_hook("pytorch.add_scalar")
def _record_scalar(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:

    tag, value = _arg(args, kwargs, 0, "tag"), _arg(args, kwargs, 1, "scalar_value")
    step = _step(_arg(args, kwargs, 2, "global_step"))
    timestamp = _timestamp(_arg(args, kwargs, 3, "walltime"))
    fluent.get_client().log_metric(
        _run_id(create=True), safe_key(tag), _scalar(value), timestamp, step
    )


@safe_hook("pytorch.add_scalars")
def _record_scalars(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:

    main_tag = _arg(args, kwargs, 0, "main_tag")
    values = _arg(args, kwargs, 1, "tag_scalar_dict") or {}
    step = _step(_arg(args, kwargs, 2, "global_step"))
    timestamp = _timestamp(_arg(args, kwargs, 3, "walltime"))
    client, run_id = fluent.get_client(), _run_id(create=True)
    for sub, value in values.items():
        key = safe_key(f"{main_tag}/{sub}")
        client.log_metric(run_id, key, _scalar(value), timestamp, step)


@safe_hook("pytorch.add_histogram")
def _record_histogram(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:

    tag, values = _arg(args, kwargs, 0, "tag"), _arg(args, kwargs, 1, "values")
    step = _step(_arg(args, kwargs, 2, "global_step"))
    bins = _arg(args, kwargs, 3, "bins")
    timestamp = _timestamp(_arg(args, kwargs, 4, "walltime"))
    # TensorBoard's default bins ("tensorflow") and other names have no numpy twin here.
    count = bins if isinstance(bins, int) and not isinstance(bins, bool) and bins > 0 else 30
    fluent.get_client().log_histogram(
        _run_id(create=True),
        safe_key(tag),
        _to_numpy(values),
        step=step,
        bins=count,
        timestamp=timestamp,
    )


@safe_hook("pytorch.add_image")
def _record_image(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:

    tag, image = _arg(args, kwargs, 0, "tag"), _arg(args, kwargs, 1, "img_tensor")
    step = _step(_arg(args, kwargs, 2, "global_step"))
    dataformats = _arg(args, kwargs, 4, "dataformats")
    array = _image_array(image, dataformats)
    path = f"tensorboard/images/{_artifact_segment(tag)}/step_{step or 0}.png"
    fluent.get_client().log_image(_run_id(create=True), array, path)


_RECORDERS: dict[str, Callable[[tuple[Any, ...], Mapping[str, Any]], None]] = {
    "add_scalar": _record_scalar,
    "add_scalars": _record_scalars,
    "add_histogram": _record_histogram,
    "add_image": _record_image,
}


def _wrap_writer_method(original: Callable[..., Any], name: str) -> Callable[..., Any]:
    recorder = _RECORDERS[name]

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_state, "busy", False):  # a writer method called by another one
            return original(self, *args, **kwargs)
        _state.busy = True
        try:
            result = original(self, *args, **kwargs)
            recorder(args, kwargs)
        finally:
            _state.busy = False
        return result

    setattr(wrapper, _ORIGINAL_ATTR, original)
    return wrapper


# -- torch.save ------------------------------------------------------------------------------


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@safe_hook("pytorch.save")
def _record_checkpoint(target: str | os.PathLike[Any]) -> None:

    run_id = _run_id(create=False)
    if not run_id:
        return
    path = os.path.abspath(os.fsdecode(target))
    if not os.path.isfile(path):
        return
    config = _config_now()
    client = fluent.get_client()
    size = os.path.getsize(path)
    upload = config.log_models and size <= config.max_artifact_mb * 1024 * 1024
    digest = None
    if upload:
        digest = client.log_artifact(run_id, path, "checkpoints").sha256
    if digest is None:
        digest = _sha256(path)
    name = safe_key(Path(path).name)
    tags = {"path": path, "size": str(size), "sha256": digest, "uploaded": str(upload).lower()}
    client.log_batch(
        run_id, tags=[RunTag(safe_key(f"checkpoint.{name}.{k}"), v) for k, v in tags.items()]
    )


def _wrap_save(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def save(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        target = _arg(args, kwargs, 1, "f")
        if isinstance(target, (str, os.PathLike)):
            _record_checkpoint(target)
        return result

    setattr(save, _ORIGINAL_ATTR, original)
    return save


# -- install / uninstall ---------------------------------------------------------------------


def _writer_classes() -> list[type]:
    classes = []
    for module_name in _WRITER_MODULES:
        top = module_name.split(".")[0]
        if importlib.util.find_spec(top) is None:
            continue
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # e.g. torch.utils.tensorboard without tensorboard
            logger.debug("prefect-mlops autolog: %s unavailable: %s", module_name, exc)
            continue
        writer = getattr(module, "SummaryWriter", None)
        if isinstance(writer, type) and writer not in classes:
            classes.append(writer)
    return classes


def install(config: AutologConfig) -> None:
    """Patch ``SummaryWriter`` and ``torch.save`` (once)."""
    global _config
    with _lock:
        _config = config
        if _patches:
            return
        torch = importlib.import_module("torch")
        try:
            for writer in _writer_classes():
                for method in _WRITER_METHODS:
                    if callable(getattr(writer, method, None)):
                        _patches.apply(
                            writer, method, functools.partial(_wrap_writer_method, name=method)
                        )
            _patches.apply(torch, "save", _wrap_save)
        except BaseException:
            _patches.restore()
            raise


def uninstall() -> None:
    """Put every patched attribute back exactly as it was."""
    global _config
    with _lock:
        _patches.restore()
        _config = None
