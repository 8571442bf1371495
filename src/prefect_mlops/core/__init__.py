"""Shared plumbing that every domain builds on; it imports no domain.

- ``settings.py`` — the one `Settings` object (``PREFECT_MLOPS_*``, ``prefect-mlops.toml``);
- ``errors.py`` — the `MlopsError` hierarchy;
- ``ids.py`` — time-ordered 32-hex ids and millisecond clocks;
- ``db.py`` — engines (SQLite WAL + busy timeout, PostgreSQL), write transactions, lock retries;
- ``schema.py`` and ``migrations/``, ``migrate.py`` — table metadata and Alembic migrations;
- ``storage.py`` — artifact storage: local folders, fsspec URLs, Prefect storage blocks;
- ``lazy.py`` — a value built once on first use.
"""
