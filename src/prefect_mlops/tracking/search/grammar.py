"""The filter language: MLflow's grammar, plus OR, NOT and parentheses.

    filter     := or_expr
    or_expr    := and_expr ("OR" and_expr)*
    and_expr   := not_expr ("AND" not_expr)*
    not_expr   := "NOT" not_expr | "(" or_expr ")" | comparison
    comparison := identifier operator value
    identifier := entity "." key          entity: metrics, params, tags, attributes, datasets
                                          (and MLflow's aliases); key bare or in `` or ""
    operator   := = | != | <> | < | <= | > | >= | [NOT] LIKE | [NOT] ILIKE | [NOT] IN
                | IS [NOT] NULL
    value      := 'string' | "string" | number | "(" value ("," value)* ")"

A hand-written tokenizer and a recursive-descent parser turn a filter into a small tree; every
error points at the offending character with a caret and says what was expected there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prefect_mlops.core.errors import InvalidInput


class InvalidFilter(InvalidInput):
    """A filter or order-by string that does not parse or means nothing; the message shows
    where, with a caret under the failing position."""

    def __init__(self, text: str, position: int, problem: str) -> None:
        self.text = text
        self.position = position
        self.problem = problem
        caret = " " * position + "^"
        super().__init__(f"Invalid filter: {problem}\n  {text}\n  {caret}")


ENTITY_ALIASES = {
    "metric": "metrics",
    "metrics": "metrics",
    "param": "params",
    "params": "params",
    "parameter": "params",
    "parameters": "params",
    "tag": "tags",
    "tags": "tags",
    "attribute": "attributes",
    "attributes": "attributes",
    "attr": "attributes",
    "run": "attributes",
    "dataset": "datasets",
    "datasets": "datasets",
}

KEYWORDS = {"AND", "OR", "NOT", "LIKE", "ILIKE", "IN", "IS", "NULL"}
COMPARATORS = {"=", "!=", "<>", "<", "<=", ">", ">="}


@dataclass(frozen=True)
class Token:
    kind: str  # IDENT, STRING, NUMBER, OP, KEYWORD, LPAREN, RPAREN, COMMA, END
    value: object
    pos: int
    text: str = ""


@dataclass(frozen=True)
class Identifier:
    entity: str  # canonical: metrics, params, tags, attributes, datasets
    key: str
    pos: int


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

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE_KEY = re.compile(r"[A-Za-z0-9_./:\-]+")


def _quoted(text: str, pos: int, quote: str, what: str) -> tuple[str, int]:
    """Read a quoted run starting at ``pos`` (on the quote); doubled or backslashed quotes
    stand for the quote itself. Returns (content, position after the closing quote)."""
    out: list[str] = []
    i = pos + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in (quote, "\\"):
            out.append(text[i + 1])
            i += 2
            continue
        if ch == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                out.append(quote)
                i += 2
                continue
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise InvalidFilter(text, pos, f"unterminated {what}: missing closing {quote}")


def tokenize(text: str, bare: frozenset[str] = frozenset()) -> list[Token]:
    """Split ``text`` into tokens; words in ``bare`` stand for ``attributes.<word>``."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        start = i
        if ch == "(":
            tokens.append(Token("LPAREN", "(", start))
            i += 1
        elif ch == ")":
            tokens.append(Token("RPAREN", ")", start))
            i += 1
        elif ch == ",":
            tokens.append(Token("COMMA", ",", start))
            i += 1
        elif ch in "=!<>":
            two = text[i : i + 2]
            if two in ("!=", "<>", "<=", ">="):
                tokens.append(Token("OP", "!=" if two == "<>" else two, start))
                i += 2
            elif ch == "!":
                raise InvalidFilter(text, start, "expected '!=' here")
            else:
                tokens.append(Token("OP", ch, start))
                i += 1
        elif ch in "'\"":
            value, i = _quoted(text, i, ch, "string")
            tokens.append(Token("STRING", value, start))
        elif ch == "`":
            raise InvalidFilter(
                text, start, "a backtick-quoted key must follow an entity, e.g. metrics.`my key`"
            )
        elif (m := _NUMBER.match(text, i)) and (
            ch.isdigit()
            or ch == "."
            or (tokens and tokens[-1].kind in ("OP", "COMMA", "LPAREN", "KEYWORD"))
        ):
            tokens.append(Token("NUMBER", float(m.group()), start, m.group()))
            i = m.end()
        elif m := _WORD.match(text, i):
            word = m.group()
            i = m.end()
            if i < n and text[i] == ".":
                entity = ENTITY_ALIASES.get(word.lower())
                if entity is None:
                    raise InvalidFilter(
                        text,
                        start,
                        f"unknown entity {word!r}; use one of metrics, params, tags, "
                        "attributes, datasets (or their aliases metric, param, parameter(s), "
                        "tag, attribute, attr, run, dataset)",
                    )
                i += 1
                if i < n and text[i] in '`"':
                    key, i = _quoted(text, i, text[i], "key")
                elif km := _BARE_KEY.match(text, i):
                    key = km.group()
                    i = km.end()
                else:
                    raise InvalidFilter(text, i, f"expected a key after '{word}.'")
                if not key:
                    raise InvalidFilter(text, i - 1, "empty key")
                tokens.append(Token("IDENT", Identifier(entity, key, start), start))
            elif word in bare:
                tokens.append(Token("IDENT", Identifier("attributes", word, start), start))
            elif word.upper() in KEYWORDS:
                tokens.append(Token("KEYWORD", word.upper(), start))
            else:
                raise InvalidFilter(
                    text,
                    start,
                    f"unexpected word {word!r}; expected an identifier such as "
                    f"attributes.{word} or metrics.{word}, or AND, OR, NOT",
                )
        else:
            raise InvalidFilter(text, start, f"unexpected character {ch!r}")
    tokens.append(Token("END", None, n))
    return tokens


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


def parse_order_by(clauses: list[str] | tuple[str, ...] | None) -> list[OrderKey]:
    """``["metrics.`val acc` DESC", "params.lr"]`` -> order keys (ascending by default)."""
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
            tokens = tokenize(text)
        except InvalidFilter as exc:
            raise InvalidFilter(clause, exc.position, problem) from None
        if len(tokens) != 2 or tokens[0].kind != "IDENT":
            pos = tokens[1].pos if tokens and tokens[0].kind == "IDENT" else 0
            raise InvalidFilter(clause, pos, problem)
        ident = tokens[0].value
        assert isinstance(ident, Identifier)
        keys.append(OrderKey(ident, descending))
    return keys
