"""Command-line arguments as params: each ``argparse`` parse in this process is kept (the last
one) and handed to the listeners registered with `on_parse`."""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("prefect_mlops.capture")

MAX_VALUE_LENGTH = 6000

_last: dict[str, str] = {}
_listeners: list[Callable[[dict[str, str]], object]] = []
_lock = threading.Lock()
_original_parse_known_args = argparse.ArgumentParser.parse_known_args


def last_arguments() -> dict[str, str]:
    """The arguments of the last parse in this process (empty before any)."""
    return dict(_last)


def on_parse(listener: Callable[[dict[str, str]], object]) -> None:
    """Call ``listener(arguments)`` after every parse (once per listener)."""
    with _lock:
        if listener not in _listeners:
            _listeners.append(listener)


def _parse_known_args(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
    result = _original_parse_known_args(self, *args, **kwargs)
    try:
        parsed = {
            k: str(v)[:MAX_VALUE_LENGTH]
            for k, v in vars(result[0]).items()
            if not k.startswith("_") and v is not argparse.SUPPRESS
        }
        _last.clear()
        _last.update(parsed)
        for listener in list(_listeners):
            listener(dict(parsed))
    except Exception as exc:  # never break the user's program over a param
        logger.debug("argparse capture failed: %r", exc)
    return result


def install() -> None:
    """Start keeping parsed arguments (idempotent)."""
    argparse.ArgumentParser.parse_known_args = _parse_known_args  # type: ignore[method-assign]
