"""Bulk import: many new finished runs written with the driver's ``executemany``."""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter, itemgetter
from typing import Any

from sqlalchemy.engine import Connection

from prefect_mlops.core.errors import StorageError
from prefect_mlops.tracking import tables as t
from prefect_mlops.tracking.entities import MetricRow, RunInfo
from prefect_mlops.tracking.store.sql.engine import SqlStoreBase, numeric_value
from prefect_mlops.tracking.store.sql.metrics import summarise

# The columns of ``runs``, in table order: what a RunInfo holds, then deleted_time (NULL for
# a new run).
_INFO_COLUMNS = (
    "run_id",
    "experiment_id",
    "run_name",
    "status",
    "start_time",
    "end_time",
    "lifecycle_stage",
    "user_id",
    "artifact_uri",
    "parent_run_id",
    "prefect_flow_run_id",
)
_COLUMNS = (*_INFO_COLUMNS, "deleted_time")
_STATUS = _INFO_COLUMNS.index("status")
_info_values = attrgetter(*_INFO_COLUMNS)


def _run_values(info: RunInfo) -> tuple[Any, ...]:
    values = _info_values(info)
    return (*values[:_STATUS], info.status.value, *values[_STATUS + 1 :], None)


class BulkMixin(SqlStoreBase):
    def create_runs_bulk(
        self,
        runs: Sequence[RunInfo],
        params: Sequence[tuple[str, str, str]],
        tags: Sequence[tuple[str, str, str]],
        metrics: Sequence[MetricRow],
    ) -> None:
        """Insert new runs, their params, tags (``(run_id, key, value)``) and metric points in
        one transaction.

        Rows go through the driver's ``executemany`` (no per-row SQLAlchemy work), sorted by
        run id and key so that each index is filled in order. On SQLite the runs get explicit
        rowids and their full-text documents are built here from the tag rows in hand.
        """
        if not runs:
            return
        mark = self._mark
        by_run_key = itemgetter(0, 1)
        columns = [c.name for c in t.runs.columns]
        if tuple(columns) != _COLUMNS:
            raise StorageError(f"The runs table has columns {columns}; expected {list(_COLUMNS)}.")
        run_values = [_run_values(info) for info in runs]
        param_rows = sorted(((r, k, v, numeric_value(v)) for r, k, v in params), key=by_run_key)
        tag_rows = sorted(tags, key=by_run_key)
        points = sorted(metrics, key=by_run_key)  # stable: each series keeps its order
        summary = sorted(summarise(metrics), key=itemgetter("run_id", "key"))
        upsert = self._latest_upsert.compile(
            dialect=self.engine.dialect,
            column_keys=[c.name for c in t.latest_metrics.columns],
        )
        upsert_sql = str(upsert)
        if upsert.positional:
            order = itemgetter(*upsert.positiontup or ())
            latest_rows: list[Any] = [order(r) for r in summary]
        else:
            latest_rows = summary
        sqlite = self._dialect == "sqlite"

        def do(conn: Connection) -> None:
            cur = self._driver_connection(conn).cursor()
            try:
                names = ", ".join(f'"{c}"' for c in columns)
                marks = ", ".join([mark] * len(columns))
                if sqlite:
                    cur.execute("SELECT COALESCE(MAX(rowid), 0) FROM runs")
                    first = int(cur.fetchone()[0]) + 1
                    cur.executemany(
                        f"INSERT INTO runs (rowid, {names}) VALUES (?, {marks})",
                        [(first + i, *row) for i, row in enumerate(run_values)],
                    )
                else:
                    cur.executemany(f"INSERT INTO runs ({names}) VALUES ({marks})", run_values)
                cur.executemany(
                    f'INSERT INTO params (run_id, "key", value, num_value) '
                    f"VALUES ({mark}, {mark}, {mark}, {mark})",
                    param_rows,
                )
                cur.executemany(
                    f'INSERT INTO tags (run_id, "key", value) VALUES ({mark}, {mark}, {mark})',
                    tag_rows,
                )
                cur.executemany(self._insert_metrics_sql, points)
                if latest_rows:
                    cur.executemany(upsert_sql, latest_rows)
                if sqlite:
                    words: dict[str, list[str]] = {}
                    for run_id, _key, value in tags:
                        words.setdefault(run_id, []).append(value)
                    cur.execute("DELETE FROM runs_fts WHERE rowid >= ?", (first,))
                    cur.executemany(
                        "INSERT INTO runs_fts(rowid, doc) VALUES (?, ?)",
                        [
                            (first + i, f"{r.run_name} {' '.join(words.get(r.run_id, ()))}")
                            for i, r in enumerate(runs)
                        ],
                    )
            finally:
                cur.close()
            if not sqlite:
                self._refresh_search_docs(conn, [r.run_id for r in runs])

        self._write(do)
