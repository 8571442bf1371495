"""Helpers shared by the autolog integrations."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
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
