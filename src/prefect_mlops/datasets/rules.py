"""Declarative rules a dataset version must meet, checked before it is created.

Rules are pydantic models told apart by ``kind``, so they can be written in YAML or JSON::

    rules:
      - {kind: RequiredGlob, pattern: "train/**"}
      - {kind: NotNull, columns: [id], glob: "train/**"}

`check_rules` runs every rule and returns every `Violation`; the datasets client raises
`ValidationFailed` with all of them. Tabular rules read the statistics of `file_stats`
(``UniqueKey`` alone reads the data); a ``glob`` selects files with `glob_match`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from prefect_mlops.core.errors import InvalidInput
from prefect_mlops.datasets.entities import FileEntry
from prefect_mlops.datasets.stats import file_stats, is_tabular
from prefect_mlops.datasets.tabular import iter_keys

#: Violations listed in a `ValidationFailed` message; the rest are counted.
SHOWN_VIOLATIONS = 50


# --- globs -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # "**/": any number of directories, none too
                i += 1
                out.append("(?:.*/)?")
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (end := _class_end(pattern, i)) > 0:
            body = pattern[i + 1 : end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def _class_end(pattern: str, start: int) -> int:
    """Where the ``[...]`` class opening at ``start`` ends (a ``]`` first in it is a member),
    or -1 where it does not: then ``[`` is a plain character."""
    i = start + 1
    if pattern[i : i + 1] == "!":
        i += 1
    return pattern.find("]", i + 1)


def glob_match(pattern: str, path: str) -> bool:
    """True if the posix ``path`` matches ``pattern``: ``*`` and ``?`` stay within one
    directory, ``**`` crosses directories (``**/`` also matches none), ``[abc]`` and
    ``[!abc]`` are character classes. ``train/**`` matches ``train/a.csv`` and
    ``train/x/y.csv``; ``**/*.csv`` matches ``a.csv`` and ``d/a.csv``."""
    return _glob_regex(pattern).fullmatch(path) is not None


# --- type names --------------------------------------------------------------------------

_CANONICAL = {
    "double": "float64",
    "float": "float32",
    "halffloat": "float16",
    "utf8": "string",
    "large_utf8": "large_string",
    "boolean": "bool",
}
_INTS = re.compile(r"u?int(8|16|32|64)")
_FAMILIES: dict[str, Callable[[str], bool]] = {
    "int": lambda t: _INTS.fullmatch(t) is not None,
    "float": lambda t: t in ("float16", "float32", "float64"),
    "number": lambda t: (
        _INTS.fullmatch(t) is not None
        or t in ("float16", "float32", "float64")
        or t.startswith("decimal")
    ),
    "string": lambda t: t in ("string", "large_string"),
    "timestamp": lambda t: t.startswith("timestamp"),
    "date": lambda t: t.startswith("date"),
    "time": lambda t: t.startswith("time") and not t.startswith("timestamp"),
    "decimal": lambda t: t.startswith("decimal"),
}
_EXACT = re.compile(
    r"u?int(8|16|32|64)|float(16|32|64)|double|halffloat|string|large_string|utf8|large_utf8"
    r"|bool|boolean|binary|large_binary|null|date32\[day\]|date64\[ms\]"
    r"|timestamp\[(s|ms|us|ns)(, tz=[^\]]+)?\]|time(32|64)\[(s|ms|us|ns)\]"
    r"|duration\[(s|ms|us|ns)\]|decimal(128|256)?\(\d+, ?\d+\)"
)


def type_matches(expected: str, actual: str) -> bool:
    """True if the column type ``actual`` (a `file_stats` name) is ``expected``: an exact
    pyarrow name (``float64`` and ``double`` are one) or a family: ``int`` (any int/uint),
    ``float``, ``number`` (int, float or decimal), ``string`` (also ``large_string``),
    ``timestamp``, ``date``, ``time``, ``decimal``."""
    e, a = expected.strip().lower(), actual.strip().lower()
    if e in _FAMILIES:
        return _FAMILIES[e](_CANONICAL.get(a, a))
    return _CANONICAL.get(e, e).replace(" ", "") == _CANONICAL.get(a, a).replace(" ", "")


# --- violations --------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    """A rule a version breaks: the rule (``"NotNull(columns=['id'])"``), the file where it
    applies (None for a rule on the whole version) and what is wrong, naming the value found
    and the limit."""

    rule: str
    path: str | None
    message: str

    def __str__(self) -> str:
        return self.message


class ValidationFailed(InvalidInput):
    """A version breaks its rules; ``violations`` holds every one."""

    def __init__(self, violations: Sequence[Violation], *, subject: str = "the version") -> None:
        self.violations = list(violations)
        self.subject = subject
        lines = [f"  - {v.message}  [{v.rule}]" for v in self.violations[:SHOWN_VIOLATIONS]]
        hidden = len(self.violations) - SHOWN_VIOLATIONS
        if hidden > 0:
            lines.append(f"  ... and {hidden} more")
        count = len(self.violations)
        super().__init__(
            f"{subject} breaks {count} rule{'s' if count != 1 else ''}:\n"
            + "\n".join(lines)
            + "\nFix the data or the rules and try again; nothing was created."
        )

    def __reduce__(self) -> Any:
        return (_rebuild_failed, (self.violations, self.subject))


def _rebuild_failed(violations: list[Violation], subject: str) -> ValidationFailed:
    return ValidationFailed(violations, subject=subject)


# --- what a rule checks against ----------------------------------------------------------


@dataclass
class _Context:
    files: Sequence[FileEntry]
    stats: Mapping[str, Any]
    open_file: Callable[[str], IO[bytes]]
    computed: dict[str, Any] = field(default_factory=dict)

    def matching(self, glob: str, *, tabular: bool = False) -> list[FileEntry]:
        return [
            f
            for f in self.files
            if glob_match(glob, f.path) and (not tabular or is_tabular(f.path))
        ]

    def stats_of(self, path: str) -> dict[str, Any]:
        """The file's statistics as given, or read now (once) where they were not."""
        given = self.stats.get(path)
        if given is not None:
            return dict(given)
        if path not in self.computed:
            try:
                with self.open_file(path) as stream:
                    self.computed[path] = file_stats(stream, path) or {}
            except Exception as e:  # stats never block: a read failure is a violation
                self.computed[path] = {"error": f"{path} could not be opened: {e}"}
        return dict(self.computed[path])


def _columns(stats: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in stats.get("columns", [])}


def _shown(names: Sequence[str], limit: int = 20) -> str:
    shown = list(names[:limit])
    return f"{shown}" + (f" (and {len(names) - limit} more)" if len(names) > limit else "")


# --- rules -------------------------------------------------------------------------------


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def describe(self) -> str:
        """The rule as written, e.g. ``NotNull(columns=['id'])``."""
        args = self.model_dump(exclude_defaults=True, exclude={"kind"})
        if "glob" in args:  # a base class's field, written last
            args["glob"] = args.pop("glob")
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in args.items())})"

    def check(self, ctx: _Context) -> list[Violation]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _violation(self, path: str | None, message: str) -> Violation:
        return Violation(rule=self.describe(), path=path, message=message)


