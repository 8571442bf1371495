"""Turn a parsed filter and order-by into SQLAlchemy expressions over the ``runs`` table.

Every value is a bound parameter. Top-level AND-ed metric, param and tag comparisons become
inner joins on (run_id, key) (`FilterCompiler.compile_runs`), so the database can start from
the (key, value) index range of the most selective one and reach the others by primary key;
the rest (under OR or NOT, ``IS NULL``, attributes, datasets) become ``run_id [NOT] IN
(subquery)`` conditions. NULLs (missing values, NaN metrics) sort last in both directions;
ties are broken by start time (newest first), then run id, as in MLflow. Pages are read
with keyset conditions (`Ordering.phases`), never by offset.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles

from prefect_mlops.tracking import tables as t
from prefect_mlops.tracking.search.grammar import (
    And,
    Comparison,
    Identifier,
    InvalidFilter,
    Node,
    Not,
    Or,
    OrderKey,
)

runs = t.runs

NUMERIC_OPS = {"=", "!=", "<", "<=", ">", ">="}
STRING_OPS = {"=", "!=", "LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE", "IN", "NOT IN"}
NULL_OPS = {"IS NULL", "IS NOT NULL"}


def _tag_value(key: str) -> sa.ScalarSelect[Any]:
    return (
        sa.select(t.tags.c.value)
        .where(t.tags.c.run_id == runs.c.run_id, t.tags.c.key == key)
        .scalar_subquery()
    )


NUMERIC_ATTRIBUTES: dict[str, Any] = {
    "start_time": runs.c.start_time,
    "created": runs.c.start_time,
    "end_time": runs.c.end_time,
    "duration": runs.c.end_time - runs.c.start_time,
}
STRING_ATTRIBUTES: dict[str, Any] = {
    "run_id": runs.c.run_id,
    "run_name": runs.c.run_name,
    "status": runs.c.status,
    "user": runs.c.user_id,
    "user_id": runs.c.user_id,
    "artifact_uri": runs.c.artifact_uri,
    "experiment_id": runs.c.experiment_id,
    "lifecycle_stage": runs.c.lifecycle_stage,
    "parent_run_id": runs.c.parent_run_id,
    "prefect_flow_run_id": runs.c.prefect_flow_run_id,
    "flow_name": None,  # from the prefect.flow_name tag
    "deployment": None,  # from the prefect.deployment_id tag
}
_TAG_ATTRIBUTES = {"flow_name": "prefect.flow_name", "deployment": "prefect.deployment_id"}
DATASET_FIELDS = {
    "name": t.run_datasets.c.name,
    "digest": t.run_datasets.c.digest,
    "context": t.run_datasets.c.context,
}
VALID_ATTRIBUTES = sorted({*NUMERIC_ATTRIBUTES, *STRING_ATTRIBUTES})


def attribute_column(text: str, ident: Identifier) -> tuple[Any, bool]:
    """(column expression, is_numeric) for an attribute name."""
    key = ident.key
    if key in NUMERIC_ATTRIBUTES:
        return NUMERIC_ATTRIBUTES[key], True
    if key in _TAG_ATTRIBUTES:
        return _tag_value(_TAG_ATTRIBUTES[key]), False
    if key in STRING_ATTRIBUTES:
        return STRING_ATTRIBUTES[key], False
    raise InvalidFilter(
        text,
        ident.pos,
        f"unknown attribute {key!r}; valid attributes: {', '.join(VALID_ATTRIBUTES)}",
    )


def _string_condition(column: Any, op: str, value: Any) -> Any:
    if op == "=":
        return column == value
    if op == "!=":
        return column != value
    if op == "LIKE":
        return column.like(value)
    if op == "NOT LIKE":
        return column.not_like(value)
    if op == "ILIKE":
        return column.ilike(value)
    if op == "NOT ILIKE":
        return column.not_ilike(value)
    if op == "IN":
        return column.in_(list(value))
    if op == "NOT IN":
        return column.not_in(list(value))
    raise AssertionError(op)


def _numeric_condition(column: Any, op: str, value: float) -> Any:
    return {
        "=": column == value,
        "!=": column != value,
        "<": column < value,
        "<=": column <= value,
        ">": column > value,
        ">=": column >= value,
    }[op]


def _as_number(value: object) -> float | None:
    if isinstance(value, float):
        return value
    try:
        return float(str(value))
    except ValueError:
        return None


@dataclass(frozen=True)
class ValueTest:
    """A test on the value columns of a metric/param/tag row (None: the row only has to
    exist); built per table so that it applies to the base table or to an alias."""

    test: Callable[[Any], Any] | None


@dataclass(frozen=True, eq=False)
class Joined:
    """A run's row in ``table`` (latest_metrics, params or tags) for ``key``, passing
    ``tests``, inner-joined as ``alias``."""

    entity: str
    key: str
    table: sa.Table
    alias: Any
    tests: tuple[Callable[[Any], Any], ...]
    nullable: bool  # whether the joined row's value can be NULL (a NaN metric)

    def conditions(self) -> list[Any]:
        return [self.alias.c.key == self.key, *[test(self.alias) for test in self.tests]]

    def estimate(self, cap: int) -> Any:
        """How many rows of ``table`` pass (counting stops at ``cap``): an index-only scan."""
        table = self.table
        rows = (
            sa.select(sa.literal(1))
            .select_from(table)
            .where(table.c.key == self.key, *[test(table) for test in self.tests])
            .limit(cap)
        )
        return sa.select(sa.func.count()).select_from(rows.subquery())


class _FixedJoin(sa.sql.selectable.Join):
    """An inner join that SQLite must run with its left side as the outer loop."""

    inherit_cache = True


@compiles(_FixedJoin, "sqlite")
def _fixed_join_sqlite(element: _FixedJoin, compiler: Any, **kw: Any) -> str:
    # SQLite never reorders the two sides of a CROSS JOIN (otherwise an inner join); this
    # is SQLAlchemy's visit_join with that keyword.
    linter = kw.pop("from_linter", None)
    kw.pop("asfrom", None)
    if linter:
        linter.edges.update(
            itertools.product(
                [f._de_clone() for f in element.left._from_objects],
                [f._de_clone() for f in element.right._from_objects],
            )
        )
    left = element.left._compiler_dispatch(compiler, asfrom=True, from_linter=linter, **kw)
    right = element.right._compiler_dispatch(compiler, asfrom=True, from_linter=linter, **kw)
    assert element.onclause is not None
    on = element.onclause._compiler_dispatch(compiler, from_linter=linter, **kw)
    return f"{left} CROSS JOIN {right} ON {on}"


@dataclass
class RunFilter:
    """A compiled run filter: inner joins onto ``runs`` and WHERE conditions."""

    joins: list[Joined] = field(default_factory=list)
    conditions: list[Any] = field(default_factory=list)

    def joined(self, entity: str, key: str) -> Joined | None:
        return next((j for j in self.joins if (j.entity, j.key) == (entity, key)), None)


def join_chain(tables: Sequence[Joined | sa.Table], *, fixed: bool) -> Any:
    """Inner joins of ``tables`` (`Joined` rows, and ``runs`` itself) on the run id of the
    first. ``fixed`` makes SQLite read them in this order (a CROSS JOIN chain)."""
    first = tables[0]
    if isinstance(first, Joined):
        base, run_id, pending = first.alias, first.alias.c.run_id, first.conditions()
    else:
        base, run_id, pending = first, runs.c.run_id, []
    for item in tables[1:]:
        if isinstance(item, Joined):
            right, on = item.alias, [item.alias.c.run_id == run_id, *item.conditions()]
        else:
            right, on = item, [runs.c.run_id == run_id]
        on, pending = [*on, *pending], []
        base = (_FixedJoin if fixed else sa.sql.selectable.Join)(base, right, sa.and_(*on))
    assert not pending, "runs must be among the tables"
    return base


_ENTITY_TABLES = {"metrics": t.latest_metrics, "params": t.params, "tags": t.tags}


def _conjuncts(node: Node) -> list[Node]:
    if isinstance(node, And):
        return [c for item in node.items for c in _conjuncts(item)]
    return [node]


class FilterCompiler:
    """Compiles one filter string's tree; keeps the text for error carets."""

    def __init__(self, text: str) -> None:
        self.text = text

    def compile(self, node: Node) -> Any:
        if isinstance(node, And):
            return sa.and_(*(self.compile(i) for i in node.items))
        if isinstance(node, Or):
            return sa.or_(*(self.compile(i) for i in node.items))
        if isinstance(node, Not):
            return sa.not_(self.compile(node.item))
        return self.comparison(node)

    def _fail(self, pos: int, message: str) -> InvalidFilter:
        return InvalidFilter(self.text, pos, message)

    def _require_ops(self, c: Comparison, allowed: set[str], what: str) -> None:
        if c.op not in allowed:
            order = [
                "=",
                "!=",
                "<",
                "<=",
                ">",
                ">=",
                "LIKE",
                "NOT LIKE",
                "ILIKE",
                "NOT ILIKE",
                "IN",
                "NOT IN",
                "IS NULL",
                "IS NOT NULL",
            ]
            listed = ", ".join(o for o in order if o in allowed)
            raise self._fail(c.op_pos, f"{what} cannot be compared with {c.op}; use {listed}")

    def _require_strings(self, c: Comparison, what: str) -> None:
        if not c.value_is_string:
            shown = c.value if not isinstance(c.value, float) else f"{c.value:g}"
            raise self._fail(
                c.value_pos,
                f"expected a quoted string value for {what} (e.g. '{shown}'), got {shown}",
            )

    def comparison(self, c: Comparison) -> Any:
        entity, key = c.ident.entity, c.ident.key
        if entity == "metrics":
            return self._metric(c, key)
        if entity in ("params", "tags"):
            return self._param_or_tag(c, entity, key)
        if entity == "attributes":
            return self._attribute(c)
        return self._dataset(c, key)

    def _metric(self, c: Comparison, key: str) -> Any:
        return self._keyed(c, t.latest_metrics, self._metric_value(c, key))

    def _param_or_tag(self, c: Comparison, entity: str, key: str) -> Any:
        table = t.params if entity == "params" else t.tags
        return self._keyed(c, table, self._param_or_tag_value(c, entity, key))

    @staticmethod
    def _keyed(c: Comparison, table: sa.Table, value: ValueTest | None) -> Any:
        """``run_id [NOT] IN (runs having the key [and a value passing the test])``."""
        has_key = sa.select(table.c.run_id).where(table.c.key == c.ident.key)
        if value is None:
            return runs.c.run_id.not_in(has_key)
        if value.test is not None:
            has_key = has_key.where(value.test(table))
        return runs.c.run_id.in_(has_key)

    def _metric_value(self, c: Comparison, key: str) -> ValueTest | None:
        """What a metric comparison asks of the run's row for ``key``; None: no such row."""
        self._require_ops(c, NUMERIC_OPS | NULL_OPS, f"metric {key!r}")
        if c.op == "IS NULL":
            return None
        if c.op == "IS NOT NULL":
            return ValueTest(None)
        if c.value_is_string:
            raise self._fail(
                c.value_pos,
                f"expected a numeric value for metric {key!r}, got the string {c.value!r}",
            )
        number = c.value
        assert isinstance(number, float)
        return ValueTest(lambda table: _numeric_condition(table.c.value, c.op, number))

    def _param_or_tag_value(self, c: Comparison, entity: str, key: str) -> ValueTest | None:
        """What a param or tag comparison asks of the run's row for ``key``; None: no row."""
        what = f"{entity[:-1]} {key!r}"
        self._require_ops(c, STRING_OPS | NULL_OPS | {"<", "<=", ">", ">="}, what)
        if c.op == "IS NULL":
            return None
        if c.op == "IS NOT NULL":
            return ValueTest(None)
        if c.op in ("<", "<=", ">", ">="):
            number = _as_number(c.value)
            if entity == "params" and number is not None:
                # Beyond MLflow: numeric comparison of numeric params.
                return ValueTest(lambda table: _numeric_condition(table.c.num_value, c.op, number))
            if c.value_is_string:
                text = c.value
                return ValueTest(lambda table: _numeric_condition(table.c.value, c.op, text))  # type: ignore[arg-type]
            raise self._fail(c.value_pos, f"{what} compares numerically only on params")
        self._require_strings(c, what)
        return ValueTest(lambda table: _string_condition(table.c.value, c.op, c.value))

    def compile_runs(self, node: Node | None) -> RunFilter:
        """The filter as inner joins plus WHERE conditions.

        Top-level AND-ed comparisons that need a metric, param or tag row to exist become
        inner joins on (run_id, key) (at most one row each, so no duplicates), letting the
        database start from the most selective (key, value) index range and reach the rest by
        primary key; the other conditions (under OR or NOT, ``IS NULL``, attributes,
        datasets) stay in WHERE as ``IN`` / ``NOT IN`` subqueries.
        """
        result = RunFilter()
        if node is None:
            return result
        pending: dict[tuple[str, str], list[ValueTest]] = {}
        for item in _conjuncts(node):
            value: ValueTest | None = None
            if isinstance(item, Comparison) and item.ident.entity == "metrics":
                value = self._metric_value(item, item.ident.key)
            elif isinstance(item, Comparison) and item.ident.entity in ("params", "tags"):
                value = self._param_or_tag_value(item, item.ident.entity, item.ident.key)
            else:
                result.conditions.append(self.compile(item))
                continue
            if value is None:  # IS NULL: the run must lack the key
                result.conditions.append(self.comparison(item))
                continue
            pending.setdefault((item.ident.entity, item.ident.key), []).append(value)
        for n, ((entity, key), tests) in enumerate(pending.items()):
            table = _ENTITY_TABLES[entity]
            alias = table.alias(f"f{entity[0]}{n}")
            checks = tuple(v.test for v in tests if v.test is not None)
            nullable = bool(alias.c.value.nullable) and not checks
            result.joins.append(Joined(entity, key, table, alias, checks, nullable))
        return result

    def _attribute(self, c: Comparison) -> Any:
        column, numeric = attribute_column(self.text, c.ident)
        what = f"attribute {c.ident.key!r}"
        if numeric:
            self._require_ops(c, NUMERIC_OPS | NULL_OPS, what)
            if c.op == "IS NULL":
                return column.is_(None)
            if c.op == "IS NOT NULL":
                return column.is_not(None)
            number = _as_number(c.value)
            if c.value_is_string or number is None:
                raise self._fail(
                    c.value_pos, f"expected a number (milliseconds) for {what}, got {c.value!r}"
                )
            return _numeric_condition(column, c.op, number)
        self._require_ops(c, STRING_OPS | NULL_OPS, what)
        if c.op == "IS NULL":
            return column.is_(None)
        if c.op == "IS NOT NULL":
            return column.is_not(None)
        self._require_strings(c, what)
        return _string_condition(column, c.op, c.value)

    def _dataset(self, c: Comparison, key: str) -> Any:
        column = DATASET_FIELDS.get(key)
        if column is None:
            raise self._fail(
                c.ident.pos, f"unknown dataset field {key!r}; valid: context, digest, name"
            )
        self._require_ops(c, STRING_OPS, f"dataset field {key!r}")
        self._require_strings(c, f"dataset field {key!r}")
        sub = sa.select(t.run_datasets.c.run_id).where(_string_condition(column, c.op, c.value))
        return runs.c.run_id.in_(sub)


