"""Console capture and run-context capture, as units (the end-to-end tests are in
test_auto_track.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from prefect_mlops.tracking import capture
from prefect_mlops.tracking.console import ConsoleCapture


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
    assert path.read_text().splitlines() == [
        "hello",
        "to stderr",
        "step 2",
        "from a child process",
    ]
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