def _ordered(rule: BaseModel, low: str, high: str) -> None:
    lo, hi = getattr(rule, low), getattr(rule, high)
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"{low}={lo} is above {high}={hi}; swap them")


class RequiredGlob(_Rule):
    """At least one file matches ``pattern``."""

    kind: Literal["RequiredGlob"] = "RequiredGlob"
    pattern: str

    def check(self, ctx: _Context) -> list[Violation]:
        if ctx.matching(self.pattern):
            return []
        return [
            self._violation(
                None,
                f"no file matches {self.pattern!r} (of {len(ctx.files)} files); "
                "RequiredGlob requires at least one",
            )
        ]


class FileCount(_Rule):
    """Between ``min`` and ``max`` files (either may be None) match ``glob``."""

    kind: Literal["FileCount"] = "FileCount"
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    glob: str = "**"

    @model_validator(mode="after")
    def _bounds(self) -> FileCount:
        _ordered(self, "min", "max")
        return self

    def check(self, ctx: _Context) -> list[Violation]:
        n = len(ctx.matching(self.glob))
        what = f"{n} file{'s' if n != 1 else ''} match{'es' if n == 1 else ''} {self.glob!r}"
        if self.min is not None and n < self.min:
            return [self._violation(None, f"{what}; FileCount requires at least {self.min}")]
        if self.max is not None and n > self.max:
            return [self._violation(None, f"{what}; FileCount allows at most {self.max}")]
        return []


