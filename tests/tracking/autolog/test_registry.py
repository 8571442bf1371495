"""autolog() itself: it never imports a framework, and picks up frameworks imported later."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import prefect_mlops as mlops
from prefect_mlops import InvalidInput

SCRIPT = textwrap.dedent(
    """
    import sys
    import prefect_mlops as mlops
    from prefect_mlops.tracking import autolog

    assert mlops.autolog() == []
    heavy = [m for m in ("torch", "sklearn", "xgboost", "lightgbm") if m in sys.modules]
    assert heavy == [], heavy
    import sklearn.linear_model
    with mlops.start_run():
        pass
    print(autolog.installed())
    """
)


def test_autolog_imports_nothing_and_installs_on_later_import(mlops_home: Path) -> None:
    pytest.importorskip("sklearn")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={**os.environ, "PREFECT_MLOPS_HOME": str(mlops_home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "['sklearn']"


def test_unknown_framework_is_refused(mlops_home: Path) -> None:
    with pytest.raises(InvalidInput, match="'tensorflow2'"):
        mlops.autolog(frameworks=["tensorflow2"])
