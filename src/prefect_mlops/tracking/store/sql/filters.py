"""Compile a parsed filter into SQLAlchemy conditions over ``runs`` (or ``experiments``).

Every value is a bound parameter. Top-level AND-ed metric, param and tag comparisons become
inner joins on (run_id, key) (`FilterCompiler.compile_runs`, see joins.py), so the database
can start from the (key, value) index range of the most selective one and reach the others by
primary key; the rest (under OR or NOT, ``IS NULL``, attributes, datasets) become ``run_id
[NOT] IN (subquery)`` conditions.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from prefect_mlops.tracking import tables as t
from prefect_mlops.tracking.search.grammar import (
    And,
    Comparison,
    Identifier,
    InvalidFilter,
    Node,
    Not,
    Or,
)
from prefect_mlops.tracking.store.sql.joins import ENTITY_TABLES, Joined, RunFilter, ValueTest

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
# MLflow's other names for attributes (SearchUtils.translate_key_alias), as it spells them
ATTRIBUTE_ALIASES = {
    "created": "start_time",
    "Created": "start_time",
    "run name": "run_name",
    "Run name": "run_name",
    "Run Name": "run_name",
}
RUN_NAME_TAG = "mlflow.runName"
VALID_ATTRIBUTES = sorted({*NUMERIC_ATTRIBUTES, *STRING_ATTRIBUTES, *ATTRIBUTE_ALIASES})
# Attribute names that may stand alone, without ``attributes.`` (MLflow's bare identifiers)
BARE_ATTRIBUTES = frozenset(VALID_ATTRIBUTES)


def canonical(ident: Identifier) -> Identifier:
    """``ident`` with MLflow's aliases resolved: ``created`` is ``start_time``, ``Run name``
    is ``run_name``, and the ``mlflow.runName`` tag that MLflow keeps in step with the run
    name is the run name column itself."""
    if ident.entity == "attributes" and ident.key in ATTRIBUTE_ALIASES:
        return replace(ident, key=ATTRIBUTE_ALIASES[ident.key])
    if ident.entity == "tags" and ident.key == RUN_NAME_TAG:
        return replace(ident, entity="attributes", key="run_name")
    return ident


def attribute_column(text: str, ident: Identifier) -> tuple[Any, bool]:
    """(column expression, is_numeric) for an attribute name."""
    key = canonical(ident).key
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


def string_condition(column: Any, op: str, value: Any) -> Any:
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
        c = replace(c, ident=canonical(c.ident))
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
        if c.op == "!=":  # a NaN (stored as NULL) differs from every number, as in MLflow
            return ValueTest(
                lambda table: sa.or_(table.c.value != number, table.c.value.is_(None)),
                admits_null=True,
            )
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
            # Refused as MLflow refuses it: a string range would follow each database's
            # collation, so SQLite and PostgreSQL would disagree.
            if entity == "params":
                raise self._fail(
                    c.op_pos,
                    f"{what} compares with {c.op} only against a number (e.g. params.lr "
                    f"{c.op} 0.01); strings compare with =, !=, LIKE, ILIKE, IN or NOT IN",
                )
            raise self._fail(
                c.op_pos,
                f"{what} cannot be compared with {c.op}; tags compare with =, !=, LIKE, "
                "ILIKE, IN, NOT IN, IS NULL or IS NOT NULL",
            )
        self._require_strings(c, what)
        return ValueTest(lambda table: string_condition(table.c.value, c.op, c.value))

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
            if isinstance(item, Comparison):
                item = replace(item, ident=canonical(item.ident))
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
            table = ENTITY_TABLES[entity]
            alias = table.alias(f"f{entity[0]}{n}")
            checks = tuple(v.test for v in tests if v.test is not None)
            nullable = bool(alias.c.value.nullable) and all(
                v.admits_null for v in tests if v.test is not None
            )
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
        return string_condition(column, c.op, c.value)

    def _dataset(self, c: Comparison, key: str) -> Any:
        column = DATASET_FIELDS.get(key)
        if column is None:
            raise self._fail(
                c.ident.pos, f"unknown dataset field {key!r}; valid: context, digest, name"
            )
        self._require_ops(c, STRING_OPS, f"dataset field {key!r}")
        self._require_strings(c, f"dataset field {key!r}")
        sub = sa.select(t.run_datasets.c.run_id).where(string_condition(column, c.op, c.value))
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
            return column.in_(has_key.where(string_condition(et.c.value, c.op, c.value)))
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
        return string_condition(column, c.op, c.value)
