"""What every part of the SQL store shares: the engine, transactions with lock retries, the
driver's own cursor for hot paths, and the statements more than one part runs.

The parts (experiments.py, runs.py, metrics.py, ...) are mixins over `SqlStoreBase`,
combined into `SqlTrackingStore` in ``__init__.py``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from prefect_mlops.core.db import get_engine, mask_url, with_lock_retry, write_transaction
from prefect_mlops.core.errors import StorageError
from prefect_mlops.core.ids import now_ms
from prefect_mlops.core.migrate import ensure_schema
from prefect_mlops.tracking import tables as t
from prefect_mlops.tracking.entities import Run, RunData, RunInfo, RunStatus, ViewType

T = TypeVar("T")
NAN = float("nan")
_IN_CHUNK = 500


def lifecycle_filter(column: sa.ColumnElement[Any], view: ViewType) -> sa.ColumnElement[bool]:
    """The condition on a ``lifecycle_stage`` column that ``view`` asks for."""
    if view is ViewType.ACTIVE_ONLY:
        return column == "active"
    if view is ViewType.DELETED_ONLY:
        return column == "deleted"
    return sa.true()


def chunks(items: Sequence[T], size: int = _IN_CHUNK) -> Iterable[Sequence[T]]:
    """``items`` in slices small enough for an ``IN (...)`` list."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def numeric_value(text: str) -> float | None:
    """The number a param value spells, if it spells a finite one."""
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def from_db(value: float | None) -> float:
    """A stored metric value: NULL is how NaN is stored."""
    return NAN if value is None else value


def info_from_row(r: Any) -> RunInfo:
    """A `RunInfo` from a ``runs`` row (or a dict of its columns)."""
    get = r.__getitem__ if isinstance(r, dict) else r._mapping.__getitem__
    return RunInfo(
        run_id=get("run_id"),
        experiment_id=get("experiment_id"),
        run_name=get("run_name"),
        status=RunStatus(get("status")),
        start_time=get("start_time"),
        end_time=get("end_time"),
        lifecycle_stage=get("lifecycle_stage"),
        user_id=get("user_id"),
        artifact_uri=get("artifact_uri"),
        parent_run_id=get("parent_run_id"),
        prefect_flow_run_id=get("prefect_flow_run_id"),
    )


class Replayed(Exception):
    """The write's idempotency key was applied before: its transaction stores nothing."""


