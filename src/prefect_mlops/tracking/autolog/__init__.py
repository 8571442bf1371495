"""Framework auto-logging, one module per library (``sklearn.py``, ``xgboost.py``, ...).

Every module has the same shape:

- ``LIBRARY``: the import name of the library it patches;
- ``SUPPORTED``: the versions it knows, as a PEP 440 specifier (e.g. ``">=1.3,<2"``);
- ``install(config) -> None``: patch the library (idempotent: installing twice patches once);
- ``uninstall() -> None``: restore the library exactly as it was.

`autolog()` installs every integration whose library is importable; an integration whose
library version is outside ``SUPPORTED`` is skipped with one warning. Hooks never break user
code: wrap them with `safe_hook`, which logs a failure once and lets the user's call proceed.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

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


_installed: dict[str, ModuleType] = {}
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
) -> list[str]:
    """Track every Prefect flow run started from now on in this process, and turn framework
    auto-logging on (or both off with ``disable=True``); returns the active integrations.
    Only libraries that are installed are touched."""
    global _config
    from prefect_mlops.core.errors import InvalidInput
    from prefect_mlops.tracking.auto_track import install_auto_tracking

    if frameworks is None:
        install_auto_tracking(enabled=not disable)
    names = list(frameworks) if frameworks is not None else list(INTEGRATIONS)
    unknown = [n for n in names if n not in INTEGRATIONS]
    if unknown:
        raise InvalidInput(
            f"Unknown autolog framework(s) {unknown}; known: {sorted(INTEGRATIONS)}."
        )
    _config = AutologConfig(log_models, log_datasets, max_artifact_mb, log_child_runs)
    for name in names:
        module = importlib.import_module(INTEGRATIONS[name])
        if disable:
            if name in _installed:
                _installed.pop(name).uninstall()
            continue
        if name in _installed:
            continue
        if importlib.util.find_spec(module.LIBRARY) is None or not _supported(module):
            continue
        try:
            module.install(_config)
        except Exception as exc:  # a broken integration must not break the user's program
            logger.warning("prefect-mlops autolog: could not enable %s: %s", name, exc)
            continue
        _installed[name] = module
    return sorted(_installed)


def installed() -> list[str]:
    return sorted(_installed)
