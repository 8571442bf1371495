"""Metric points, the per-key ``latest_metrics`` summaries, and histograms.

Points are written and read through the driver's own cursor: SQLAlchemy's per-row work
would dominate a 100,000-point history.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from prefect_mlops.tracking import tables as t
from prefect_mlops.tracking.entities import (
    Histogram,
    Metric,
    MetricHistory,
    MetricRow,
    MetricSummary,
)
from prefect_mlops.tracking.store.sql.engine import NAN, SqlStoreBase, chunks, from_db


def summarise(rows: Sequence[MetricRow]) -> list[dict[str, Any]]:
    """The ``latest_metrics`` rows that ``rows`` fold into, one per (run, key)."""
    latest: dict[tuple[str, str], list[Any]] = {}
    for run_id, key, value, ts, step in rows:
        cur = latest.get((run_id, key))
        if cur is None:
            latest[(run_id, key)] = [value, ts, step, value, value, 1]
            continue
        if step > cur[2] or (step == cur[2] and ts >= cur[1]):
            cur[0], cur[1], cur[2] = value, ts, step
        if value is not None:
            if cur[3] is None or value < cur[3]:
                cur[3] = value
            if cur[4] is None or value > cur[4]:
                cur[4] = value
        cur[5] += 1
    return [
        {
            "run_id": run_id,
            "key": key,
            "value": v[0],
            "timestamp": v[1],
            "step": v[2],
            "min_value": v[3],
            "max_value": v[4],
            "count": v[5],
        }
        for (run_id, key), v in latest.items()
    ]


class MetricsMixin(SqlStoreBase):
    def log_metric_rows(self, rows: Sequence[MetricRow]) -> None:
        """Persist points and fold them into ``latest_metrics``, in one transaction."""
        if not rows:
            return
        summary = summarise(rows)
        sql = self._insert_metrics_sql

        def do(conn: Connection) -> None:
            cur = self._driver_connection(conn).cursor()
            try:
                cur.executemany(sql, rows)
            finally:
                cur.close()
            conn.execute(self._latest_upsert, summary)

        self._write(do)

    def get_metric_history(self, run_id: str, key: str) -> MetricHistory:
        """Read straight from the covering index with the driver's cursor: SQLAlchemy's row
        objects would triple the cost of a 100,000-point history."""
        mark = self._mark

        def do(conn: Connection) -> list[Any]:
            cur = self._driver_connection(conn).cursor()
            try:
                cur.execute(
                    "SELECT value, timestamp, step FROM metrics WHERE run_id = "
                    f"{mark} AND key = {mark} ORDER BY step, timestamp",
                    (run_id, key),
                )
                return list(cur.fetchall())
            finally:
                cur.close()

        rows = self._read(do)
        if not rows:
            return MetricHistory(key, [], [], [])
        values = list(map(itemgetter(0), rows))
        if None in values:
            values = [NAN if v is None else v for v in values]
        return MetricHistory(
            key, values, list(map(itemgetter(1), rows)), list(map(itemgetter(2), rows))
        )

    def get_metric_histories(self, run_id: str, keys: Sequence[str]) -> dict[str, list[Metric]]:
        """Histories of several metrics of one run in a single query."""
        m = t.metrics
        rows = self._read(
            lambda conn: conn.execute(
                sa.select(m.c.key, m.c.value, m.c.timestamp, m.c.step)
                .where(m.c.run_id == run_id, m.c.key.in_(list(keys)))
                .order_by(m.c.key, m.c.step, m.c.timestamp)
            ).all()
        )
        out: dict[str, list[Metric]] = {k: [] for k in keys}
        for key, v, ts, s in rows:
            out[key].append(Metric(key, NAN if v is None else v, ts, s))
        return out

    def get_metric_summaries(self, run_id: str) -> list[MetricSummary]:
        return self.get_metric_summaries_many([run_id])[run_id]

    def get_metric_summaries_many(self, run_ids: Sequence[str]) -> dict[str, list[MetricSummary]]:
        lm = t.latest_metrics
        found: dict[str, list[MetricSummary]] = {run_id: [] for run_id in run_ids}

        def do(conn: Connection) -> None:
            for chunk in chunks(list(found)):
                query = sa.select(lm).where(lm.c.run_id.in_(chunk)).order_by(lm.c.run_id, lm.c.key)
                for r in conn.execute(query):
                    found[r.run_id].append(
                        MetricSummary(
                            key=r.key,
                            last=from_db(r.value),
                            step=r.step,
                            timestamp=r.timestamp,
                            min=from_db(r.min_value),
                            max=from_db(r.max_value),
                            count=r._mapping["count"],
                        )
                    )

        self._read(do)
        return found

    # -- histograms -------------------------------------------------------------------------

    def log_histogram(self, run_id: str, hist: Histogram) -> None:
        row = {
            "run_id": run_id,
            "key": hist.key,
            "step": hist.step,
            "timestamp": hist.timestamp,
            "edges": json.dumps([e if math.isfinite(e) else str(e) for e in hist.edges]),
            "counts": json.dumps(hist.counts),
        }
        self._write(lambda conn: conn.execute(t.histograms.insert().values(**row)))

    def get_histograms(self, run_id: str, key: str) -> list[Histogram]:
        h = t.histograms
        rows = self._read(
            lambda conn: conn.execute(
                sa.select(h).where(h.c.run_id == run_id, h.c.key == key).order_by(h.c.step)
            ).all()
        )
        return [
            Histogram(
                key=r.key,
                step=r.step,
                timestamp=r.timestamp,
                edges=[float(e) for e in json.loads(r.edges)],
                counts=json.loads(r.counts),
            )
            for r in rows
        ]

    def list_histogram_keys(self, run_id: str) -> list[str]:
        h = t.histograms
        return list(
            self._read(
                lambda conn: (
                    conn.execute(
                        sa.select(h.c.key).where(h.c.run_id == run_id).distinct().order_by(h.c.key)
                    )
                    .scalars()
                    .all()
                )
            )
        )
