"""One settings object, read from ``PREFECT_MLOPS_*`` variables and ``prefect-mlops.toml``."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    """Where metadata and artifacts live and how often buffered metrics are written.

    Environment variables win over ``prefect-mlops.toml`` in the working directory.
    """

    model_config = SettingsConfigDict(
        env_prefix="PREFECT_MLOPS_",
        toml_file="prefect-mlops.toml",
        extra="ignore",
    )

    home: Path = Field(
        default_factory=lambda: Path.home() / ".prefect-mlops",
        description="Folder for the embedded SQLite database and default artifact storage.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata database; default: SQLite in `home`.",
    )
    artifact_storage: str | None = Field(
        default=None,
        description=(
            "Where artifacts go: a Prefect storage block slug (`local-file-system/name`), "
            "a local folder or an fsspec URL (`s3://bucket/prefix`); default `<home>/artifacts`."
        ),
    )
    dataset_storage: str | None = Field(
        default=None,
        description=(
            "Where dataset objects go: a local folder, an fsspec URL (`s3://bucket/prefix`) "
            "or `lakefs://repo/branch`; default `<home>/datasets`."
        ),
    )
    dataset_cache: str | None = Field(
        default=None,
        description="Folder of materialised dataset versions; default `<home>/cache/datasets`.",
    )
    experiment: str | None = Field(
        default=None,
        description=(
            "Experiment of runs opened with `start_run` when none is given or chosen with "
            "`set_experiment` (default 'Default'; a flow run's own run is in its flow's)."
        ),
    )
    tracking_uri: str | None = Field(
        default=None,
        description=(
            "URL of a prefect-mlops tracking server (`http://host:5000`): the client then "
            "logs there instead of to `database_url`."
        ),
    )
    offline: bool = Field(
        default=False,
        description=(
            "Spool everything for the tracking server to disk without trying to reach it; "
            "`prefect-mlops sync` sends it later."
        ),
    )
    artifacts_direct: bool = Field(
        default=False,
        description=(
            "With a tracking server whose artifact storage is a cloud URL (`s3://...`), read "
            "and write artifact files there directly, with this machine's credentials, "
            "instead of through the server (the server still records them)."
        ),
    )
    spool_max_mb: float = Field(
        default=1024.0,
        gt=0,
        description="Largest the offline spool may grow before logging calls are refused.",
    )
    server_max_request_mb: float = Field(
        default=64.0,
        gt=0,
        description="Largest request body the tracking server accepts (artifact uploads aside).",
    )
    flush_interval: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Seconds between background writes of buffered metrics.",
    )
    max_buffered_points: int = Field(
        default=100_000,
        ge=1_000,
        description="Buffered metric points above which the logging thread writes inline.",
    )
    reconcile_on_read: bool = Field(
        default=True,
        description="Ask Prefect for the final state of runs still RUNNING when they are read.",
    )
    auto_track: bool = Field(
        default=False,
        description=(
            "Track every Prefect flow run in processes where Prefect's plugins are enabled "
            "(PREFECT_PLUGINS_ENABLED=true); `prefect-mlops setup` turns both on."
        ),
    )
    capture_git: bool = Field(default=True, description="Record git commit, branch, diff.")
    capture_packages: bool = Field(
        default=True, description="Record installed packages as requirements.txt."
    )
    capture_env: bool = Field(default=True, description="Record selected environment variables.")
    env_include: str = Field(
        default=r"^(PREFECT_|PYTHON|CUDA|NVIDIA|OMP_|MKL_|HF_|TORCH|AWS_|GOOGLE_|AZURE_|SLURM_)",
        description=(
            "Regex of environment variable names to record; values of names matching "
            "KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL are always masked."
        ),
    )
    capture_console: bool = Field(default=True, description="Save stdout/stderr as console.log.")
    capture_argparse: bool = Field(default=True, description="Log argparse arguments as params.")
    telemetry: bool = Field(default=True, description="Sample CPU, memory, I/O and GPUs.")
    telemetry_interval: float = Field(
        default=5.0, gt=0, le=3600, description="Seconds between system telemetry samples."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls),
            TomlConfigSettingsSource(settings_cls, toml_file=user_config_path()),
        )

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_home / 'mlops.db'}"

    @property
    def resolved_spool_dir(self) -> Path:
        return self.resolved_home / "spool"

    @property
    def resolved_dataset_storage(self) -> str:
        return self.dataset_storage or str(self.resolved_home / "datasets")

    @property
    def resolved_dataset_cache(self) -> Path:
        if self.dataset_cache:
            return Path(self.dataset_cache).expanduser().resolve()
        return self.resolved_home / "cache" / "datasets"

    @property
    def resolved_artifact_storage(self) -> str:
        if self.artifact_storage:
            return self.artifact_storage
        return str(self.resolved_home / "artifacts")


def user_config_path() -> Path:
    """``<home>/prefect-mlops.toml``: settings written by `prefect-mlops setup`."""
    home = os.environ.get("PREFECT_MLOPS_HOME") or str(Path.home() / ".prefect-mlops")
    return Path(home).expanduser() / "prefect-mlops.toml"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings so the next `get_settings()` re-reads the environment."""
    get_settings.cache_clear()
