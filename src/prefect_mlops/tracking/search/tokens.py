"""Tokens of the filter language: identifiers (entity and key, quoted or bare), strings,
numbers, operators and keywords; `InvalidFilter` points at the failing character.

An entity may be backtick-quoted as MLflow allows (`` `metric`.acc ``); so may an attribute
standing alone (`` `Run name` ``) where the caller lists bare attribute names.
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


def _entity_key(text: str, start: int, entity_word: str, i: int) -> tuple[Identifier, int]:
    """The key after ``entity_word.`` (``i`` is just past the dot), bare or quoted."""
    entity = ENTITY_ALIASES.get(entity_word.lower())
    if entity is None:
        raise InvalidFilter(
            text,
            start,
            f"unknown entity {entity_word!r}; use one of metrics, params, tags, "
            "attributes, datasets (or their aliases metric, param, parameter(s), "
            "tag, attribute, attr, run, dataset)",
        )
    if i < len(text) and text[i] in '`"':
        key, i = _quoted(text, i, text[i], "key")
    elif km := _BARE_KEY.match(text, i):
        key, i = km.group(), km.end()
    else:
        raise InvalidFilter(text, i, f"expected a key after '{entity_word}.'")
    if not key:
        raise InvalidFilter(text, i - 1, "empty key")
    return Identifier(entity, key, start), i


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
            name, i = _quoted(text, i, "`", "name")
            if i < n and text[i] == ".":
                ident, i = _entity_key(text, start, name, i + 1)
            elif name in bare:  # MLflow's `Run name`: an attribute
                ident = Identifier("attributes", name, start)
            else:
                raise InvalidFilter(
                    text,
                    start,
                    "a backtick-quoted name is an entity (`metrics`.acc), a key after one "
                    "(metrics.`my key`) or an attribute (`Run name`)",
                )
            tokens.append(Token("IDENT", ident, start))
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
                ident, i = _entity_key(text, start, word, i + 1)
                tokens.append(Token("IDENT", ident, start))
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