class TotalSize(_Rule):
    """The files matching ``glob`` total between ``min_bytes`` and ``max_bytes``."""

    kind: Literal["TotalSize"] = "TotalSize"
    min_bytes: int | None = Field(default=None, ge=0)
    max_bytes: int | None = Field(default=None, ge=0)
    glob: str = "**"

    @model_validator(mode="after")
    def _bounds(self) -> TotalSize:
        _ordered(self, "min_bytes", "max_bytes")
        return self

    def check(self, ctx: _Context) -> list[Violation]:
        total = sum(f.size for f in ctx.matching(self.glob))
        what = f"the files matching {self.glob!r} total {total} bytes"
        if self.min_bytes is not None and total < self.min_bytes:
            return [self._violation(None, f"{what}; TotalSize requires at least {self.min_bytes}")]
        if self.max_bytes is not None and total > self.max_bytes:
            return [self._violation(None, f"{what}; TotalSize allows at most {self.max_bytes}")]
        return []


class _TabularRule(_Rule):
    """A rule on each tabular file (.csv, .tsv, .parquet, .pq) matching ``glob``."""

    glob: str = "**"

    def check(self, ctx: _Context) -> list[Violation]:
        out, readable = self._targets(ctx)
        for path, stats in readable:
            out.extend(self.check_file(path, stats))
        return out

    def check_file(self, path: str, stats: Mapping[str, Any]) -> list[Violation]:
        """The violations in one readable file, from its statistics."""
        raise NotImplementedError  # pragma: no cover - each rule has its own

    def _targets(self, ctx: _Context) -> tuple[list[Violation], list[tuple[str, Any]]]:
        """Violations for no matching file or unreadable ones, and the readable files with
        their statistics."""
        files = ctx.matching(self.glob, tabular=True)
        if not files:
            message = (
                f"no tabular file (.csv, .tsv, .parquet, .pq) matches {self.glob!r}; "
                f"{type(self).__name__} needs at least one to check"
            )
            return [self._violation(None, message)], []
        out, readable = [], []
        for f in files:
            stats = ctx.stats_of(f.path)
            if "error" in stats:
                message = (
                    f"{f.path}: could not be read ({stats['error']}); {type(self).__name__} "
                    "cannot check it: fix the file or leave it out with the rule's glob"
                )
                out.append(self._violation(f.path, message))
            else:
                readable.append((f.path, stats))
        return out, readable


class RequiredColumns(_TabularRule):
    """Each matching tabular file has every one of ``columns``."""

    kind: Literal["RequiredColumns"] = "RequiredColumns"
    columns: list[str] = Field(min_length=1)

    def check_file(self, path: str, stats: Mapping[str, Any]) -> list[Violation]:
        have = list(_columns(stats))
        missing = [c for c in self.columns if c not in have]
        if not missing:
            return []
        return [
            self._violation(
                path,
                f"{path}: lacks columns {missing} (it has {_shown(have)}); "
                f"RequiredColumns requires {self.columns}",
            )
        ]


