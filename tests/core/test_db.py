"""The metadata database: clear connection errors, migrations that match the tables, races."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from prefect_mlops import DatabaseUnavailable, InvalidInput, TrackingClient
from prefect_mlops.core import migrate
from prefect_mlops.core.db import get_engine, mask_url
from prefect_mlops.core.schema import metadata


def test_unreachable_postgres_fails_fast_with_masked_url(mlops_home: Path) -> None:
    url = "postgresql+psycopg://alice:s3cret@127.0.0.1:1/mlops"
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as err:
        TrackingClient(database_url=url)
    assert time.monotonic() - started < 5
    message = str(err.value)
    assert "postgresql+psycopg://alice:***@127.0.0.1:1/mlops" in message
    assert "s3cret" not in message
    assert "PREFECT_MLOPS_DATABASE_URL" in message


def test_unwritable_sqlite_location_is_a_clear_error(mlops_home: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DatabaseUnavailable, match="PREFECT_MLOPS_HOME"):
        TrackingClient(database_url=f"sqlite:///{blocker}/sub/mlops.db")


def test_unsupported_and_malformed_urls(mlops_home: Path) -> None:
    with pytest.raises(InvalidInput, match="supported: sqlite, postgresql"):
        get_engine("mysql://u:p@localhost/db")
    with pytest.raises(InvalidInput, match="not a valid SQLAlchemy URL"):
        get_engine("::nonsense::")


def test_mask_url_hides_password() -> None:
    assert mask_url("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"


def test_head_revision_constant_matches_the_scripts() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(migrate.MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(cfg).get_current_head() == migrate.HEAD_REVISION


def test_migrations_create_exactly_the_declared_tables(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import prefect_mlops.tracking.tables  # noqa: F401  (registers the tables)

    engine = get_engine(db_url)
    migrate.ensure_schema(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "compare_type": False,
                # full-text search structures are dialect-specific and kept out of the metadata
                "include_name": lambda name, kind, _parent: (
                    not (name or "").startswith(("runs_fts", "search_doc", "ix_runs_search_doc"))
                ),
            },
        )
        diff = compare_metadata(ctx, metadata)
    assert diff == []


def test_downgrade_then_upgrade(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    assert migrate.upgrade(engine) == migrate.HEAD_REVISION
    from alembic import command
    from alembic.config import Config

    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(migrate.MIGRATIONS_DIR))
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert "runs" not in sa.inspect(engine).get_table_names()
    assert migrate.upgrade(engine) == migrate.HEAD_REVISION
    assert "runs" in sa.inspect(engine).get_table_names()


STARTER = textwrap.dedent(
    """
    import sys, time
    from prefect_mlops import TrackingClient
    start_at = float(sys.argv[2])
    while time.time() < start_at:
        time.sleep(0.001)
    client = TrackingClient(database_url=sys.argv[1])
    exp = client.get_or_create_experiment("race")
    print(client.create_run(exp.experiment_id).info.run_id)
    """
)


def test_processes_starting_at_once_migrate_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    start_at = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, url, str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PREFECT_MLOPS_HOME": str(tmp_path)},
        )
        for _ in range(6)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    run_ids = {out.strip() for out, _ in results}
    assert len(run_ids) == 6
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all() == [
            migrate.HEAD_REVISION
        ]
        assert conn.exec_driver_sql("SELECT count(*) FROM experiments").scalar() == 1
        assert conn.exec_driver_sql("SELECT count(*) FROM runs").scalar() == 6
