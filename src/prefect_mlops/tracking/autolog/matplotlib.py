"""matplotlib auto-logging: figures saved or shown during a run become image artifacts.

- ``Figure.savefig(fname)`` / ``pyplot.savefig(fname)`` -> ``figures/<fname's stem>.png``
  (saves to in-memory buffers, which have no file name, are not recorded);
- ``pyplot.show()`` -> ``figures/figure_<n>.png`` for every open figure, ``n`` counting the
  figures shown in the run (showing the same figure again replaces its image). With the Agg
  backend ``show`` draws nothing, but the figures are still recorded.

Figures are recorded only while a run is active (one opened with ``start_run`` or the run of
the current Prefect flow run): a figure never starts a run on its own. The user's file is
written exactly as asked; the artifact is a PNG rendered from the same figure.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import re
import threading
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from prefect_mlops.tracking import fluent
from prefect_mlops.tracking.autolog import AutologConfig
from prefect_mlops.tracking.autolog._common import AttributePatches, safe_hook

LIBRARY = "matplotlib"
SUPPORTED = ">=3.5,<4"
DISTRIBUTIONS = ("matplotlib",)

logger = logging.getLogger("prefect_mlops.autolog")

_ORIGINAL_ATTR = "__prefect_mlops_original__"
_NAME_BAD = re.compile(r"[^A-Za-z0-9_\-. ]")

_config: AutologConfig | None = None
_patches = AttributePatches(_ORIGINAL_ATTR)
_lock = threading.Lock()
_state = threading.local()
#: figure -> (run id, n) of its ``figure_<n>`` name; per run, the last n handed out
_shown: weakref.WeakKeyDictionary[Any, tuple[str, int]] = weakref.WeakKeyDictionary()
_shown_count: dict[str, int] = {}


def _active_run_id() -> str:
    """The active run (``start_run`` or the flow run's run), or "" — never starts one."""

    return fluent.current_run_id(create=False)


def _figure_name(fname: Any) -> str | None:
    """The artifact name for a savefig target, or None for targets without a file name."""
    if isinstance(fname, (str, os.PathLike)):
        raw = os.fsdecode(fname)
    else:
        file_name = getattr(fname, "name", None)  # a real file object opened by the user
        if not isinstance(file_name, (str, bytes)) or not file_name:
            return None
        raw = os.fsdecode(file_name)
    stem = Path(raw).stem
    name = _NAME_BAD.sub("_", stem).strip(" .")
    return name[:200] or "figure"


def _log(run_id: str, figure: Any, name: str) -> None:

    fluent.get_client().log_figure(run_id, figure, f"figures/{name}.png")


@safe_hook("matplotlib.savefig")
def _record_saved(figure: Any, fname: Any) -> None:
    name = _figure_name(fname)
    if name is None:
        return
    run_id = _active_run_id()
    if run_id:
        _log(run_id, figure, name)


@safe_hook("matplotlib.show")
def _record_shown() -> None:
    run_id = _active_run_id()
    if not run_id:
        return
    from matplotlib._pylab_helpers import Gcf

    for manager in Gcf.get_all_fig_managers():
        figure = manager.canvas.figure
        seen = _shown.get(figure)
        if seen is not None and seen[0] == run_id:
            n = seen[1]
        else:
            n = _shown_count[run_id] = _shown_count.get(run_id, 0) + 1
            _shown[figure] = (run_id, n)
        _log(run_id, figure, f"figure_{n}")


def _fname(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    return args[0] if args else kwargs.get("fname")


def _guarded(original: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[bool, Any]:
    """Call ``original``; (True, result) when this is the outermost patched call."""
    if getattr(_state, "busy", False):
        return False, original(*args, **kwargs)
    _state.busy = True
    try:
        return True, original(*args, **kwargs)
    except BaseException:
        _state.busy = False
        raise


def _wrap_figure_savefig(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def savefig(self: Any, *args: Any, **kwargs: Any) -> Any:
        outer, result = _guarded(original, self, *args, **kwargs)
        if outer:
            try:
                _record_saved(self, _fname(args, kwargs))
            finally:
                _state.busy = False
        return result

    setattr(savefig, _ORIGINAL_ATTR, original)
    return savefig


def _wrap_pyplot_savefig(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def savefig(*args: Any, **kwargs: Any) -> Any:
        outer, result = _guarded(original, *args, **kwargs)
        if outer:
            try:
                pyplot = importlib.import_module("matplotlib.pyplot")
                _record_saved(pyplot.gcf(), _fname(args, kwargs))
            finally:
                _state.busy = False
        return result

    setattr(savefig, _ORIGINAL_ATTR, original)
    return savefig


def _wrap_show(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def show(*args: Any, **kwargs: Any) -> Any:
        if not getattr(_state, "busy", False):
            # Before the original: a blocking show closes the figures when it returns.
            _state.busy = True
            try:
                _record_shown()
            finally:
                _state.busy = False
        return original(*args, **kwargs)

    setattr(show, _ORIGINAL_ATTR, original)
    return show


def install(config: AutologConfig) -> None:
    """Patch ``Figure.savefig``, ``pyplot.savefig`` and ``pyplot.show`` (once)."""
    global _config
    with _lock:
        _config = config
        if _patches:
            return
        figure_module = importlib.import_module("matplotlib.figure")
        pyplot = importlib.import_module("matplotlib.pyplot")
        try:
            _patches.apply(figure_module.Figure, "savefig", _wrap_figure_savefig)
            _patches.apply(pyplot, "savefig", _wrap_pyplot_savefig)
            _patches.apply(pyplot, "show", _wrap_show)
        except BaseException:
            _patches.restore()
            raise


def uninstall() -> None:
    """Put every patched attribute back exactly as it was."""
    global _config
    with _lock:
        _patches.restore()
        _config = None
        _shown_count.clear()
