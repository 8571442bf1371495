"""A value built on first use: once, however many threads ask for it at the same moment."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    """``factory()`` called on the first `get`, its result kept until `reset`.

    With ``per_process=True`` a forked child forgets the parent's value (a client holding
    sockets or threads of the parent must not be shared with the child).
    """

    def __init__(self, factory: Callable[[], T], *, per_process: bool = False) -> None:
        self._factory = factory
        self._value: T | None = None
        self._lock = threading.Lock()
        if per_process:
            os.register_at_fork(after_in_child=self._forget_after_fork)

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._factory()
                value = self._value
        return value

    def peek(self) -> T | None:
        """The value if it has been built, without building it."""
        return self._value

    def reset(self) -> T | None:
        """Forget the value (the next `get` builds a new one); returns the old one."""
        with self._lock:
            old, self._value = self._value, None
        return old

    def _forget_after_fork(self) -> None:
        self._value = None
        self._lock = threading.Lock()  # another thread may have held it at the fork