EXPERIMENT_ATTRIBUTES: dict[str, tuple[Any, bool]] = {
    "name": (t.experiments.c.name, False),
    "experiment_id": (t.experiments.c.experiment_id, False),
    "lifecycle_stage": (t.experiments.c.lifecycle_stage, False),
    "creation_time": (t.experiments.c.creation_time, True),
    "last_update_time": (t.experiments.c.last_update_time, True),
}


class ExperimentFilterCompiler(FilterCompiler):
    """Filters over experiments: attributes (bare or prefixed) and tags."""

    def comparison(self, c: Comparison) -> Any:
        entity, key = c.ident.entity, c.ident.key
        if entity == "tags":
            et = t.experiment_tags
            what = f"tag {key!r}"
            self._require_ops(c, STRING_OPS | NULL_OPS, what)
            has_key = sa.select(et.c.experiment_id).where(et.c.key == key)
            column = t.experiments.c.experiment_id
            if c.op == "IS NULL":
                return column.not_in(has_key)
            if c.op == "IS NOT NULL":
                return column.in_(has_key)
            self._require_strings(c, what)
            return column.in_(has_key.where(_string_condition(et.c.value, c.op, c.value)))
        if entity != "attributes":
            raise self._fail(c.ident.pos, "experiments can be filtered by attributes and tags")
        if key not in EXPERIMENT_ATTRIBUTES:
            valid = ", ".join(sorted(EXPERIMENT_ATTRIBUTES))
            raise self._fail(c.ident.pos, f"unknown experiment attribute {key!r}; valid: {valid}")
        column, numeric = EXPERIMENT_ATTRIBUTES[key]
        what = f"attribute {key!r}"
        if numeric:
            self._require_ops(c, NUMERIC_OPS, what)
            number = _as_number(c.value)
            if c.value_is_string or number is None:
                raise self._fail(c.value_pos, f"expected a number (milliseconds) for {what}")
            return _numeric_condition(column, c.op, number)
        self._require_ops(c, STRING_OPS, what)
        self._require_strings(c, what)
        return _string_condition(column, c.op, c.value)


