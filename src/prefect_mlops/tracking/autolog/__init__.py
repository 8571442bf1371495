"""Framework auto-logging, one module per library (``sklearn.py``, ``xgboost.py``, ...).

Every module has the same shape:

- ``LIBRARY``: the import name of the library it patches;
- ``SUPPORTED``: the versions it knows, as a PEP 440 specifier (e.g. ``">=1.3,<2"``);
- ``install(config) -> None``: patch the library (idempotent: installing twice patches once);
- ``uninstall() -> None``: restore the library exactly as it was.

`autolog()` installs every integration whose library the program has imported, and the others
as soon as their library is imported (checked when a tracked flow run or a run starts), so it
never imports a framework itself; an integration whose library version is outside
``SUPPORTED`` is skipped with one warning. Hooks never break user
code: wrap them with `safe_hook`, which logs a failure once and lets the user's call proceed.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

from prefect_mlops.core.errors import InvalidInput
from prefect_mlops.tracking import runtime
from prefect_mlops.tracking.flow_runs.auto_track import install_auto_tracking

logger = logging.getLogger("prefect_mlops.autolog")

#: integration name -> module path; the name is also what ``frameworks=`` accepts.
INTEGRATIONS: dict[str, str] = {
    name: f"prefect_mlops.tracking.autolog.{name}"
    for name in ("sklearn", "xgboost", "lightgbm", "pytorch", "keras", "matplotlib")
}


@dataclass(frozen=True)
class AutologConfig:
    """What integrations record; set through `autolog()`."""

    log_models: bool = True
    log_datasets: bool = True
    max_artifact_mb: float = 512.0
    log_child_runs: bool = False
    #: scikit-learn's ``training_score`` is computed on at most this many training rows (a
    #: seeded random subsample of larger sets); None scores every row
    max_score_rows: int | None = 10_000


_installed: dict[str, ModuleType] = {}
_wanted: set[str] = set()  # integrations to install once their library is imported
_config = AutologConfig()


def current_config() -> AutologConfig:
    return _config


def _library_version(module: ModuleType) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    names = getattr(module, "DISTRIBUTIONS", (module.LIBRARY,))
    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


def _supported(module: ModuleType) -> bool:
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    found = _library_version(module)
    try:
        ok = found is not None and Version(found) in SpecifierSet(module.SUPPORTED)
    except InvalidVersion:
        ok = False
    if not ok:
        logger.warning(
            "prefect-mlops autolog: %s %s is not a version we know (%s); skipping it.",
            module.LIBRARY,
            found,
            module.SUPPORTED,
        )
    return ok


def autolog(
    disable: bool = False,
    *,
    frameworks: Sequence[str] | None = None,
    log_models: bool = True,
    log_datasets: bool = True,
    max_artifact_mb: float = 512.0,
    log_child_runs: bool = False,
    max_score_rows: int | None = 10_000,
) -> list[str]:
    """Track every Prefect flow run started from now on in this process, and turn framework
    auto-logging on (or both off with ``disable=True``); returns the active integrations.
    Only libraries that are installed are touched.

    ``max_score_rows``: a scikit-learn classifier's or regressor's ``training_score`` is computed
    on a seeded random subsample of this many training rows when there are more (the count is
    tagged ``training_score_rows``), since scoring the whole set costs an extra prediction
    pass; None always scores every row."""
    global _config
    if frameworks is None:
        install_auto_tracking(enabled=not disable)
    names = list(frameworks) if frameworks is not None else list(INTEGRATIONS)
    unknown = [n for n in names if n not in INTEGRATIONS]
    if unknown:
        raise InvalidInput(
            f"Unknown autolog framework(s) {unknown}; known: {sorted(INTEGRATIONS)}."
        )
    if max_score_rows is not None and not (
        isinstance(max_score_rows, int)
        and not isinstance(max_score_rows, bool)
        and max_score_rows > 0
    ):
        raise InvalidInput(
            f"max_score_rows must be a positive int or None, not {max_score_rows!r}."
        )
    _config = AutologConfig(
        log_models, log_datasets, max_artifact_mb, log_child_runs, max_score_rows
    )
    for name in names:
        if disable:
            _wanted.discard(name)
            if name in _installed:
                _installed.pop(name).uninstall()
        elif frameworks is not None:
            _install(name)  # asked for by name: import the library if need be
        else:
            _wanted.add(name)
    runtime.on_run_start(install_pending)
    install_pending()
    return sorted(_installed)


def install_pending() -> list[str]:
    """Install the wanted integrations whose library the program has imported by now.

    ``autolog()`` never imports a framework on the user's behalf (importing torch or
    scikit-learn costs seconds); a framework imported later is picked up here, which runs
    again whenever a tracked flow run or `start_run` begins (a `runtime.on_run_start`
    callback).
    """
    for name in list(_wanted):
        if name not in _installed:
            library = importlib.import_module(INTEGRATIONS[name]).LIBRARY
            if library in sys.modules:
                _install(name)
    return sorted(_installed)


def _install(name: str) -> None:
    if name in _installed:
        return
    module = importlib.import_module(INTEGRATIONS[name])
    if importlib.util.find_spec(module.LIBRARY) is None or not _supported(module):
        _wanted.discard(name)
        return
    try:
        module.install(_config)
    except Exception as exc:  # a broken integration must not break the user's program
        logger.warning("prefect-mlops autolog: could not enable %s: %s", name, exc)
        _wanted.discard(name)
        return
    _installed[name] = module


def installed() -> list[str]:
    return sorted(_installed)
