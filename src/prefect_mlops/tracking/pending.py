"""Background work that reads must wait for: a process sees everything it tracked.

Auto-tracked flow runs are finalised (console and environment artifacts, final status,
summary) in a thread so the flow call returns at once; `TrackingClient.flush`, which every read
calls first, waits here for those threads, keeping read-your-writes within a process. The
threads are not daemons, so the interpreter also waits for them at exit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

_pending: set[threading.Thread] = set()
_lock = threading.Lock()
_local = threading.local()
_exit_hook = False


def _register_exit_hook() -> None:
    """Finish pending work when the interpreter starts shutting down, before thread pools
    (which Prefect's clients use) stop taking work: ``threading`` runs these hooks newest
    first, ahead of joining non-daemon threads."""
    global _exit_hook
    if not _exit_hook:
        register = getattr(threading, "_register_atexit", None)
        if register is not None:
            register(wait)
        _exit_hook = True


def submit(target: Callable[..., Any], *args: Any, name: str = "prefect-mlops-finish") -> None:
    def run() -> None:
        _local.background = True
        try:
            target(*args)
        finally:
            with _lock:
                _pending.discard(thread)

    _register_exit_hook()
    thread = threading.Thread(target=run, name=name, daemon=False)
    with _lock:
        _pending.add(thread)
    thread.start()


def wait(timeout: float = 120.0) -> None:
    """Join pending background work (not from inside it, which would wait for itself)."""
    if not _pending or getattr(_local, "background", False):
        return
    with _lock:
        threads = list(_pending)
    for thread in threads:
        thread.join(timeout)
