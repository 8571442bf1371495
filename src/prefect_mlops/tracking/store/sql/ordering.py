"""Sort orders and keyset pagination over ``runs``.

Missing values sort last in both directions, and a NaN metric (stored as NULL) sorts after
every number but before a missing metric, in both directions; ties are broken by start time
(newest first), then run id: all as in MLflow. A metric key that may be missing carries a
second sort expression, its rank (0: the run has the metric, 1: it lacks it), so that NaN and
missing stay apart in the ORDER BY and in page tokens. Pages are read with keyset conditions
(`Ordering.phases`), never by offset; a page token carries the last row's sort values and a
fingerprint of the search it belongs to.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from prefect_mlops.core.errors import InvalidInput
from prefect_mlops.tracking import tables as t
from prefect_mlops.tracking.search.grammar import InvalidFilter, OrderKey
from prefect_mlops.tracking.store.sql.filters import attribute_column, canonical
from prefect_mlops.tracking.store.sql.joins import ENTITY_TABLES, Joined, RunFilter

runs = t.runs


@dataclass
class PagePhase:
    """One query of a page: inner joins besides the filter's (``inner``), LEFT JOINs
    (``outer``), extra WHERE conditions, the sort values to select (a NULL literal where every
    row's is NULL) and the ORDER BY. ``lead`` is what to read first for rows to come in sort
    order (so that reading can stop after a page): the alias whose (key, value) index gives
    that order, ``runs`` (ordered by start time), or None when no index gives it."""

    inner: list[Joined]
    lead: Any
    outer: list[tuple[Any, Any]]
    where: list[Any]
    exprs: list[Any]
    order_by: list[Any]


@dataclass
class Split:
    """How a first order key on a metric, param or tag is paged: ``joined`` (an inner join
    of the rows with a value) first, then one phase per ``rest`` entry: its WHERE condition
    and the constant sort values of the key's other expressions (``width`` in all) there.
    A metric has two such phases, NaN then missing; a param or tag one, missing."""

    joined: Joined
    width: int
    rest: list[tuple[Any, tuple[int, ...]]]


@dataclass
class Ordering:
    """Sort expressions with their directions; ``nullable[i]`` says whether ``exprs[i]`` can
    be NULL (NULLs sort last either way) and ``leads[i]`` what gives rows in the order of
    ``exprs[i]`` (see `PagePhase.lead`). Order keys that the filter did not already join
    are LEFT JOINed through ``outer_joins``, except a first key on a metric, param or tag
    (``split``): its runs are paged in phases, runs with a value first (an inner join the
    database can read in the order of its (key, value) index, stopping after a page), then
    the runs without one (for a metric: NaN, then missing)."""

    exprs: list[Any]
    descending: list[bool]
    nullable: list[bool]
    leads: list[Any]
    outer_joins: list[tuple[Any, Any]] = field(default_factory=list)
    split: Split | None = None

    def _order_by(self, start: int, nullable: Sequence[bool]) -> list[Any]:
        out = []
        for e, d, n in zip(self.exprs[start:], self.descending[start:], nullable, strict=True):
            clause = e.desc() if d else e.asc()
            out.append(clause.nulls_last() if n else clause)
        return out

    def phases(self, after: Sequence[Any] | None) -> list[PagePhase]:
        """The queries that fill a page, in order: each returns rows strictly after
        ``after`` (a previous page's last sort values), and every row of a phase sorts
        before every row of the next."""
        outer = self.outer_joins
        if self.split is None:
            where = (
                [] if after is None else [_after(self.exprs, self.descending, self.nullable, after)]
            )
            order = self._order_by(0, self.nullable)
            return [PagePhase([], self.leads[0], outer, where, self.exprs, order)]
        split, width = self.split, self.split.width
        out = []
        nullable = [False, *self.nullable[1:]]
        if after is None or after[0] is not None:
            where = [] if after is None else [_after(self.exprs, self.descending, nullable, after)]
            order = self._order_by(0, nullable)
            out.append(PagePhase([split.joined], split.joined, outer, where, self.exprs, order))
        rest = self.exprs[width:]
        started = after is None or after[0] is not None
        for condition, constants in split.rest:
            where = [condition]
            if not started:
                if tuple(after[1:width]) != constants:  # type: ignore[index]
                    continue  # the previous page ended in a later phase
                started = True
                where.append(
                    _after(rest, self.descending[width:], self.nullable[width:], after[width:])  # type: ignore[index]
                )
            exprs = [sa.null(), *[sa.literal(c) for c in constants], *rest]
            order = self._order_by(width, self.nullable[width:])
            out.append(PagePhase([], self.leads[width], outer, where, exprs, order))
        return out


def _after(
    exprs: Sequence[Any],
    descending: Sequence[bool],
    nullable: Sequence[bool],
    values: Sequence[Any],
) -> Any:
    """Rows strictly after the row whose sort values are ``values`` (NULLs last)."""
    clauses = []
    for i, (expr, desc, null, value) in enumerate(
        zip(exprs, descending, nullable, values, strict=True)
    ):
        if value is None:
            continue  # nothing sorts after NULL within this key
        beyond = (expr < value) if desc else (expr > value)
        equal_before = [
            (e.is_(None) if v is None else e == v)
            for e, v in zip(exprs[:i], values[:i], strict=True)
        ]
        clauses.append(sa.and_(*equal_before, sa.or_(beyond, expr.is_(None)) if null else beyond))
    if not clauses:
        return sa.false()
    condition = sa.or_(*clauses)
    if not nullable[0] and values[0] is not None:
        # Implied by the above; spelled out so that an index on the first key serves it.
        bound = (exprs[0] <= values[0]) if descending[0] else (exprs[0] >= values[0])
        condition = sa.and_(bound, condition)
    return condition


def _not_null(expr: Any) -> bool:
    return isinstance(expr, sa.Column) and not expr.nullable


def _split(entity: str, key: str, table: sa.Table, alias: Any, prefix: str) -> Split:
    """The phases of a first order key on ``entity`` ``key`` (see `Split`)."""

    def probe(suffix: str, *conditions: Any) -> Any:
        row = table.alias(f"{prefix}{suffix}")
        return sa.exists().where(
            row.c.run_id == runs.c.run_id, row.c.key == key, *[c(row) for c in conditions]
        )

    tests: tuple[Callable[[Any], Any], ...] = ()
    if table.c.value.nullable:
        tests = (lambda tb: tb.c.value.is_not(None),)
    joined = Joined(entity, key, table, alias, tests, False)
    if entity == "metrics":
        nan = probe("n", lambda tb: tb.c.value.is_(None))
        return Split(joined, 2, [(nan, (0,)), (~probe("x"), (1,))])
    return Split(joined, 1, [(~probe("x", *tests), ())])


def build_ordering(
    text: str, keys: Sequence[OrderKey], run_filter: RunFilter | None = None
) -> Ordering:
    """The ordering for ``keys``; order keys that ``run_filter`` inner-joins reuse its join."""
    ordering = Ordering([], [], [], [])
    for n, key in enumerate(keys):
        ident = canonical(key.ident)
        lead: Any = None
        rank: Any = None
        if ident.entity in ENTITY_TABLES:
            joined = run_filter.joined(ident.entity, ident.key) if run_filter else None
            if joined is not None:
                expr = joined.alias.c.value
                nullable = joined.nullable
                # NULLs sort last: natural for DESC on SQLite, not for ASC
                lead = joined if key.descending or not nullable else None
            else:
                table = ENTITY_TABLES[ident.entity]
                prefix = "om" if ident.entity == "metrics" else f"o{ident.entity[0]}"
                alias = table.alias(f"{prefix}{n}")
                expr, nullable = alias.c.value, True
                if ident.entity == "metrics":  # NaN (a NULL value) before missing (no row)
                    rank = sa.case((alias.c.run_id.is_(None), 1), else_=0)
                if n == 0:
                    ordering.split = _split(ident.entity, ident.key, table, alias, prefix)
                    lead = ordering.split.joined
                else:
                    on = sa.and_(alias.c.run_id == runs.c.run_id, alias.c.key == ident.key)
                    ordering.outer_joins.append((alias, on))
        elif ident.entity == "attributes":
            expr = attribute_column(text, ident)[0]
            nullable = not _not_null(expr)
            lead = runs if expr is runs.c.start_time else None
        else:
            raise InvalidFilter(text, ident.pos, "runs cannot be ordered by dataset fields")
        ordering.exprs.append(expr)
        ordering.descending.append(key.descending)
        ordering.nullable.append(nullable)
        ordering.leads.append(lead)
        if rank is not None:
            ordering.exprs.append(rank)
            ordering.descending.append(False)
            ordering.nullable.append(False)
            ordering.leads.append(None)
    if not any(e is runs.c.start_time for e in ordering.exprs):
        ordering.exprs.append(runs.c.start_time)
        ordering.descending.append(True)
        ordering.nullable.append(False)
        ordering.leads.append(runs)
    ordering.exprs.append(runs.c.run_id)
    ordering.descending.append(False)
    ordering.nullable.append(False)
    ordering.leads.append(None)
    return ordering


def encode_token(values: Sequence[Any], fingerprint: str) -> str:
    raw = json.dumps({"v": list(values), "f": fingerprint}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str, fingerprint: str, count: int) -> list[Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        values = data["v"]
        ok = data["f"] == fingerprint and isinstance(values, list) and len(values) == count
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise InvalidInput(
            f"page_token {token[:24]!r}... does not belong to this search; pass the token "
            "returned by the previous page of the same search (same filter, order and "
            "experiments)."
        )
    return values


def fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]
