"""The metric buffer: ``log_metric`` appends in microseconds, a background thread persists.

Points are written at least every ``flush_interval`` seconds, on ``flush()``, when a run ends
and at interpreter exit. If logging outpaces the writer, the logging thread writes inline
once ``max_buffered_points`` are pending, so memory stays bounded. After ``fork`` the child
starts with an empty buffer and its own thread (the parent's points are the parent's to write).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Callable, Sequence

from prefect_mlops.tracking.entities import MetricRow

logger = logging.getLogger("prefect_mlops.writer")

_writers: weakref.WeakSet[MetricWriter] = weakref.WeakSet()


class MetricWriter:
    """Buffers metric rows and hands them to ``persist`` in batches."""

    def __init__(
        self,
        persist: Callable[[Sequence[MetricRow]], None],
        flush_interval: float = 1.0,
        max_buffered: int = 200_000,
    ) -> None:
        self._persist = persist
        self.flush_interval = flush_interval
        self.max_buffered = max_buffered
        self._buffer: list[MetricRow] = []
        self._lock = threading.Lock()  # guards _buffer swaps and appends
        self._flush_lock = threading.Lock()  # one writer at a time, in order
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self.last_error: BaseException | None = None
        _writers.add(self)
        os.register_at_fork(after_in_child=self._after_fork)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._loop, name="prefect-mlops-metric-writer", daemon=True
            )
            self._thread.start()

    def _after_fork(self) -> None:
        self._buffer = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        self._pid = os.getpid()

    def append(self, row: MetricRow) -> None:
        with self._lock:
            self._buffer.append(row)
            pending = len(self._buffer)
        if self._thread is None:
            self._ensure_thread()
        if pending >= self.max_buffered:
            self.flush()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def flush(self) -> None:
        """Persist everything appended before this call; raises if the write fails."""
        with self._flush_lock:
            with self._lock:
                batch, self._buffer = self._buffer, []
            if not batch:
                return
            try:
                self._persist(batch)
            except BaseException:
                with self._lock:  # keep the points for the next attempt
                    self._buffer[:0] = batch
                raise

    def _loop(self) -> None:
        while not self._stopped:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.flush()
                self.last_error = None
            except Exception as exc:  # keep the thread alive; report once per error kind
                if type(exc) is not type(self.last_error):
                    logger.warning("prefect-mlops could not write metrics yet: %s", exc)
                self.last_error = exc

    def close(self) -> None:
        if self._pid != os.getpid():
            return
        self._stopped = True
        self._wake.set()
        try:
            self.flush()
        except Exception as exc:
            logger.error("prefect-mlops lost %d metric points at exit: %s", self.pending, exc)


def _close_all() -> None:
    for writer in list(_writers):
        writer.close()


atexit.register(_close_all)