class ColumnTypes(_TabularRule):
    """Each named column has its type in each matching tabular file (see `type_matches`)."""

    kind: Literal["ColumnTypes"] = "ColumnTypes"
    types: dict[str, str] = Field(min_length=1)

    @field_validator("types")
    @classmethod
    def _known(cls, types: dict[str, str]) -> dict[str, str]:
        for column, t in types.items():
            if t.strip().lower() not in _FAMILIES and not _EXACT.fullmatch(t.strip().lower()):
                raise ValueError(
                    f"column {column!r}: unknown type {t!r}; use a family "
                    f"({', '.join(_FAMILIES)}) or a pyarrow type name such as 'int64', "
                    "'float64', 'string', 'bool', 'timestamp[us]'"
                )
        return types

    def check_file(self, path: str, stats: Mapping[str, Any]) -> list[Violation]:
        cols = _columns(stats)
        out = []
        for column, expected in self.types.items():
            if column not in cols:
                out.append(
                    self._violation(
                        path,
                        f"{path}: has no column {column!r}; ColumnTypes requires it as {expected}",
                    )
                )
            elif not type_matches(expected, actual := cols[column]["type"]):
                out.append(
                    self._violation(
                        path,
                        f"{path}: column {column!r} is {actual}; ColumnTypes requires {expected}",
                    )
                )
        return out


class NotNull(_TabularRule):
    """None of ``columns`` has a null in any matching tabular file."""

    kind: Literal["NotNull"] = "NotNull"
    columns: list[str] = Field(min_length=1)

    def check_file(self, path: str, stats: Mapping[str, Any]) -> list[Violation]:
        cols = _columns(stats)
        out = []
        for column in self.columns:
            if column not in cols:
                out.append(
                    self._violation(path, f"{path}: has no column {column!r}; NotNull requires it")
                )
            elif (nulls := cols[column]["nulls"]) > 0:
                out.append(
                    self._violation(
                        path,
                        f"{path}: column {column!r} has {nulls} null{'s' if nulls != 1 else ''}"
                        f" in {stats.get('rows')} rows; NotNull requires none",
                    )
                )
        return out


class ValueRange(_TabularRule):
    """Every value of the numeric ``column`` lies within ``min``..``max`` (either may be
    None) in each matching tabular file. NaN and infinite values are not compared."""

    kind: Literal["ValueRange"] = "ValueRange"
    column: str
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> ValueRange:
        if self.min is None and self.max is None:
            raise ValueError("ValueRange needs min, max or both")
        _ordered(self, "min", "max")
        return self

    def check_file(self, path: str, stats: Mapping[str, Any]) -> list[Violation]:
        col = _columns(stats).get(self.column)
        name = f"column {self.column!r}"
        if col is None:
            return [self._violation(path, f"{path}: has no {name}; ValueRange requires it")]
        if not (type_matches("number", col["type"]) or col["type"] == "null"):
            return [
                self._violation(
                    path, f"{path}: {name} is {col['type']}; ValueRange needs a numeric column"
                )
            ]
        out = []
        if self.min is not None and col["min"] is not None and col["min"] < self.min:
            out.append(
                self._violation(
                    path,
                    f"{path}: {name} has minimum {col['min']}; ValueRange requires >= {self.min}",
                )
            )
        if self.max is not None and col["max"] is not None and col["max"] > self.max:
            out.append(
                self._violation(
                    path,
                    f"{path}: {name} has maximum {col['max']}; ValueRange requires <= {self.max}",
                )
            )
        return out


