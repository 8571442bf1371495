"""Settings come from PREFECT_MLOPS_* variables and prefect-mlops.toml."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from prefect_mlops.core.settings import Settings


def test_defaults_derive_from_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PREFECT_MLOPS_HOME", str(tmp_path / "h"))
    monkeypatch.delenv("PREFECT_MLOPS_FLUSH_INTERVAL", raising=False)
    s = Settings()
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'h' / 'mlops.db'}"
    assert s.resolved_artifact_storage == str(tmp_path / "h" / "artifacts")
    assert s.flush_interval == 1.0


def test_toml_file_and_env_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PREFECT_MLOPS_FLUSH_INTERVAL", raising=False)
    (tmp_path / "prefect-mlops.toml").write_text(
        'database_url = "postgresql+psycopg://u@db/mlops"\n'
        'artifact_storage = "local-file-system/team"\n'
        "flush_interval = 2.5\n"
    )
    s = Settings()
    assert s.resolved_database_url == "postgresql+psycopg://u@db/mlops"
    assert s.resolved_artifact_storage == "local-file-system/team"
    assert s.flush_interval == 2.5
    monkeypatch.setenv("PREFECT_MLOPS_FLUSH_INTERVAL", "0.5")
    assert Settings().flush_interval == 0.5


def test_bad_flush_interval_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_MLOPS_FLUSH_INTERVAL", "0")
    with pytest.raises(ValidationError, match="flush_interval"):
        Settings()
