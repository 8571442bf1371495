"""The metadata database: engines tuned per backend, clear connection errors, lock retries.

SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` for writes, so that many processes
writing one file queue for the lock instead of failing with "database is locked".
PostgreSQL is reached through psycopg 3 with a short connect timeout.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from prefect_mlops.core.errors import DatabaseUnavailable, InvalidInput

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 60_000
CONNECT_TIMEOUT_S = 5
_LOCK_RETRY_SECONDS = 300.0

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def mask_url(url: str | URL) -> str:
    """The URL with its password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return str(url)


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInput(
            f"Database URL {url!r} is not a valid SQLAlchemy URL; expected e.g. "
            "'sqlite:////path/mlops.db' or 'postgresql+psycopg://user:pw@host/db'."
        ) from exc
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the driver so BEGIN is ours to emit.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA temp_store=MEMORY")
        # LIKE is case-sensitive, as on PostgreSQL and in MLflow; ILIKE is the other one.
        cur.execute("PRAGMA case_sensitive_like=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("immediate"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def get_engine(url: str) -> Engine:
    """The process-wide engine for ``url``, created and connection-checked on first use."""
    engine = _engines.get(url)
    if engine is not None:
        return engine
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create_engine(url)
            _engines[url] = engine
    return engine


def _create_engine(url: str) -> Engine:
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            try:
                Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseUnavailable(
                    f"Cannot create the folder for the SQLite database {mask_url(parsed)}: "
                    f"{exc}. Set PREFECT_MLOPS_HOME or PREFECT_MLOPS_DATABASE_URL to a "
                    "writable location."
                ) from exc
        engine = sa.create_engine(
            parsed,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            pool_pre_ping=False,
        )
        _configure_sqlite(engine)
    elif backend == "postgresql":
        engine = sa.create_engine(
            parsed,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=10,
        )
    else:
        raise InvalidInput(
            f"Database URL {mask_url(parsed)} uses backend {backend!r}; supported: "
            "sqlite, postgresql."
        )
    _check_connection(engine)
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
    return engine


def _check_connection(engine: Engine) -> None:
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except (OperationalError, DBAPIError) as exc:
        engine.dispose()
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise DatabaseUnavailable(
            f"Cannot connect to the metadata database at {mask_url(engine.url)}: {reason}. "
            "Check that the server is running and that PREFECT_MLOPS_DATABASE_URL is right."
        ) from None


def dispose_engines() -> None:
    """Close every cached engine (tests, and processes switching databases)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database is busy" in text or "deadlock" in text


def with_lock_retry(fn: Callable[[], T]) -> T:
    """Run ``fn``, retrying with jittered backoff while the database reports a lock."""
    deadline = time.monotonic() + _LOCK_RETRY_SECONDS
    delay = 0.01
    while True:
        try:
            return fn()
        except OperationalError as exc:
            if not _is_lock_error(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 1.0)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that takes the write lock up front on SQLite."""
    with engine.connect() as conn:
        conn.execution_options(immediate=True)
        with conn.begin():
            yield conn