class SqlStoreBase:
    """The engine and the plumbing the store's parts share."""

    _keys: threading.local

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.engine: Engine = get_engine(database_url)
        ensure_schema(self.engine)
        self._dialect = self.engine.dialect.name
        mark = self._mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        self._insert_metrics_sql = (
            "INSERT INTO metrics (run_id, key, value, timestamp, step) "
            f"VALUES ({mark}, {mark}, {mark}, {mark}, {mark})"
        )
        self._latest_upsert = self._build_latest_upsert()
        self._keys = threading.local()  # the idempotency key the next write claims
        self._tx = threading.local()  # the transaction `atomically` holds open, per thread

    # -- transactions -----------------------------------------------------------------------

    def _write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a write transaction; under `apply_once` the first one also claims
        the request's key, and raises `Replayed` (storing nothing) if it was claimed before."""
        joined = getattr(self._tx, "conn", None)
        if joined is not None:  # inside `atomically`: part of its transaction
            return fn(joined)
        key = getattr(self._keys, "key", None)

        def attempt() -> T:
            with write_transaction(self.engine) as conn:
                if key is not None and not self._claim_key(conn, key):
                    raise Replayed(key)
                return fn(conn)

        result = with_lock_retry(attempt)
        self._keys.key = None
        return result

    def atomically(self, work: Callable[[], T]) -> T:
        """Run ``work`` (calls to this store's write methods) as one transaction: every write
        in it is stored, or none (a refused param, a crash midway)."""
        key = getattr(self._keys, "key", None)

        def attempt() -> T:
            with write_transaction(self.engine) as conn:
                if key is not None and not self._claim_key(conn, key):
                    raise Replayed(key)
                self._tx.conn = conn
                try:
                    return work()
                finally:
                    self._tx.conn = None

        result = with_lock_retry(attempt)
        self._keys.key = None
        return result

    def _claim_key(self, conn: Connection, key: str) -> bool:
        stmt = self._insert(t.request_keys).on_conflict_do_nothing()
        return bool(conn.execute(stmt, [{"key": key, "created_time": now_ms()}]).rowcount)

    def _read(self, fn: Callable[[Connection], T]) -> T:
        def attempt() -> T:
            with self.engine.connect() as conn:
                return fn(conn)

        return with_lock_retry(attempt)

    def _driver_connection(self, conn: Connection) -> Any:
        """The DB-API connection under ``conn``, for hot paths that skip SQLAlchemy's rows."""
        raw = conn.connection.driver_connection
        if raw is None:
            raise StorageError(
                f"The connection to {mask_url(self.database_url)} has no open driver "
                "connection (it was invalidated); retry the call."
            )
        return raw

    def _insert(self, table: sa.Table) -> Any:
        dialect = postgresql if self._dialect == "postgresql" else sqlite
        return dialect.insert(table)

    # -- statements several parts run -------------------------------------------------------

    def _build_latest_upsert(self) -> Any:
        """Fold new points into ``latest_metrics``: the newer (step, timestamp) wins; min,
        max and count accumulate."""
        lm = t.latest_metrics
        stmt = self._insert(lm)
        ex = stmt.excluded
        newer = sa.or_(
            ex.step > lm.c.step, sa.and_(ex.step == lm.c.step, ex.timestamp >= lm.c.timestamp)
        )

        def pick(new: Any, old: Any, better: Any) -> Any:
            return sa.case((old.is_(None), new), (new.is_(None), old), (better, new), else_=old)

        return stmt.on_conflict_do_update(
            index_elements=[lm.c.run_id, lm.c.key],
            set_={
                "value": sa.case((newer, ex.value), else_=lm.c.value),
                "timestamp": sa.case((newer, ex.timestamp), else_=lm.c.timestamp),
                "step": sa.case((newer, ex.step), else_=lm.c.step),
                "min_value": pick(ex.min_value, lm.c.min_value, ex.min_value < lm.c.min_value),
                "max_value": pick(ex.max_value, lm.c.max_value, ex.max_value > lm.c.max_value),
                "count": lm.c.count + ex.count,
            },
        )

    def _tag_upsert(self) -> Any:
        stmt = self._insert(t.tags)
        return stmt.on_conflict_do_update(
            index_elements=[t.tags.c.run_id, t.tags.c.key], set_={"value": stmt.excluded.value}
        )

    def _artifact_upsert(self) -> Any:
        stmt = self._insert(t.artifacts)
        return stmt.on_conflict_do_update(
            index_elements=[t.artifacts.c.run_id, t.artifacts.c.path],
            set_={
                "size": stmt.excluded.size,
                "sha256": stmt.excluded.sha256,
                "created_time": stmt.excluded.created_time,
            },
        )

    def _refresh_search_docs(self, conn: Connection, run_ids: Sequence[str]) -> None:
        """Rebuild the full-text documents (run name + tag values) of ``run_ids``."""
        for chunk in chunks(list(run_ids)):
            marks = ", ".join([self._mark] * len(chunk))
            params = tuple(chunk)
            if self._dialect == "postgresql":
                conn.exec_driver_sql(
                    "UPDATE runs SET search_doc = to_tsvector('simple', run_name || ' ' || "
                    "COALESCE((SELECT string_agg(value, ' ') FROM tags "
                    f"WHERE tags.run_id = runs.run_id), '')) WHERE run_id IN ({marks})",
                    params,
                )
            else:
                conn.exec_driver_sql(
                    "DELETE FROM runs_fts WHERE rowid IN "
                    f"(SELECT rowid FROM runs WHERE run_id IN ({marks}))",
                    params,
                )
                conn.exec_driver_sql(
                    "INSERT INTO runs_fts(rowid, doc) SELECT rowid, run_name || ' ' || "
                    "COALESCE((SELECT group_concat(value, ' ') FROM tags "
                    f"WHERE tags.run_id = runs.run_id), '') FROM runs WHERE run_id IN ({marks})",
                    params,
                )

    def _load_runs(self, conn: Connection, rows: Sequence[Any]) -> list[Run]:
        """Runs with their params, tags and latest metrics, from ``runs`` rows."""
        ids = [r.run_id for r in rows]
        params: dict[str, dict[str, str]] = {i: {} for i in ids}
        tags: dict[str, dict[str, str]] = {i: {} for i in ids}
        metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
        for chunk in chunks(ids):
            for run_id, key, value in conn.execute(
                sa.select(t.params.c.run_id, t.params.c.key, t.params.c.value).where(
                    t.params.c.run_id.in_(chunk)
                )
            ):
                params[run_id][key] = value
            for run_id, key, value in conn.execute(
                sa.select(t.tags.c.run_id, t.tags.c.key, t.tags.c.value).where(
                    t.tags.c.run_id.in_(chunk)
                )
            ):
                tags[run_id][key] = value
            lm = t.latest_metrics
            for run_id, key, value in conn.execute(
                sa.select(lm.c.run_id, lm.c.key, lm.c.value).where(lm.c.run_id.in_(chunk))
            ):
                metrics[run_id][key] = from_db(value)
        return [
            Run(
                info=info_from_row(r),
                data=RunData(
                    params=params[r.run_id], metrics=metrics[r.run_id], tags=tags[r.run_id]
                ),
            )
            for r in rows
        ]
