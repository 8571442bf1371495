"""One settings object, read from ``PREFECT_MLOPS_*`` variables and ``prefect-mlops.toml``."""

from __future__ import annotations

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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_home / 'mlops.db'}"

    @property
    def resolved_artifact_storage(self) -> str:
        if self.artifact_storage:
            return self.artifact_storage
        return str(self.resolved_home / "artifacts")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings so the next `get_settings()` re-reads the environment."""
    get_settings.cache_clear()
