"""Bring a database to the newest schema, once per process, safely under concurrency.

Two processes that start at once must not both run migrations: on SQLite the upgrade runs
inside a ``BEGIN IMMEDIATE`` transaction (the second waits for the write lock, then finds the
schema current); on PostgreSQL a transaction-scoped advisory lock does the same.
"""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from prefect_mlops.core.db import with_lock_retry, write_transaction

#: The newest revision in ``migrations/versions``; a test keeps the two in step.
HEAD_REVISION = "0006"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_ADVISORY_LOCK_KEY = 0x6D6C6F7073  # "mlops"

_current: set[str] = set()
_lock = threading.Lock()


def _read_revision(conn: Connection) -> str | None:
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def _run_alembic(conn: Connection, target: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, target)


def upgrade(engine: Engine, target: str = "head") -> str | None:
    """Apply pending migrations; returns the revision the database ends at."""

    def attempt() -> str | None:
        with write_transaction(engine) as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK_KEY})")
            if _read_revision(conn) != HEAD_REVISION or target != "head":
                _run_alembic(conn, target)
            return _read_revision(conn)

    return with_lock_retry(attempt)


def ensure_schema(engine: Engine) -> None:
    """Migrate ``engine``'s database to the newest schema unless this process already did."""
    key = str(engine.url)
    if key in _current:
        return
    with _lock:
        if key in _current:
            return
        with engine.connect() as conn:
            current = _read_revision(conn)
        if current != HEAD_REVISION:
            upgrade(engine)
        _current.add(key)
