"""The filter language: MLflow's grammar, plus OR, NOT and parentheses.

    filter     := or_expr
    or_expr    := and_expr ("OR" and_expr)*
    and_expr   := not_expr ("AND" not_expr)*
    not_expr   := "NOT" not_expr | "(" or_expr ")" | comparison
    comparison := identifier operator value
    identifier := entity "." key | attribute
                  entity: metrics, params, tags, attributes, datasets (and MLflow's aliases),
                  bare or in ``; key bare or in `` or ""; a run attribute may stand alone
                  (status, run_name, `Run name`, Created...), as MLflow allows
    operator   := = | != | <> | < | <= | > | >= | [NOT] LIKE | [NOT] ILIKE | [NOT] IN
                | IS [NOT] NULL
    value      := 'string' | "string" | number | "(" value ("," value)* ")"

A hand-written tokenizer (tokens.py) and a recursive-descent parser turn a filter into a small
tree; every error points at the offending character with a caret and says what was expected.

What a filter means is MLflow's (tests/tracking/search/test_mlflow_parity.py runs both side
by side): ``created`` is ``start_time``, ``Run name`` is ``run_name`` and so is the
``mlflow.runName`` tag; a NaN metric is ``!=`` every number and matches no other comparison.
Beyond MLflow, on purpose (MLflow refuses all but the last, where it keeps the quotes as typed):
OR, NOT and parentheses; ``params.x < 0.01`` (ranges on params compare their numeric value);
``IN``/``NOT IN`` on params, tags and every attribute; ``IS [NOT] NULL`` on metrics (a NaN
metric is present) and attributes; NOT LIKE, NOT ILIKE; the attributes ``duration``,
``experiment_id``, ``lifecycle_stage``, ``parent_run_id``, ``flow_name``...; ``'it''s'`` and
``'it\\'s'`` as a quote inside a string. Refused as MLflow refuses them: ranges on tags and
string ranges on params (``params.x > 'a'``), whose result would follow each database's
collation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from prefect_mlops.tracking.search.tokens import (
    ENTITY_ALIASES,
    Identifier,
    InvalidFilter,
    Token,
    tokenize,
)

__all__ = [
    "ENTITY_ALIASES",
    "And",
    "Comparison",
    "Identifier",
    "InvalidFilter",
    "Node",
    "Not",
    "Or",
    "OrderKey",
    "Token",
    "parse_filter",
    "parse_order_by",
    "tokenize",
]


@dataclass(frozen=True)
class Comparison:
    ident: Identifier
    op: str  # a comparator, [NOT] LIKE, [NOT] ILIKE, [NOT] IN, IS [NOT] NULL
    value: str | float | tuple[str | float, ...] | None
    op_pos: int
    value_pos: int
    value_is_string: bool


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Comparison | And | Or | Not


class _Parser:
    def __init__(self, text: str, bare: frozenset[str] = frozenset()) -> None:
        self.text = text
        self.tokens = tokenize(text, bare)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, message: str, tok: Token | None = None) -> InvalidFilter:
        return InvalidFilter(self.text, (tok or self.tok).pos, message)

    def keyword(self, *words: str) -> bool:
        return self.tok.kind == "KEYWORD" and self.tok.value in words

    def parse(self) -> Node:
        node = self.or_expr()
        if self.tok.kind != "END":
            raise self.error("expected AND, OR or the end of the filter")
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.keyword("OR"):
            self.i += 1
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self.keyword("AND"):
            self.i += 1
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self) -> Node:
        if self.keyword("NOT"):
            self.i += 1
            return Not(self.not_expr())
        if self.tok.kind == "LPAREN":
            self.i += 1
            node = self.or_expr()
            if self.tok.kind != "RPAREN":
                raise self.error("expected ')'")
            self.i += 1
            return node
        return self.comparison()

    def comparison(self) -> Comparison:
        tok = self.tok
        if tok.kind != "IDENT":
            if tok.kind == "END":
                raise self.error("expected a comparison such as metrics.acc > 0.9")
            raise self.error(
                "expected an identifier such as metrics.acc, params.lr, tags.team or "
                "attributes.status"
            )
        ident = tok.value
        assert isinstance(ident, Identifier)
        self.i += 1
        op_tok = self.tok
        op = self.operator()
        if op in ("IS NULL", "IS NOT NULL"):
            return Comparison(ident, op, None, op_tok.pos, op_tok.pos, False)
        value_tok = self.tok
        if op in ("IN", "NOT IN"):
            values, all_strings = self.value_list()
            return Comparison(ident, op, values, op_tok.pos, value_tok.pos, all_strings)
        if value_tok.kind == "STRING":
            self.i += 1
            return Comparison(ident, op, str(value_tok.value), op_tok.pos, value_tok.pos, True)
        if value_tok.kind == "NUMBER":
            self.i += 1
            return Comparison(ident, op, float(value_tok.value), op_tok.pos, value_tok.pos, False)  # type: ignore[arg-type]
        raise self.error("expected a value: a quoted string or a number")

    def operator(self) -> str:
        tok = self.tok
        if tok.kind == "OP":
            self.i += 1
            return str(tok.value)
        if self.keyword("LIKE", "ILIKE", "IN"):
            self.i += 1
            return str(tok.value)
        if self.keyword("NOT"):
            self.i += 1
            if self.keyword("LIKE", "ILIKE", "IN"):
                word = str(self.tok.value)
                self.i += 1
                return f"NOT {word}"
            raise self.error("expected LIKE, ILIKE or IN after NOT")
        if self.keyword("IS"):
            self.i += 1
            negate = self.keyword("NOT")
            if negate:
                self.i += 1
            if not self.keyword("NULL"):
                raise self.error("expected NULL")
            self.i += 1
            return "IS NOT NULL" if negate else "IS NULL"
        raise self.error(
            "expected a comparison operator: =, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, "
            "IS NULL or IS NOT NULL"
        )

    def value_list(self) -> tuple[tuple[str | float, ...], bool]:
        if self.tok.kind != "LPAREN":
            raise self.error("expected '(' to start a list of values, e.g. ('a', 'b')")
        self.i += 1
        values: list[str | float] = []
        all_strings = True
        while True:
            tok = self.tok
            if tok.kind == "STRING":
                values.append(str(tok.value))
            elif tok.kind == "NUMBER":
                values.append(float(tok.value))  # type: ignore[arg-type]
                all_strings = False
            else:
                raise self.error("expected a quoted string or a number in the list")
            self.i += 1
            if self.tok.kind == "COMMA":
                self.i += 1
                continue
            if self.tok.kind == "RPAREN":
                self.i += 1
                return tuple(values), all_strings
            raise self.error("expected ',' or ')'")


def parse_filter(text: str | None, bare: frozenset[str] = frozenset()) -> Node | None:
    """Parse a filter string; None or blank means no filter."""
    if text is None or not text.strip():
        return None
    return _Parser(text, bare).parse()


@dataclass(frozen=True)
class OrderKey:
    ident: Identifier
    descending: bool


_DIRECTION = re.compile(r"\s+(ASC|DESC)\s*$", re.IGNORECASE)


def parse_order_by(
    clauses: Sequence[str] | None, bare: frozenset[str] = frozenset()
) -> list[OrderKey]:
    """``["metrics.`val acc` DESC", "params.lr"]`` -> order keys (ascending by default);
    words in ``bare`` stand for ``attributes.<word>`` (``["start_time DESC"]``)."""
    keys: list[OrderKey] = []
    for clause in clauses or []:
        text = clause.strip()
        descending = False
        if m := _DIRECTION.search(text):
            descending = m.group(1).upper() == "DESC"
            text = text[: m.start()]
        problem = (
            "an order_by clause is one identifier and an optional ASC or DESC, e.g. "
            "'metrics.acc DESC'"
        )
        try:
            tokens = tokenize(text, bare)
        except InvalidFilter as exc:
            raise InvalidFilter(clause, exc.position, problem) from None
        if len(tokens) != 2 or tokens[0].kind != "IDENT":
            pos = tokens[1].pos if tokens and tokens[0].kind == "IDENT" else 0
            raise InvalidFilter(clause, pos, problem)
        ident = tokens[0].value
        assert isinstance(ident, Identifier)
        keys.append(OrderKey(ident, descending))
    return keys
