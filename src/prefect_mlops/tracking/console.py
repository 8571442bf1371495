"""Console capture: everything written to file descriptors 1 and 2 (``print``, logging, C
extensions, child processes) is still printed and also saved for the run's ``console.log``.

The descriptors are redirected into a pipe that a reader thread drains: it forwards every byte
to the original terminal at once and appends lines to a temporary file. Carriage-return
progress bars (tqdm) keep only their last state, and a line longer than ``max_line`` is cut,
so memory stays bounded whatever the program prints.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from pathlib import Path

MAX_LINE = 64 * 1024
_CHUNK = 65536


class ConsoleCapture:
    """Tee fds 1 and 2 into a file until `stop()`; ``path`` holds the captured text."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self.path: Path | None = None
        self.truncated_lines = 0
        self._saved: dict[int, int] = {}
        self._streams: dict[str, object] = {}
        self._tees: list[_Tee] = []
        self._thread: threading.Thread | None = None
        self._read_fd = -1
        self._write_fd = -1

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
        self._read_fd, self._write_fd = os.pipe()
        for target in (1, 2):
            self._saved[target] = os.dup(target)
            os.dup2(self._write_fd, target)
        # A replaced sys.stdout/sys.stderr (a notebook, a test runner) does not write to fd
        # 1/2: tee it into the pipe as well.
        for name, target in (("stdout", 1), ("stderr", 2)):
            stream = getattr(sys, name)
            if not _writes_to_fd(stream, target):
                self._streams[name] = stream
                tee = _Tee(stream, self._write_fd)
                self._tees.append(tee)
                setattr(sys, name, tee)
        self._thread = threading.Thread(
            target=self._drain, name="prefect-mlops-console", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> Path | None:
        """Restore fds 1 and 2, wait up to ``timeout`` seconds for the reader to write out
        what is left, and return the file's path (complete once `join` returns)."""
        if not self.active:
            return self.path
        if self._write_fd >= 0:
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
            for target, saved in self._saved.items():
                os.dup2(saved, target)
            os.close(self._write_fd)  # the reader sees EOF once every copy is closed
            self._write_fd = -1
        self.join(timeout)
        return self.path

    def join(self, timeout: float = 10.0) -> None:
        """Wait (after `stop`) for the reader to write out what is left. A child process
        still holding the pipe keeps the reader going after ``timeout``: it then closes its
        own descriptors when the child lets go."""
        thread = self._thread
        if thread is None or self._write_fd >= 0:
            return
        thread.join(timeout=timeout)
        if not thread.is_alive():
            self._thread = None

    def _drain(self) -> None:
        terminal = self._saved.get(1, -1)
        pending = b""
        dropping = False
        with open(self.path, "wb") as out:  # type: ignore[arg-type]
            while True:
                try:
                    chunk = os.read(self._read_fd, _CHUNK)
                except OSError:
                    break
                if not chunk:
                    break
                try:
                    os.write(terminal, chunk)
                except OSError:
                    pass
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if dropping:
                        dropping = False  # the rest of an over-long line ends here
                        continue
                    out.write(self._collapse(line) + b"\n")
                if len(pending) > self.max_line:
                    if not dropping:
                        out.write(self._collapse(pending[: self.max_line]) + b" [line truncated]\n")
                        self.truncated_lines += 1
                    dropping = True
                    pending = b""
            if pending and not dropping:
                out.write(self._collapse(pending) + b"\n")
        # The reader owns these: closed by the last one to use them, never while in use.
        os.close(self._read_fd)
        for saved in self._saved.values():
            os.close(saved)

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
