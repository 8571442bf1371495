"""All SQL of the tracking domain, behind one class.

Nothing above this module touches a connection: the client passes ids and plain values and
gets entities back, so a REST-backed store can implement the same methods later.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from prefect_mlops.core.db import get_engine, with_lock_retry, write_transaction
from prefect_mlops.core.errors import AlreadyExists, Conflict, NotFound
from prefect_mlops.core.ids import new_id, now_ms
from prefect_mlops.core.migrate import ensure_schema
from prefect_mlops.tracking import tables as t
from prefect_mlops.tracking.entities import (
    Experiment,
    FileInfo,
    Histogram,
    Metric,
    MetricHistory,
    MetricSummary,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)

T = TypeVar("T")
# run_id, key, value (None for NaN, as stored), timestamp, step
MetricRow = tuple[str, str, float | None, int, int]
_NAN = float("nan")
_IN_CHUNK = 500


def _lifecycle_filter(column: sa.ColumnElement[Any], view: ViewType) -> sa.ColumnElement[bool]:
    if view is ViewType.ACTIVE_ONLY:
        return column == "active"
    if view is ViewType.DELETED_ONLY:
        return column == "deleted"
    return sa.true()


def _chunks(items: Sequence[T], size: int = _IN_CHUNK) -> Iterable[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def numeric_value(text: str) -> float | None:
    """The number a param value spells, if it spells a finite one."""
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _from_db(value: float | None) -> float:
    return _NAN if value is None else value


class SqlTrackingStore:
    """Experiments, runs, params, tags, metrics, histograms and artifact records in SQL."""

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

    # -- plumbing ---------------------------------------------------------------------------

    def _write(self, fn: Callable[[Connection], T]) -> T:
        def attempt() -> T:
            with write_transaction(self.engine) as conn:
                return fn(conn)

        return with_lock_retry(attempt)

    def _read(self, fn: Callable[[Connection], T]) -> T:
        def attempt() -> T:
            with self.engine.connect() as conn:
                return fn(conn)

        return with_lock_retry(attempt)

    def _insert(self, table: sa.Table) -> Any:
        from sqlalchemy.dialects import postgresql, sqlite

        dialect = postgresql if self._dialect == "postgresql" else sqlite
        return dialect.insert(table)

    # -- experiments ------------------------------------------------------------------------

    def create_experiment(
        self, name: str, artifact_root: str, tags: dict[str, str] | None = None
    ) -> str:
        experiment_id = new_id()
        now = now_ms()

        def do(conn: Connection) -> None:
            conn.execute(
                t.experiments.insert().values(
                    experiment_id=experiment_id,
                    name=name,
                    artifact_location=f"{artifact_root.rstrip('/')}/{experiment_id}",
                    lifecycle_stage="active",
                    creation_time=now,
                    last_update_time=now,
                )
            )
            if tags:
                conn.execute(
                    t.experiment_tags.insert(),
                    [
                        {"experiment_id": experiment_id, "key": k, "value": v}
                        for k, v in tags.items()
                    ],
                )

        try:
            self._write(do)
        except IntegrityError:
            raise AlreadyExists(
                f"Experiment {name!r} already exists; use get_experiment_by_name({name!r}) "
                "or choose another name."
            ) from None
        return experiment_id

    def _experiment_from_rows(self, conn: Connection, rows: Sequence[Any]) -> list[Experiment]:
        ids = [r.experiment_id for r in rows]
        tags: dict[str, dict[str, str]] = {i: {} for i in ids}
        for chunk in _chunks(ids):
            for tag in conn.execute(
                sa.select(t.experiment_tags).where(t.experiment_tags.c.experiment_id.in_(chunk))
            ):
                tags[tag.experiment_id][tag.key] = tag.value
        return [
            Experiment(
                experiment_id=r.experiment_id,
                name=r.name,
                artifact_location=r.artifact_location,
                lifecycle_stage=r.lifecycle_stage,
                creation_time=r.creation_time,
                last_update_time=r.last_update_time,
                tags=tags[r.experiment_id],
            )
            for r in rows
        ]

    def get_experiment(self, experiment_id: str) -> Experiment:
        def do(conn: Connection) -> list[Experiment]:
            rows = conn.execute(
                sa.select(t.experiments).where(t.experiments.c.experiment_id == experiment_id)
            ).all()
            return self._experiment_from_rows(conn, rows)

        found = self._read(do)
        if not found:
            raise NotFound(f"No experiment with id {experiment_id!r}.")
        return found[0]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        def do(conn: Connection) -> list[Experiment]:
            rows = conn.execute(sa.select(t.experiments).where(t.experiments.c.name == name)).all()
            return self._experiment_from_rows(conn, rows)

        found = self._read(do)
        return found[0] if found else None

    def search_experiments(
        self,
        view: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        conditions: Sequence[Any] = (),
    ) -> list[Experiment]:
        def do(conn: Connection) -> list[Experiment]:
            rows = conn.execute(
                sa.select(t.experiments)
                .where(_lifecycle_filter(t.experiments.c.lifecycle_stage, view), *conditions)
                .order_by(t.experiments.c.last_update_time.desc(), t.experiments.c.name)
                .limit(max_results)
            ).all()
            return self._experiment_from_rows(conn, rows)

        return self._read(do)

    # -- runs -------------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        run_name: str,
        artifact_location: str,
        *,
        start_time: int | None = None,
        user_id: str = "",
        tags: dict[str, str] | None = None,
        parent_run_id: str | None = None,
        prefect_flow_run_id: str | None = None,
        status: RunStatus = RunStatus.RUNNING,
        params: Sequence[Param] = (),
    ) -> Run:
        run_id = new_id()
        values = {
            "run_id": run_id,
            "experiment_id": experiment_id,
            "run_name": run_name,
            "status": status.value,
            "start_time": start_time if start_time is not None else now_ms(),
            "end_time": None,
            "lifecycle_stage": "active",
            "user_id": user_id,
            "artifact_uri": f"{artifact_location.rstrip('/')}/{run_id}/artifacts",
            "parent_run_id": parent_run_id,
            "prefect_flow_run_id": prefect_flow_run_id,
            "deleted_time": None,
        }
        tag_rows = [{"run_id": run_id, "key": k, "value": v} for k, v in (tags or {}).items()]

        param_rows = [
            {"run_id": run_id, "key": k, "value": v, "num_value": numeric_value(v)}
            for k, v in params
        ]

        def do(conn: Connection) -> None:
            conn.execute(t.runs.insert().values(**values))
            if tag_rows:
                conn.execute(t.tags.insert(), tag_rows)
            if param_rows:
                conn.execute(t.params.insert(), param_rows)
            self._refresh_search_docs(conn, [run_id])

        self._write(do)
        info = self._info_from_row(values)
        return Run(
            info=info,
            data=RunData(
                params={p.key: p.value for p in params},
                tags={r["key"]: r["value"] for r in tag_rows},
            ),
        )

    @staticmethod
    def _info_from_row(r: Any) -> RunInfo:
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

    def get_run_info(self, run_id: str) -> RunInfo:
        row = self._read(
            lambda conn: conn.execute(sa.select(t.runs).where(t.runs.c.run_id == run_id)).first()
        )
        if row is None:
            raise NotFound(f"No run with id {run_id!r}.")
        return self._info_from_row(row)

    def run_id_for_flow_run(self, flow_run_id: str) -> str | None:
        """The id of the run bound to a Prefect flow run, if any."""
        return self._read(
            lambda conn: conn.execute(
                sa.select(t.runs.c.run_id).where(t.runs.c.prefect_flow_run_id == flow_run_id)
            ).scalar()
        )

    def get_run_by_flow_run_id(self, flow_run_id: str) -> Run | None:
        run_id = self.run_id_for_flow_run(flow_run_id)
        return self.get_run(run_id) if run_id else None

    def _load_runs(self, conn: Connection, rows: Sequence[Any]) -> list[Run]:
        ids = [r.run_id for r in rows]
        params: dict[str, dict[str, str]] = {i: {} for i in ids}
        tags: dict[str, dict[str, str]] = {i: {} for i in ids}
        metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
        for chunk in _chunks(ids):
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
                metrics[run_id][key] = _from_db(value)
        return [
            Run(
                info=self._info_from_row(r),
                data=RunData(
                    params=params[r.run_id], metrics=metrics[r.run_id], tags=tags[r.run_id]
                ),
            )
            for r in rows
        ]

    def get_run(self, run_id: str) -> Run:
        def do(conn: Connection) -> list[Run]:
            rows = conn.execute(sa.select(t.runs).where(t.runs.c.run_id == run_id)).all()
            return self._load_runs(conn, rows)

        found = self._read(do)
        if not found:
            raise NotFound(f"No run with id {run_id!r}.")
        return found[0]

    def search_runs(
        self,
        experiment_ids: Sequence[str] | None,
        view: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
    ) -> list[Run]:
        def do(conn: Connection) -> list[Run]:
            query = sa.select(t.runs).where(_lifecycle_filter(t.runs.c.lifecycle_stage, view))
            if experiment_ids is not None:
                query = query.where(t.runs.c.experiment_id.in_(list(experiment_ids)))
            query = query.order_by(t.runs.c.start_time.desc(), t.runs.c.run_id).limit(max_results)
            return self._load_runs(conn, conn.execute(query).all())

        return self._read(do)

    def list_running_bound_runs(self) -> list[RunInfo]:
        """Runs still RUNNING that belong to a Prefect flow run (candidates for reconcile)."""
        rows = self._read(
            lambda conn: conn.execute(
                sa.select(t.runs).where(
                    t.runs.c.status == RunStatus.RUNNING.value,
                    t.runs.c.prefect_flow_run_id.is_not(None),
                )
            ).all()
        )
        return [self._info_from_row(r) for r in rows]

    def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
        only_if_status: RunStatus | None = None,
    ) -> bool:
        """Update a run's info; with ``only_if_status`` only when it still has that status."""
        values: dict[str, Any] = {}
        if status is not None:
            values["status"] = status.value
        if end_time is not None:
            values["end_time"] = end_time
        if run_name is not None:
            values["run_name"] = run_name
        if not values:
            return False
        query = t.runs.update().where(t.runs.c.run_id == run_id).values(**values)
        if only_if_status is not None:
            query = query.where(t.runs.c.status == only_if_status.value)

        def do(conn: Connection) -> bool:
            changed = bool(conn.execute(query).rowcount)
            if changed and run_name is not None:
                self._refresh_search_docs(conn, [run_id])
            return changed

        return self._write(do)

    def set_lifecycle(self, run_id: str, stage: str) -> None:
        deleted_time = now_ms() if stage == "deleted" else None
        self._write(
            lambda conn: conn.execute(
                t.runs.update()
                .where(t.runs.c.run_id == run_id)
                .values(lifecycle_stage=stage, deleted_time=deleted_time)
            )
        )

    # -- params and tags --------------------------------------------------------------------

    def log_params(self, run_id: str, params: Sequence[Param]) -> None:
        if not params:
            return
        wanted = {p.key: p.value for p in params}

        def do(conn: Connection) -> None:
            existing = dict(
                conn.execute(
                    sa.select(t.params.c.key, t.params.c.value).where(
                        t.params.c.run_id == run_id, t.params.c.key.in_(list(wanted))
                    )
                ).all()
            )
            for key, value in wanted.items():
                if key in existing and existing[key] != value:
                    raise Conflict(
                        f"Param {key!r} of run {run_id} is already {existing[key]!r}; it cannot "
                        f"change to {value!r}. Params are immutable: log the new value under "
                        "another key, or start a new run."
                    )
            new = [
                {"run_id": run_id, "key": k, "value": v, "num_value": numeric_value(v)}
                for k, v in wanted.items()
                if k not in existing
            ]
            if new:
                conn.execute(t.params.insert(), new)

        self._write(do)

    def set_tags(self, run_id: str, tags: Sequence[RunTag]) -> None:
        if not tags:
            return
        rows = [{"run_id": run_id, "key": k, "value": v} for k, v in dict(tags).items()]
        stmt = self._tag_upsert()

        def do(conn: Connection) -> None:
            conn.execute(stmt, rows)
            self._refresh_search_docs(conn, [run_id])

        self._write(do)

    def delete_tag(self, run_id: str, key: str) -> bool:
        def do(conn: Connection) -> bool:
            query = t.tags.delete().where(t.tags.c.run_id == run_id, t.tags.c.key == key)
            deleted = bool(conn.execute(query).rowcount)
            self._refresh_search_docs(conn, [run_id])
            return deleted

        return self._write(do)

    # -- full-text documents ----------------------------------------------------------------

    def _refresh_search_docs(self, conn: Connection, run_ids: Sequence[str]) -> None:
        """Rebuild the full-text documents (run name + tag values) of ``run_ids``."""
        for chunk in _chunks(list(run_ids)):
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

    def full_text_condition(self, query: str) -> Any:
        """Runs whose name or tag values contain every word of ``query`` as a word prefix
        ("resnet augment" finds "resnet50-augment"). Only word characters reach the
        full-text engine, so its query syntax cannot be injected."""
        words = re.findall(r"\w+", query)
        if not words:
            return sa.false()
        if self._dialect == "postgresql":
            expression = " & ".join(f"{w}:*" for w in words)
            return sa.literal_column("runs.search_doc").op("@@")(
                sa.func.to_tsquery("simple", sa.bindparam("fts", expression))
            )
        fts = " ".join(f'"{w}"*' for w in words)
        matches: Any = sa.select(sa.literal_column("rowid")).select_from(sa.table("runs_fts"))
        matches = matches.where(sa.literal_column("runs_fts").op("MATCH")(sa.bindparam("fts", fts)))
        return sa.literal_column("runs.rowid").in_(matches)

    # -- metrics ----------------------------------------------------------------------------

    def _build_latest_upsert(self) -> Any:
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

    @staticmethod
    def _summarise(rows: Sequence[MetricRow]) -> list[dict[str, Any]]:
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

    def log_metric_rows(self, rows: Sequence[MetricRow]) -> None:
        """Persist points and fold them into ``latest_metrics``, in one transaction."""
        if not rows:
            return
        summary = self._summarise(rows)
        sql = self._insert_metrics_sql

        def do(conn: Connection) -> None:
            raw = conn.connection.driver_connection
            assert raw is not None
            cur = raw.cursor()
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
            raw = conn.connection.driver_connection
            assert raw is not None
            cur = raw.cursor()
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
            values = [_NAN if v is None else v for v in values]
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
            out[key].append(Metric(key, _NAN if v is None else v, ts, s))
        return out

    def get_metric_summaries(self, run_id: str) -> list[MetricSummary]:
        lm = t.latest_metrics
        rows = self._read(
            lambda conn: conn.execute(
                sa.select(lm).where(lm.c.run_id == run_id).order_by(lm.c.key)
            ).all()
        )
        return [
            MetricSummary(
                key=r.key,
                last=_from_db(r.value),
                step=r.step,
                timestamp=r.timestamp,
                min=_from_db(r.min_value),
                max=_from_db(r.max_value),
                count=r._mapping["count"],
            )
            for r in rows
        ]

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

    # -- artifacts --------------------------------------------------------------------------

    def end_run(
        self,
        run_id: str,
        status: RunStatus,
        end_time: int,
        *,
        tags: Mapping[str, str] | None = None,
        artifacts: Sequence[FileInfo] = (),
    ) -> None:
        """Set final ``tags``, record ``artifacts`` (already stored) and end the run with
        ``status``: one transaction, so a run is never seen ended without them."""
        tag_rows = [{"run_id": run_id, "key": k, "value": v} for k, v in (tags or {}).items()]
        created = now_ms()
        artifact_rows = [
            {
                "run_id": run_id,
                "path": f.path,
                "size": f.file_size,
                "sha256": f.sha256,
                "created_time": created,
            }
            for f in artifacts
        ]
        update = (
            t.runs.update()
            .where(t.runs.c.run_id == run_id)
            .values(status=status.value, end_time=end_time)
        )

        def do(conn: Connection) -> None:
            if tag_rows:
                conn.execute(self._tag_upsert(), tag_rows)
            if artifact_rows:
                conn.execute(self._artifact_upsert(), artifact_rows)
            if not conn.execute(update).rowcount:
                raise NotFound(f"No run with id {run_id!r}.")
            if tag_rows:
                self._refresh_search_docs(conn, [run_id])

        self._write(do)

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

    def record_artifact(self, run_id: str, path: str, size: int, sha256: str) -> None:
        stmt = self._artifact_upsert()
        row = {
            "run_id": run_id,
            "path": path,
            "size": size,
            "sha256": sha256,
            "created_time": now_ms(),
        }
        self._write(lambda conn: conn.execute(stmt, [row]))

    def list_artifacts(self, run_id: str, path: str = "") -> list[FileInfo]:
        """Direct children of ``path``: files with size and sha256, and sub-folders."""
        a = t.artifacts
        prefix = f"{path}/" if path else ""
        query = sa.select(a.c.path, a.c.size, a.c.sha256).where(a.c.run_id == run_id)
        if prefix:
            query = query.where(a.c.path.startswith(prefix, autoescape=True))
        rows = self._read(lambda conn: conn.execute(query.order_by(a.c.path)).all())
        entries: dict[str, FileInfo] = {}
        for full, size, digest in rows:
            rest = full[len(prefix) :]
            head, sep, _ = rest.partition("/")
            if sep:
                entries.setdefault(prefix + head, FileInfo(prefix + head, True))
            else:
                entries[full] = FileInfo(full, False, size, digest)
        return sorted(entries.values(), key=lambda f: f.path)

    def artifact_files(self, run_id: str, path: str = "") -> list[FileInfo]:
        """Every artifact file at or under ``path``, with size and sha256, sorted by path."""
        a = t.artifacts
        query = sa.select(a.c.path, a.c.size, a.c.sha256).where(a.c.run_id == run_id)
        if path:
            query = query.where(
                sa.or_(a.c.path == path, a.c.path.startswith(f"{path}/", autoescape=True))
            )
        rows = self._read(lambda conn: conn.execute(query.order_by(a.c.path)).all())
        return [FileInfo(p, False, size, digest) for p, size, digest in rows]

    # -- search -----------------------------------------------------------------------------

    def _scope(self, experiment_ids: Sequence[str] | None, view: ViewType) -> list[Any]:
        where = [_lifecycle_filter(t.runs.c.lifecycle_stage, view)]
        if experiment_ids is not None:
            where.append(t.runs.c.experiment_id.in_(list(experiment_ids)))
        return where

    def _joined_runs(
        self,
        conn: Connection,
        experiment_ids: Sequence[str] | None,
        run_filter: Any,
        inner: Sequence[Any] = (),
        lead: Any = None,
        wanted: int = 0,
    ) -> Any:
        """``runs`` inner-joined to the joins of ``run_filter`` (a `sql.RunFilter`) and to
        ``inner`` (`sql.Joined`).

        PostgreSQL's planner has the statistics to order the joins. SQLite's does not (and
        ``ANALYZE`` only gives it per-key averages, which mislead it into sorting every
        match of ``ORDER BY ... LIMIT``), so here the joins get a fixed order: the condition
        matching the fewest rows first (counted on its (key, value) index; counting stops
        once it cannot be the smallest), the others by primary key, ``runs`` last. When the
        page has a ``lead`` (see `sql.PagePhase`) and no condition matches fewer than about
        sqrt(page size x runs) rows, reading ``lead`` in sort order and stopping after a page
        beats sorting every match, so ``lead`` goes first.
        """
        from prefect_mlops.tracking.search import sql

        runs = t.runs
        joins = list(run_filter.joins)
        if self._dialect != "sqlite":
            return sql.join_chain([runs, *joins, *inner], fixed=False)
        if not joins and experiment_ids is None:
            if lead is None or lead is runs or run_filter.conditions:
                return sql.join_chain([runs, *inner], fixed=False)
            return sql.join_chain([lead, *[i for i in inner if i is not lead], runs], fixed=True)
        size = int(conn.exec_driver_sql("SELECT COALESCE(MAX(rowid), 0) FROM runs").scalar_one())
        threshold = math.isqrt(max(wanted, 1) * size) if lead is not None else size
        best = threshold + 1
        counted: list[tuple[int, int, Any]] = []  # (rows, position, join or runs: the scope)
        if experiment_ids is not None:
            rows = sa.select(sa.literal(1)).where(runs.c.experiment_id.in_(list(experiment_ids)))
            count = sa.select(sa.func.count()).select_from(rows.limit(best).subquery())
            counted.append((conn.execute(count).scalar_one(), -1, runs))
            best = min(best, counted[-1][0])
        for position, join in enumerate(joins):
            counted.append((conn.execute(join.estimate(best)).scalar_one(), position, join))
            best = min(best, counted[-1][0])
        counted.sort(key=lambda c: c[:2])
        ordered = [c[2] for c in counted if c[2] is not runs]
        first = lead if lead is not None and counted[0][0] > threshold else counted[0][2]
        if first is runs:
            return sql.join_chain([runs, *ordered, *inner], fixed=True)
        rest = [j for j in [*ordered, *inner] if j is not first]
        return sql.join_chain([first, *rest, runs], fixed=True)

    def search_page(
        self,
        experiment_ids: Sequence[str] | None,
        view: ViewType,
        run_filter: Any,
        ordering: Any,
        max_results: int,
        after: Sequence[Any] | None = None,
    ) -> tuple[list[Run], list[Any] | None]:
        """One page of runs and the sort values of its last row when more rows follow;
        ``run_filter`` and ``ordering`` come from `sql.FilterCompiler.compile_runs` and
        `sql.build_ordering`."""
        scope = [*self._scope(experiment_ids, view), *run_filter.conditions]
        phases = ordering.phases(after)

        def do(conn: Connection) -> tuple[list[Run], list[Any] | None]:
            rows: list[Any] = []
            for phase in phases:
                wanted = max_results + 1 - len(rows)
                if wanted <= 0:
                    break
                joined = self._joined_runs(
                    conn, experiment_ids, run_filter, phase.inner, phase.lead, wanted
                )
                for alias, on in phase.outer:
                    joined = joined.outerjoin(alias, on)
                query = (
                    sa.select(t.runs, *[e.label(f"_sort{i}") for i, e in enumerate(phase.exprs)])
                    .select_from(joined)
                    .where(*scope, *phase.where)
                    .order_by(*phase.order_by)
                    .limit(wanted)
                )
                rows += conn.execute(query).all()
            more = len(rows) > max_results
            rows = rows[:max_results]
            last = None
            if more and rows:
                mapping = rows[-1]._mapping
                last = [mapping[f"_sort{i}"] for i in range(len(ordering.exprs))]
            return self._load_runs(conn, rows), last

        return self._read(do)

    def count_runs(
        self, experiment_ids: Sequence[str] | None, view: ViewType, run_filter: Any
    ) -> int:
        def do(conn: Connection) -> int:
            joined = self._joined_runs(conn, experiment_ids, run_filter)
            query = sa.select(sa.func.count()).select_from(joined)
            query = query.where(*self._scope(experiment_ids, view), *run_filter.conditions)
            return int(conn.execute(query).scalar_one())

        return self._read(do)

    def aggregate(
        self,
        experiment_ids: Sequence[str] | None,
        view: ViewType,
        run_filter: Any,
        group_by: Sequence[tuple[str, Any, Any]],
        metrics: Sequence[tuple[str, str]],
    ) -> list[dict[str, Any]]:
        """Group matching runs; ``group_by`` holds (label, join target or None, expression);
        ``metrics`` holds (metric key, function) with function in mean/min/max/sum/count/std."""
        outer: list[tuple[Any, Any]] = []
        columns: list[Any] = []
        for label, joined, expr in group_by:
            if joined is not None:
                outer.append(joined)
            columns.append(expr.label(label))
        metric_alias: dict[str, Any] = {}
        for key, _ in metrics:
            if key not in metric_alias:
                alias = t.latest_metrics.alias(f"am{len(metric_alias)}")
                outer.append(
                    (alias, sa.and_(alias.c.run_id == t.runs.c.run_id, alias.c.key == key))
                )
                metric_alias[key] = alias
        aggregates: list[Any] = [sa.func.count(t.runs.c.run_id).label("runs")]
        for i, (key, fn) in enumerate(metrics):
            value = metric_alias[key].c.value
            if fn == "std":
                aggregates += [
                    sa.func.avg(value).label(f"_a{i}"),
                    sa.func.avg(value * value).label(f"_q{i}"),
                    sa.func.count(value).label(f"_n{i}"),
                ]
                continue
            func: Any = {
                "mean": sa.func.avg,
                "min": sa.func.min,
                "max": sa.func.max,
                "sum": sa.func.sum,
                "count": sa.func.count,
            }[fn]
            aggregates.append(func(value).label(f"_m{i}"))

        def do(conn: Connection) -> list[Any]:
            joined = self._joined_runs(conn, experiment_ids, run_filter)
            for alias, on in outer:
                joined = joined.outerjoin(alias, on)
            query = (
                sa.select(*columns, *aggregates)
                .select_from(joined)
                .where(*self._scope(experiment_ids, view), *run_filter.conditions)
            )
            if columns:
                names: list[Any] = [sa.literal_column(f'"{c.name}"') for c in columns]
                query = query.group_by(*names).order_by(*names)
            return list(conn.execute(query).all())

        rows = self._read(do)
        out = []
        for row in rows:
            m = row._mapping
            record: dict[str, Any] = {label: m[label] for label, _, _ in group_by}
            record["runs"] = m["runs"]
            for i, (key, fn) in enumerate(metrics):
                if fn == "std":
                    mean, square, n = m[f"_a{i}"], m[f"_q{i}"], m[f"_n{i}"]
                    if not n or mean is None or square is None:  # None: NaN (inf - inf)
                        record[f"{key}.std"] = None
                    else:
                        variance = max(square - mean * mean, 0.0) * n / (n - 1) if n > 1 else 0.0
                        record[f"{key}.std"] = math.sqrt(variance)
                else:
                    value = m[f"_m{i}"]
                    record[f"{key}.{fn}"] = (
                        float(value) if fn != "count" and value is not None else value
                    )
            out.append(record)
        return out

    # -- saved searches ---------------------------------------------------------------------

    def save_search(self, row: dict[str, Any], overwrite: bool) -> None:
        stmt = self._insert(t.saved_searches).values(**row)
        if overwrite:
            stmt = stmt.on_conflict_do_update(
                index_elements=[t.saved_searches.c.name],
                set_={k: v for k, v in row.items() if k != "name"},
            )
        try:
            self._write(lambda conn: conn.execute(stmt))
        except IntegrityError:
            raise AlreadyExists(
                f"A saved search named {row['name']!r} exists; pass overwrite=True to replace it."
            ) from None

    def list_saved_searches(self) -> list[dict[str, Any]]:
        s = t.saved_searches
        rows = self._read(lambda conn: conn.execute(sa.select(s).order_by(s.c.name)).all())
        return [dict(r._mapping) for r in rows]

    def get_saved_search(self, name: str) -> dict[str, Any] | None:
        s = t.saved_searches
        row = self._read(lambda conn: conn.execute(sa.select(s).where(s.c.name == name)).first())
        return dict(row._mapping) if row else None

    def delete_saved_search(self, name: str) -> bool:
        s = t.saved_searches
        return bool(
            self._write(lambda conn: conn.execute(s.delete().where(s.c.name == name)).rowcount)
        )

    # -- dataset inputs ---------------------------------------------------------------------

    def log_inputs(self, run_id: str, inputs: Sequence[tuple[str, str, str]]) -> None:
        rows = [{"run_id": run_id, "name": n, "digest": d, "context": c} for n, d, c in set(inputs)]
        if not rows:
            return
        stmt = self._insert(t.run_datasets).on_conflict_do_nothing()
        self._write(lambda conn: conn.execute(stmt, rows))

    def get_inputs(self, run_id: str) -> list[tuple[str, str, str]]:
        d = t.run_datasets
        rows = self._read(
            lambda conn: conn.execute(
                sa.select(d.c.name, d.c.digest, d.c.context)
                .where(d.c.run_id == run_id)
                .order_by(d.c.name)
            ).all()
        )
        return [(r[0], r[1], r[2]) for r in rows]

    # -- bulk import ------------------------------------------------------------------------

    def create_runs_bulk(
        self,
        run_rows: Sequence[dict[str, Any]],
        params: Sequence[tuple[str, str, str]],
        tags: Sequence[tuple[str, str, str]],
        metrics: Sequence[MetricRow],
    ) -> None:
        """Insert prepared (new) runs, params, tags and metric points in one transaction.

        Rows go through the driver's ``executemany`` (no per-row SQLAlchemy work), sorted by
        run id and key so that each index is filled in order. On SQLite the runs get explicit
        rowids and their full-text documents are built here from the tag rows in hand.
        """
        if not run_rows:
            return
        mark = self._mark
        by_run_key = itemgetter(0, 1)
        columns = [c.name for c in t.runs.columns]
        run_values = [tuple(r[c] for c in columns) for r in run_rows]
        param_rows = sorted(((r, k, v, numeric_value(v)) for r, k, v in params), key=by_run_key)
        tag_rows = sorted(tags, key=by_run_key)
        points = sorted(metrics, key=by_run_key)  # stable: each series keeps its order
        summary = sorted(self._summarise(metrics), key=itemgetter("run_id", "key"))
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
            raw = conn.connection.driver_connection
            assert raw is not None
            cur = raw.cursor()
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
                            (first + i, f"{r['run_name']} {' '.join(words.get(r['run_id'], ()))}")
                            for i, r in enumerate(run_rows)
                        ],
                    )
            finally:
                cur.close()
            if not sqlite:
                self._refresh_search_docs(conn, [r["run_id"] for r in run_rows])

        self._write(do)
