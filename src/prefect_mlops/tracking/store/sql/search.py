"""Run search: a page of runs, a count, grouped aggregates, full-text words, saved searches.

Filter strings are parsed (``search/grammar.py``) and compiled (filters.py) here; pages are
walked with keyset tokens (ordering.py), so inserting runs while paging neither repeats nor
skips any.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from prefect_mlops.core.errors import AlreadyExists, InvalidInput
from prefect_mlops.tracking import tables as t
from prefect_mlops.tracking.entities import Run, SavedSearch, ViewType
from prefect_mlops.tracking.search.grammar import (
    Identifier,
    InvalidFilter,
    parse_filter,
    parse_order_by,
    tokenize,
)
from prefect_mlops.tracking.store.sql import ordering as o
from prefect_mlops.tracking.store.sql.engine import SqlStoreBase, lifecycle_filter
from prefect_mlops.tracking.store.sql.filters import (
    BARE_ATTRIBUTES,
    FilterCompiler,
    attribute_column,
)
from prefect_mlops.tracking.store.sql.joins import RunFilter, join_chain

AGGREGATES = ("mean", "min", "max", "sum", "count", "std")


class SearchMixin(SqlStoreBase):
    # -- compiling --------------------------------------------------------------------------

    def _run_filter(self, filter_string: str | None, query: str | None) -> RunFilter:
        node = parse_filter(filter_string, BARE_ATTRIBUTES)
        run_filter = FilterCompiler(filter_string or "").compile_runs(node)
        if query is not None and query.strip():
            run_filter.conditions.append(self._full_text_condition(query))
        return run_filter

    def _full_text_condition(self, query: str) -> Any:
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

    @staticmethod
    def _ordering(order_by: Sequence[str] | None, run_filter: RunFilter | None) -> o.Ordering:
        keys = list(order_by or [])
        return o.build_ordering(", ".join(keys), parse_order_by(keys, BARE_ATTRIBUTES), run_filter)

    def _scope(self, experiment_ids: Sequence[str] | None, view: ViewType) -> list[Any]:
        where = [lifecycle_filter(t.runs.c.lifecycle_stage, view)]
        if experiment_ids is not None:
            where.append(t.runs.c.experiment_id.in_(list(experiment_ids)))
        return where

    def _joined_runs(
        self,
        conn: Connection,
        experiment_ids: Sequence[str] | None,
        run_filter: RunFilter,
        inner: Sequence[Any] = (),
        lead: Any = None,
        wanted: int = 0,
    ) -> Any:
        """``runs`` inner-joined to the joins of ``run_filter`` and to ``inner`` (`Joined`).

        PostgreSQL's planner has the statistics to order the joins. SQLite's does not (and
        ``ANALYZE`` only gives it per-key averages, which mislead it into sorting every
        match of ``ORDER BY ... LIMIT``), so here the joins get a fixed order: the condition
        matching the fewest rows first (counted on its (key, value) index; counting stops
        once it cannot be the smallest), the others by primary key, ``runs`` last. When the
        page has a ``lead`` (see `ordering.PagePhase`) and no condition matches fewer than
        about sqrt(page size x runs) rows, reading ``lead`` in sort order and stopping after a
        page beats sorting every match, so ``lead`` goes first.
        """
        runs = t.runs
        joins = list(run_filter.joins)
        if self._dialect != "sqlite":
            return join_chain([runs, *joins, *inner], fixed=False)
        if not joins and experiment_ids is None:
            if lead is None or lead is runs or run_filter.conditions:
                return join_chain([runs, *inner], fixed=False)
            return join_chain([lead, *[i for i in inner if i is not lead], runs], fixed=True)
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
            return join_chain([runs, *ordered, *inner], fixed=True)
        rest = [j for j in [*ordered, *inner] if j is not first]
        return join_chain([first, *rest, runs], fixed=True)

    # -- search, count, aggregate -----------------------------------------------------------

    def search_runs(
        self,
        experiment_ids: Sequence[str] | None,
        filter_string: str = "",
        view: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
        query: str | None = None,
    ) -> tuple[list[Run], str | None]:
        """One page of matching runs and the token of the next page (None on the last)."""
        run_filter = self._run_filter(filter_string, query)
        ordering = self._ordering(order_by, run_filter)
        scope = None if experiment_ids is None else list(experiment_ids)
        fingerprint = o.fingerprint(filter_string, list(order_by or []), scope, view.value, query)
        after = o.decode_token(page_token, fingerprint, len(ordering.exprs)) if page_token else None
        if scope == []:
            return [], None
        page, last = self._search_page(scope, view, run_filter, ordering, max_results, after)
        return page, (o.encode_token(last, fingerprint) if last is not None else None)

    def _search_page(
        self,
        experiment_ids: Sequence[str] | None,
        view: ViewType,
        run_filter: RunFilter,
        ordering: o.Ordering,
        max_results: int,
        after: Sequence[Any] | None = None,
    ) -> tuple[list[Run], list[Any] | None]:
        """One page of runs and the sort values of its last row when more rows follow."""
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
        self,
        experiment_ids: Sequence[str] | None,
        filter_string: str = "",
        view: ViewType = ViewType.ACTIVE_ONLY,
        query: str | None = None,
    ) -> int:
        if experiment_ids is not None and not experiment_ids:
            return 0
        run_filter = self._run_filter(filter_string, query)

        def do(conn: Connection) -> int:
            joined = self._joined_runs(conn, experiment_ids, run_filter)
            select = sa.select(sa.func.count()).select_from(joined)
            select = select.where(*self._scope(experiment_ids, view), *run_filter.conditions)
            return int(conn.execute(select).scalar_one())

        return self._read(do)

    def aggregate_runs(
        self,
        experiment_ids: Sequence[str] | None,
        filter_string: str = "",
        view: ViewType = ViewType.ACTIVE_ONLY,
        query: str | None = None,
        group_by: Sequence[str] = (),
        metrics: Sequence[tuple[str, str]] = (),
    ) -> list[dict[str, Any]]:
        """Group matching runs by ``group_by`` (params, tags, attributes) and aggregate the
        latest value of each (metric key, function), function in `AGGREGATES`."""
        groups = [_group_expr(g, n) for n, g in enumerate(group_by)]
        for key, fn in metrics:
            if fn not in AGGREGATES:
                raise InvalidInput(
                    f"Aggregate {fn!r} for metric {key!r} is not one of {list(AGGREGATES)}."
                )
        if experiment_ids is not None and not experiment_ids:
            return []
        return self._aggregate(
            experiment_ids, view, self._run_filter(filter_string, query), groups, metrics
        )

    def _aggregate(
        self,
        experiment_ids: Sequence[str] | None,
        view: ViewType,
        run_filter: RunFilter,
        group_by: Sequence[tuple[str, Any, Any]],
        metrics: Sequence[tuple[str, str]],
    ) -> list[dict[str, Any]]:
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

    def save_search(self, search: SavedSearch, overwrite: bool = False) -> None:
        """Store ``search`` after checking its filter and order (a broken one is refused)."""
        self._run_filter(search.filter_string, None)
        self._ordering(search.order_by, None)
        row = {
            "name": search.name,
            "filter_string": search.filter_string,
            "order_by": json.dumps(list(search.order_by)),
            "experiment_ids": None
            if search.experiment_ids is None
            else json.dumps(list(search.experiment_ids)),
            "query": search.query,
            "created_time": search.created_time,
        }
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

    def list_saved_searches(self) -> list[SavedSearch]:
        s = t.saved_searches
        rows = self._read(lambda conn: conn.execute(sa.select(s).order_by(s.c.name)).all())
        return [_saved(r._mapping) for r in rows]

    def get_saved_search(self, name: str) -> SavedSearch | None:
        s = t.saved_searches
        row = self._read(lambda conn: conn.execute(sa.select(s).where(s.c.name == name)).first())
        return _saved(row._mapping) if row else None

    def delete_saved_search(self, name: str) -> bool:
        s = t.saved_searches
        return bool(
            self._write(lambda conn: conn.execute(s.delete().where(s.c.name == name)).rowcount)
        )


def _saved(row: Any) -> SavedSearch:
    return SavedSearch(
        name=row["name"],
        filter_string=row["filter_string"],
        order_by=json.loads(row["order_by"]),
        experiment_ids=json.loads(row["experiment_ids"]) if row["experiment_ids"] else None,
        query=row["query"],
        created_time=row["created_time"],
    )


def _group_expr(text: str, n: int) -> tuple[str, Any, Any]:
    """(label, outer join or None, expression) of one ``group_by`` entry."""
    tokens = tokenize(text)
    ident = tokens[0].value
    if len(tokens) != 2 or not isinstance(ident, Identifier):
        raise InvalidFilter(text, 0, "group_by entries are identifiers like params.optimizer")
    if ident.entity in ("params", "tags"):
        table = t.params if ident.entity == "params" else t.tags
        alias = table.alias(f"g{n}")
        on = sa.and_(alias.c.run_id == t.runs.c.run_id, alias.c.key == ident.key)
        return text.strip(), (alias, on), alias.c.value
    if ident.entity == "attributes":
        return text.strip(), None, attribute_column(text, ident)[0]
    raise InvalidFilter(text, 0, "runs can be grouped by params, tags or attributes")
