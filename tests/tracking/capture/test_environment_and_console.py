"""Console capture and run-context capture, as units (the end-to-end tests are in
test_auto_track.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from prefect_mlops.tracking.capture import environment as capture
from prefect_mlops.tracking.capture.console import ConsoleCapture


def test_console_tees_and_collapses_progress_bars() -> None:
    console = ConsoleCapture()
    console.start()
    try:
        print("hello")
        print("to stderr", file=sys.stderr)
        for i in range(3):
            sys.stdout.write(f"\rstep {i}")
            sys.stdout.flush()
        print()
        subprocess.run(["echo", "from a child process"], check=True)
    finally:
        path = console.stop()
    assert path is not None
    lines = path.read_text().splitlines()
    # Each stream keeps its order; stdout and stderr are separate pipes, so a stderr line
    # written between two stdout lines at one moment may be logged before or after them.
    assert [line for line in lines if line != "to stderr"] == [
        "hello",
        "step 2",
        "from a child process",
    ]
    assert lines.count("to stderr") == 1
    path.unlink()


def test_a_ten_megabyte_line_stays_bounded() -> None:
    line = b"x" * (10 * 1024 * 1024) + b"\n"
    console = ConsoleCapture()
    tracemalloc.start()
    console.start()
    try:
        view = memoryview(line)
        for i in range(0, len(line), 1 << 20):
            os.write(1, view[i : i + (1 << 20)])
        print("after the long line")
    finally:
        path = console.stop()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert path is not None
    text = path.read_text()
    assert console.truncated_lines == 1
    assert path.stat().st_size < 200 * 1024
    assert "[line truncated]" in text and text.endswith("after the long line\n")
    assert peak < 8 * 1024 * 1024  # the reader never held the whole line
    path.unlink()


def test_git_absent_or_unreadable_is_recorded_as_absent(tmp_path: Path) -> None:
    assert capture.git_info(str(tmp_path)).tags == {"git.available": "false"}
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / ".git").write_text("gitdir: /nowhere/at/all\n")
    assert capture.git_info(str(broken)).tags == {"git.available": "false"}


def test_no_git_binary_is_recorded_as_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on PATH
    assert capture.git_info(str(tmp_path)).tags == {"git.available": "false"}


def test_secrets_in_environment_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "topsecret")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("MY_API_TOKEN", "tok")
    info = capture.environment_info(r"^(AWS_|MY_)")
    text = info.texts["environment.json"]
    assert "topsecret" not in text and '"tok"' not in text
    assert '"AWS_SECRET_ACCESS_KEY": "***"' in text
    assert '"MY_API_TOKEN": "***"' in text
    assert '"AWS_REGION": "eu-west-1"' in text


def test_credentials_stripped_from_remote_urls() -> None:
    assert (
        capture.strip_credentials("https://u:p@host.example/a.git") == "https://host.example/a.git"
    )
    assert capture.strip_credentials("git@host.example:org/a.git") == "git@host.example:org/a.git"


def test_a_tee_kept_after_stop_never_writes_to_a_reused_descriptor(tmp_path: Path) -> None:
    import io

    read_end, write_end = os.pipe()  # what will take the capture's descriptor number
    original = io.StringIO()
    saved_stdout = sys.stdout
    sys.stdout = original  # a replaced stdout (as a notebook has) gets a tee
    try:
        console = ConsoleCapture()
        console.start()
        tee = sys.stdout
        old_fd = console._pipes[1].write_fd
        console.stop()
    finally:
        sys.stdout = saved_stdout
    with pytest.raises(OSError):
        os.fstat(old_fd)  # closed by stop(), free for reuse
    os.dup2(write_end, old_fd)  # the number is reused by something else now
    os.close(write_end)
    try:
        tee.write("late line\n")  # e.g. a log handler created during the run
        os.close(old_fd)
        assert os.read(read_end, 100) == b""
    finally:
        os.close(read_end)
    assert original.getvalue().endswith("late line\n")


def test_a_child_holding_the_pipe_keeps_the_reader_and_its_descriptors(tmp_path: Path) -> None:
    console = ConsoleCapture()
    console.start()
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(1.5); print('child done', flush=True)"]
    )
    try:
        path = console.stop(timeout=0.1)  # the child still holds fd 1: no EOF yet
        assert console.active
        terminal = console._pipes[1].saved
        os.fstat(terminal)  # still open: the reader forwards the child's output through it
    finally:
        child.wait(timeout=30)
    console.join(timeout=30)
    assert not console.active
    assert path is not None and "child done" in path.read_text()


def test_each_stream_stays_where_it_was_while_both_are_saved(tmp_path: Path) -> None:
    """``python flow.py 2>/dev/null`` must not show stderr lines: captured stderr goes back to
    stderr, stdout to stdout, and console.log holds both."""
    script = tmp_path / "streams.py"
    script.write_text(
        "import logging, sys\n"
        "from prefect_mlops.tracking.capture.console import ConsoleCapture\n"
        "logging.basicConfig(stream=sys.stderr)\n"
        "c = ConsoleCapture()\n"
        "c.start()\n"
        "print('out line', flush=True)\n"
        "logging.getLogger('x').warning('err line')\n"
        "path = c.stop()\n"
        "print('LOG=' + path.read_text().replace(chr(10), '|'))\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    printed, log = done.stdout.split("LOG=")
    assert "out line" in printed and "err line" not in printed
    assert "err line" in done.stderr and "out line" not in done.stderr
    assert "out line" in log and "WARNING:x:err line" in log
