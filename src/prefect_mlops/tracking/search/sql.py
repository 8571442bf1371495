"""Turn a parsed filter and order-by into SQLAlchemy expressions over the ``runs`` table.

Every value is a bound parameter. Metric, param and tag conditions become ``run_id IN
(subquery)`` against indexed (key, value) columns, so the database resolves each condition
once instead of probing per run. NULLs (missing values, NaN metrics) sort last in both
directions; ties are broken by start time (newest first), then run id, as in MLflow.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
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
        lm = t.latest_metrics
        self._require_ops(c, NUMERIC_OPS | NULL_OPS, f"metric {key!r}")
        has_key = sa.select(lm.c.run_id).where(lm.c.key == key)
        if c.op == "IS NULL":
            return runs.c.run_id.not_in(has_key)
        if c.op == "IS NOT NULL":
            return runs.c.run_id.in_(has_key)
        if c.value_is_string:
            raise self._fail(
                c.value_pos,
                f"expected a numeric value for metric {key!r}, got the string {c.value!r}",
            )
        assert isinstance(c.value, float)
        return runs.c.run_id.in_(has_key.where(_numeric_condition(lm.c.value, c.op, c.value)))

    def _param_or_tag(self, c: Comparison, entity: str, key: str) -> Any:
        table = t.params if entity == "params" else t.tags
        what = f"{entity[:-1]} {key!r}"
        self._require_ops(c, STRING_OPS | NULL_OPS | {"<", "<=", ">", ">="}, what)
        has_key = sa.select(table.c.run_id).where(table.c.key == key)
        if c.op == "IS NULL":
            return runs.c.run_id.not_in(has_key)
        if c.op == "IS NOT NULL":
            return runs.c.run_id.in_(has_key)
        if c.op in ("<", "<=", ">", ">="):
            number = _as_number(c.value)
            if entity == "params" and number is not None:
                # Beyond MLflow: numeric comparison of numeric params.
                cond = _numeric_condition(t.params.c.num_value, c.op, number)
            elif c.value_is_string:
                cond = _numeric_condition(table.c.value, c.op, c.value)  # type: ignore[arg-type]
            else:
                raise self._fail(c.value_pos, f"{what} compares numerically only on params")
            return runs.c.run_id.in_(has_key.where(cond))
        self._require_strings(c, what)
        return runs.c.run_id.in_(has_key.where(_string_condition(table.c.value, c.op, c.value)))

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
class Ordering:
    """Sort expressions (already joined into ``from_clause``), with their directions."""

    from_clause: Any
    exprs: list[Any]
    descending: list[bool]

    def order_by(self) -> list[Any]:
        return [
            (e.desc() if d else e.asc()).nulls_last()
            for e, d in zip(self.exprs, self.descending, strict=True)
        ]

    def after(self, values: Sequence[Any]) -> Any:
        """Rows strictly after the row whose sort values are ``values`` (NULLs last)."""
        clauses = []
        for i, (expr, desc, value) in enumerate(
            zip(self.exprs, self.descending, values, strict=True)
        ):
            if value is None:
                continue  # nothing sorts after NULL within this key
            beyond = (expr < value) if desc else (expr > value)
            equal_before = [
                (e.is_(None) if v is None else e == v)
                for e, v in zip(self.exprs[:i], values[:i], strict=True)
            ]
            clauses.append(sa.and_(*equal_before, sa.or_(beyond, expr.is_(None))))
        return sa.or_(*clauses) if clauses else sa.false()


def build_ordering(text: str, keys: Sequence[OrderKey]) -> Ordering:
    from_clause: Any = runs
    exprs: list[Any] = []
    descending: list[bool] = []
    for n, key in enumerate(keys):
        ident = key.ident
        if ident.entity == "metrics":
            alias = t.latest_metrics.alias(f"om{n}")
            from_clause = from_clause.outerjoin(
                alias, sa.and_(alias.c.run_id == runs.c.run_id, alias.c.key == ident.key)
            )
            exprs.append(alias.c.value)
        elif ident.entity in ("params", "tags"):
            table = t.params if ident.entity == "params" else t.tags
            alias = table.alias(f"o{ident.entity[0]}{n}")
            from_clause = from_clause.outerjoin(
                alias, sa.and_(alias.c.run_id == runs.c.run_id, alias.c.key == ident.key)
            )
            exprs.append(alias.c.value)
        elif ident.entity == "attributes":
            exprs.append(attribute_column(text, ident)[0])
        else:
            raise InvalidFilter(text, ident.pos, "runs cannot be ordered by dataset fields")
        descending.append(key.descending)
    if not any(e is runs.c.start_time for e in exprs):
        exprs.append(runs.c.start_time)
        descending.append(True)
    exprs.append(runs.c.run_id)
    descending.append(False)
    return Ordering(from_clause, exprs, descending)


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