# -- ordering and keyset pagination ---------------------------------------------------------


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
class Ordering:
    """Sort expressions with their directions; ``nullable[i]`` says whether ``exprs[i]`` can
    be NULL (NULLs sort last either way) and ``leads[i]`` what gives rows in the order of
    ``exprs[i]`` (see `PagePhase.lead`). Order keys that the filter did not already join
    are LEFT JOINed through ``outer_joins``, except a first key on a metric, param or tag
    (``split``): its runs are paged in two phases, runs with a value first (an inner join the
    database can read in the order of its (key, value) index, stopping after a page), then
    the runs without one."""

    exprs: list[Any]
    descending: list[bool]
    nullable: list[bool]
    leads: list[Any]
    outer_joins: list[tuple[Any, Any]] = field(default_factory=list)
    split: tuple[Joined, Any] | None = None  # the first key's join, and "it has a value"

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
        joined, has_value = self.split
        out = []
        nullable = [False, *self.nullable[1:]]
        if after is None or after[0] is not None:
            where = [] if after is None else [_after(self.exprs, self.descending, nullable, after)]
            order = self._order_by(0, nullable)
            out.append(PagePhase([joined], joined, outer, where, self.exprs, order))
        rest = self.exprs[1:]
        where = [~has_value]
        if after is not None and after[0] is None:
            where.append(_after(rest, self.descending[1:], self.nullable[1:], after[1:]))
        order = self._order_by(1, self.nullable[1:])
        out.append(PagePhase([], self.leads[1], outer, where, [sa.null(), *rest], order))
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


