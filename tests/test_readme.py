"""Every shell and Python example in the README works as pasted.

The ``bash`` and ``python`` blocks run in order, as one bash script, in a fresh folder with a
fresh tracking home and Prefect profile (the session's Prefect server answers). A block right
after a ``<!-- not run by the README test: why -->`` line is left out (``make test`` cannot run
itself)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.M | re.S)
SKIP = "<!-- not run by the README test"


def readme_script(text: str) -> tuple[str, int, str]:
    """The runnable blocks of ``text`` as one bash script, how many blocks it holds, and the
    text of its bash blocks alone."""
    parts = ["set -euo pipefail"]
    shell: list[str] = []
    count = 0
    for match in FENCE.finditer(text):
        language, body = match.group(1), match.group(2)
        before = text[: match.start()].rstrip().splitlines()
        if language not in ("bash", "python") or (before and before[-1].startswith(SKIP)):
            continue
        count += 1
        if language == "bash":
            parts.append(body)
            shell.append(body)
        else:
            parts.append(f"python - <<'README_PY'\n{body}README_PY")
    return "\n".join(parts) + "\n", count, "\n".join(shell)


def test_readme_examples_run_as_written(prefect_server: str, tmp_path: Path) -> None:
    script, count, shell = readme_script(README.read_text())
    assert count >= 7  # the tour is there (a broken fence would hide it)
    assert "`" not in "".join(re.findall(r'"[^"\n]*"', shell))  # no backticks bash would run
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_MLOPS_", "COLUMNS"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_MLOPS_HOME=str(tmp_path / "mlops-home"),
        PREFECT_API_URL=prefect_server,
    )
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (
        f"README examples failed (exit {done.returncode}):\n{done.stdout[-6000:]}\n"
        f"{done.stderr[-6000:]}"
    )
