"""Shared fixtures: a real Prefect server, a fresh tracking home per test, SQLite and PostgreSQL.

Prefect reads its settings when it is first imported, so the API URL and PREFECT_HOME are set
here, at import time, before any test module imports Prefect. The server itself starts only
when a test asks for ``prefect_server``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_SESSION_DIR = Path(tempfile.mkdtemp(prefix="mlops-tests-"))
_PREFECT_PORT = _free_port()
PREFECT_API_URL = f"http://127.0.0.1:{_PREFECT_PORT}/api"
os.environ.update(
    {
        "PREFECT_HOME": str(_SESSION_DIR / "prefect-home"),
        "PREFECT_API_URL": PREFECT_API_URL,
        "PREFECT_UI_URL": f"http://127.0.0.1:{_PREFECT_PORT}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.3",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_MLOPS_HOME": str(_SESSION_DIR / "mlops-home"),
        "PREFECT_MLOPS_FLUSH_INTERVAL": "0.2",
    }
)
POSTGRES_URL = os.environ.get("PREFECT_MLOPS_TEST_POSTGRES_URL")


def _healthy() -> bool:
    try:
        with urllib.request.urlopen(f"{PREFECT_API_URL}/health", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """A real `prefect server start` on a free port; yields its API URL."""
    log = open(_SESSION_DIR / "prefect-server.log", "wb")  # noqa: SIM115
    env = dict(os.environ, PREFECT_UI_ENABLED="false")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(_PREFECT_PORT),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + 90
    while not _healthy():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(
                "prefect server did not start: "
                + (_SESSION_DIR / "prefect-server.log").read_text()[-3000:]
            )
        time.sleep(0.3)
    yield PREFECT_API_URL
    _drain_prefect_workers()
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _drain_prefect_workers() -> None:
    """Flush Prefect's log and event workers so nothing talks to a stopped server."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    try:
        APILogWorker.drain_all(timeout=10)
    except Exception:
        pass
    try:
        EventsWorker.drain_all(timeout=10)
    except Exception:
        pass


def _reset_mlops() -> None:
    from prefect_mlops.core.db import dispose_engines
    from prefect_mlops.core.settings import reset_settings
    from prefect_mlops.core.storage import clear_backend_cache
    from prefect_mlops.tracking import fluent
    from prefect_mlops.tracking.client import close_all_clients

    fluent.reset()
    close_all_clients()
    dispose_engines()
    reset_settings()
    clear_backend_cache()


def _truncate_postgres(url: str) -> None:
    import sqlalchemy as sa

    from prefect_mlops.core.migrate import ensure_schema

    engine = sa.create_engine(url)
    try:
        ensure_schema(engine)
        with engine.begin() as conn:
            names = [n for n in sa.inspect(conn).get_table_names() if n != "alembic_version"]
            conn.exec_driver_sql(f"TRUNCATE {', '.join(names)}")
    finally:
        engine.dispose()


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A clean metadata database: SQLite in tmp_path, or PostgreSQL when configured."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mlops.db'}"
    if not POSTGRES_URL:
        pytest.skip("PREFECT_MLOPS_TEST_POSTGRES_URL is not set")
    _truncate_postgres(POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture
def mlops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh PREFECT_MLOPS_HOME (SQLite + local artifacts) and a clean fluent state."""
    home = tmp_path / "mlops-home"
    monkeypatch.setenv("PREFECT_MLOPS_HOME", str(home))
    monkeypatch.delenv("PREFECT_MLOPS_DATABASE_URL", raising=False)
    monkeypatch.delenv("PREFECT_MLOPS_ARTIFACT_STORAGE", raising=False)
    _reset_mlops()
    yield home
    _reset_mlops()


@pytest.fixture
def tracking_db(db_url: str, mlops_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The fluent API and TrackingClient() pointed at ``db_url`` (both backends)."""
    monkeypatch.setenv("PREFECT_MLOPS_DATABASE_URL", db_url)
    _reset_mlops()
    return db_url


@pytest.fixture
def client(tracking_db: str):  # type: ignore[no-untyped-def]
    from prefect_mlops import TrackingClient

    return TrackingClient()


def start_tracking_server(
    home: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> tuple[Any, str]:
    """A real `prefect-mlops server start` on a free port over ``home`` (SQLite and local
    artifacts unless ``env`` says otherwise); returns (process, base URL) once it answers."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(home.parent / f"server-{port}.log", "wb")  # noqa: SIM115
    server_env = {**os.environ, "PREFECT_MLOPS_HOME": str(home), **(env or {})}
    server_env.pop("PREFECT_MLOPS_TRACKING_URI", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect_mlops.cli.main",
            "server",
            "start",
            "--port",
            str(port),
            *args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=server_env,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.close()
            raise RuntimeError(
                "tracking server did not start: "
                + (home.parent / f"server-{port}.log").read_text()[-3000:]
            )
        time.sleep(0.1)
    proc.log = log  # type: ignore[attr-defined]
    return proc, url


def stop_tracking_server(proc: Any) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.log.close()


@pytest.fixture
def tracking_server(tmp_path: Path) -> Iterator[str]:
    """A real tracking server over a fresh SQLite home; yields its base URL."""
    home = tmp_path / "server-home"
    home.mkdir()
    proc, url = start_tracking_server(home)
    yield url
    stop_tracking_server(proc)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3-compatible server on loopback (moto's server) with a bucket ``mlops``;
    yields its endpoint URL and points boto3/s3fs at it for the whole session."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = open(_SESSION_DIR / "s3-server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.2)
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
    )
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="mlops")
    yield endpoint
    proc.terminate()
    proc.wait(timeout=20)
    log.close()
