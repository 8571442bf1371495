"""Progress bars of bytes and bytes per second (rich), shown on a terminal only unless asked."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def bytes_bar(
    description: str, total: int, show: bool | None = None
) -> Iterator[Callable[[int], object]]:
    """A bar for ``total`` bytes; yields ``advance(n)`` (thread-safe). ``show=None`` shows it
    when stderr is a terminal."""
    if show is None:
        show = sys.stderr.isatty()
    if not show or total <= 0:
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    lock = threading.Lock()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int) -> None:
            with lock:
                bar.advance(task, n)

        yield advance