def build_ordering(
    text: str, keys: Sequence[OrderKey], run_filter: RunFilter | None = None
) -> Ordering:
    """The ordering for ``keys``; order keys that ``run_filter`` inner-joins reuse its join."""
    ordering = Ordering([], [], [], [])
    for n, key in enumerate(keys):
        ident = key.ident
        lead: Any = None
        if ident.entity in _ENTITY_TABLES:
            joined = run_filter.joined(ident.entity, ident.key) if run_filter else None
            if joined is not None:
                expr = joined.alias.c.value
                nullable = joined.nullable
                # NULLs sort last: natural for DESC on SQLite, not for ASC
                lead = joined if key.descending or not nullable else None
            else:
                table = _ENTITY_TABLES[ident.entity]
                prefix = "om" if ident.entity == "metrics" else f"o{ident.entity[0]}"
                alias = table.alias(f"{prefix}{n}")
                expr, nullable = alias.c.value, True
                if n == 0:
                    probe = table.alias(f"{prefix}x")
                    has = sa.exists().where(
                        probe.c.run_id == runs.c.run_id, probe.c.key == ident.key
                    )
                    tests: tuple[Callable[[Any], Any], ...] = ()
                    if table.c.value.nullable:
                        tests = (lambda tb: tb.c.value.is_not(None),)
                        has = has.where(probe.c.value.is_not(None))
                    lead = Joined(ident.entity, ident.key, table, alias, tests, False)
                    ordering.split = (lead, has)
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
    from prefect_mlops.core.errors import InvalidInput

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