class UniqueKey(_TabularRule):
    """No two rows of the matching tabular files, all together, have the same values of
    ``columns``. Reads the data (key values compared as text; two nulls are equal)."""

    kind: Literal["UniqueKey"] = "UniqueKey"
    columns: list[str] = Field(min_length=1)

    def check(self, ctx: _Context) -> list[Violation]:
        out, readable = self._targets(ctx)
        first_in: dict[tuple[str | None, ...], int] = {}  # key -> the file it was first in
        paths = [path for path, _ in readable]
        for index, (path, stats) in enumerate(readable):
            missing = [c for c in self.columns if c not in _columns(stats)]
            if missing:
                message = f"{path}: lacks key columns {missing}; UniqueKey needs them"
                out.append(self._violation(path, message))
                continue
            repeats = 0
            examples: list[str] = []
            try:
                with ctx.open_file(path) as stream:
                    for key in iter_keys(stream, path, self.columns):
                        was = first_in.get(key)
                        if was is None:
                            first_in[key] = index
                            continue
                        repeats += 1
                        if len(examples) < 3:
                            examples.append(f"{key!r} (first in {paths[was]})")
            except Exception as e:  # a read failure is a violation, not a crash
                out.append(self._violation(path, f"{path}: could not read its keys: {e}"))
                continue
            if repeats:
                message = (
                    f"{path}: {repeats} row{'s' if repeats != 1 else ''} repeat a key of "
                    f"{self.columns} seen before, e.g. {', '.join(examples)}; UniqueKey "
                    f"requires each key once across the {len(paths)} matching files"
                )
                out.append(self._violation(path, message))
        return out


Rule = Annotated[
    RequiredGlob
    | FileCount
    | TotalSize
    | RequiredColumns
    | ColumnTypes
    | NotNull
    | ValueRange
    | UniqueKey,
    Field(discriminator="kind"),
]
"""Any rule; ``kind`` (the class name) tells them apart in YAML or JSON."""

_RULES: TypeAdapter[list[Rule]] = TypeAdapter(list[Rule], config=ConfigDict(title="rules"))


class RuleSet(BaseModel):
    """Rules checked together (every rule runs; every violation is reported)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: list[Rule] = Field(default_factory=list)

    @classmethod
    def from_yaml(cls, text: str) -> RuleSet:
        """Rules from YAML: a list of rules, or a mapping with the key ``rules``."""
        return cls(rules=parse_rules(yaml.safe_load(text) or []))

    def check(
        self,
        files: Sequence[FileEntry],
        stats: Mapping[str, Any],
        open_file: Callable[[str], IO[bytes]],
    ) -> list[Violation]:
        """`check_rules` with these rules."""
        return check_rules(self.rules, files, stats, open_file)


RulesLike = Rule | RuleSet | Sequence[Rule | Mapping[str, Any]] | Mapping[str, Any] | None
"""What `parse_rules` accepts: a rule, a `RuleSet`, a list of rules or of dicts, a dict of
one rule or ``{"rules": [...]}``, or None (no rules)."""


def parse_rules(value: RulesLike) -> list[Rule]:
    """``value`` as a list of rules (see `RulesLike`). A dict with an unknown ``kind`` or a
    bad field raises pydantic's `ValidationError`, naming it."""
    if value is None:
        return []
    if isinstance(value, RuleSet):
        return list(value.rules)
    if isinstance(value, _Rule):
        return [value]
    if isinstance(value, Mapping):
        if "kind" not in value and set(value) == {"rules"}:
            return list(RuleSet.model_validate(value).rules)
        value = [value]
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidInput(
            f"rules={value!r:.80} is not a rule, a RuleSet or a list of rules; pass e.g. "
            "[NotNull(columns=['id'])] or [{'kind': 'NotNull', 'columns': ['id']}]."
        )
    return _RULES.validate_python(list(value))


def check_rules(
    rules: RulesLike,
    files: Sequence[FileEntry],
    stats: Mapping[str, Any],
    open_file: Callable[[str], IO[bytes]],
) -> list[Violation]:
    """Every violation of ``rules`` by ``files``, rule by rule (none stops the others).

    ``stats`` maps a file's path to its `file_stats`; a tabular file missing from it is read
    through ``open_file(path)`` (a binary stream, closed here) as is any file `UniqueKey`
    checks."""
    ctx = _Context(files=files, stats=stats, open_file=open_file)
    out: list[Violation] = []
    for rule in parse_rules(rules):
        out.extend(rule.check(ctx))
    return out
