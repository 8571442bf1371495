"""Console capture: everything written to file descriptors 1 and 2 (``print``, logging, C
extensions, child processes) is still printed, each stream where it went, and also saved for
the run's ``console.log``.

Each descriptor is redirected into a pipe of its own, and one reader thread drains both: it
forwards every byte to the original stdout or stderr at once (so ``2>/dev/null`` and pipes
behave as without capture) and appends lines to a temporary file. When both pipes have data at
one wake-up, stdout's is read first. Carriage-return
progress bars (tqdm) keep only their last state, and a line longer than ``max_line`` is cut,
so memory stays bounded whatever the program prints.
"""

from __future__ import annotations

import os
import select
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO

MAX_LINE = 64 * 1024
_CHUNK = 65536


class _Pipe:
    """One captured descriptor: a pipe in its place, and the original it forwards to."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.saved = os.dup(target)
        self.read_fd, self.write_fd = os.pipe()
        os.dup2(self.write_fd, target)
        self.pending = b""
        self.dropping = False

    def restore(self) -> None:
        """Put the original descriptor back and close our write end (the reader sees EOF
        once every copy, a child's too, is closed)."""
        if self.write_fd >= 0:
            os.dup2(self.saved, self.target)
            os.close(self.write_fd)
            self.write_fd = -1


class ConsoleCapture:
    """Tee fds 1 and 2 into a file until `stop()`; ``path`` holds the captured text."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self.path: Path | None = None
        self.truncated_lines = 0
        self._pipes: dict[int, _Pipe] = {}
        self._streams: dict[str, object] = {}
        self._tees: list[_Tee] = []
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self.active:
            return
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        self.path = Path(tempfile.mkdtemp(prefix="mlops-console-")) / "console.log"
        self.path.touch()
        self._pipes = {target: _Pipe(target) for target in (1, 2)}
        # A replaced sys.stdout/sys.stderr (a notebook, a test runner) does not write to fd
        # 1/2: tee it into that descriptor's pipe as well.
        for name, target in (("stdout", 1), ("stderr", 2)):
            stream = getattr(sys, name)
            if not _writes_to_fd(stream, target):
                self._streams[name] = stream
                tee = _Tee(stream, self._pipes[target].write_fd)
                self._tees.append(tee)
                setattr(sys, name, tee)
        self._thread = threading.Thread(
            target=self._drain, name="prefect-mlops-console", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> Path | None:
        """Restore fds 1 and 2, wait up to ``timeout`` seconds for the readers to write out
        what is left, and return the file's path (complete once `join` returns)."""
        if not self.active:
            return self.path
        if any(p.write_fd >= 0 for p in self._pipes.values()):
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
            for tee in self._tees:
                tee.detach()  # a log handler may still hold it: it must not write here
            for name, stream in self._streams.items():
                setattr(sys, name, stream)
            self._streams.clear()
            for pipe in self._pipes.values():
                pipe.restore()
        self.join(timeout)
        return self.path

    def join(self, timeout: float = 10.0) -> None:
        """Wait (after `stop`) for the reader to write out what is left. A child process
        still holding a pipe keeps the reader going after ``timeout``: it then closes its
        own descriptors when the child lets go."""
        thread = self._thread
        if thread is None or any(p.write_fd >= 0 for p in self._pipes.values()):
            return
        thread.join(timeout=timeout)
        if not thread.is_alive():
            self._thread = None

    def _drain(self) -> None:
        by_fd = {p.read_fd: p for p in self._pipes.values()}
        poller = select.poll()
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        with open(self.path, "wb") as out:  # type: ignore[arg-type]
            while by_fd:
                try:
                    ready = poller.poll()
                except InterruptedError:
                    continue
                # stdout's pipe first: what was printed first is most often there
                for fd in sorted(fd for fd, _ in ready if fd in by_fd):
                    pipe = by_fd[fd]
                    try:
                        chunk = os.read(fd, _CHUNK)
                    except OSError:
                        chunk = b""
                    if chunk:
                        self._take(pipe, chunk, out)
                        continue
                    if pipe.pending and not pipe.dropping:
                        out.write(self._collapse(pipe.pending) + b"\n")
                    poller.unregister(fd)
                    del by_fd[fd]
        # The reader owns these: closed by the last one to use them, never while in use.
        for pipe in self._pipes.values():
            os.close(pipe.read_fd)
            os.close(pipe.saved)

    def _take(self, pipe: _Pipe, chunk: bytes, out: IO[bytes]) -> None:
        """Forward ``chunk`` to where the stream went before, and log its complete lines."""
        try:
            os.write(pipe.saved, chunk)
        except OSError:
            pass
        pending = pipe.pending + chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if pipe.dropping:
                pipe.dropping = False  # the rest of an over-long line ends here
                continue
            out.write(self._collapse(line) + b"\n")
        if len(pending) > self.max_line:
            if not pipe.dropping:
                out.write(self._collapse(pending[: self.max_line]) + b" [line truncated]\n")
                self.truncated_lines += 1
            pipe.dropping = True
            pending = b""
        pipe.pending = pending

    @staticmethod
    def _collapse(line: bytes) -> bytes:
        """Keep what a terminal would show: the text after the last carriage return."""
        if b"\r" not in line:
            return line
        parts = [p for p in line.split(b"\r") if p]
        return parts[-1] if parts else b""


def _writes_to_fd(stream: object, fd: int) -> bool:
    try:
        return stream.fileno() == fd  # type: ignore[attr-defined]
    except Exception:
        return False


class _Tee:
    """A text stream that writes to the original stream and into the capture pipe."""

    def __init__(self, original: object, fd: int) -> None:
        self._original = original
        self._fd = fd

    def detach(self) -> None:
        """Stop writing into the pipe (its descriptor is closed; the number may be reused)."""
        self._fd = -1

    def write(self, text: str) -> int:
        written = self._original.write(text)  # type: ignore[attr-defined]
        if self._fd >= 0:
            try:
                os.write(self._fd, text.encode("utf-8", "replace"))
            except OSError:
                pass
        return written

    def flush(self) -> None:
        self._original.flush()  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._original, name)
