"""Statistics and schema of tabular files (CSV, TSV, Parquet), read in bounded memory.

`file_stats` gives a JSON-serialisable summary: the format, the row count and per column its
type, null count, min, max and mean. Types are pyarrow's names (``int64``, ``double``,
``string``, ``bool``, ``timestamp[s]``, ``date32[day]``, ``null`` for a column with no values;
``large_string`` and a dictionary of strings are ``string``);
the stdlib fallback used without pyarrow gives the same names for the types it infers
(``int64``, ``double``, ``bool``, ``string``, ``null``). pyarrow is the optional ``tabular``
extra, imported only inside functions.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import date, datetime, time
from decimal import Decimal
from types import ModuleType
from typing import IO, Any

from prefect_mlops.core.errors import InvalidInput

TABULAR_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")

#: Bytes of CSV parsed per streamed batch (pyarrow infers column types from the first one).
CSV_BLOCK_SIZE = 1 << 20
#: Rows per batch read from a Parquet file.
PARQUET_BATCH_ROWS = 65_536
#: Cells read as null in a CSV file: pyarrow's defaults, used by the stdlib fallback too.
CSV_NULLS = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"}
    | {"N/A", "NA", "NULL", "NaN", "n/a", "nan", "null"}
)
_NO_PYARROW = "pyarrow not installed: pip install 'prefect-mlops[tabular]' to read Parquet"

Source = str | os.PathLike[str] | IO[bytes]


def _pyarrow() -> ModuleType | None:
    """The pyarrow module, or None where it is not installed (tests patch this)."""
    try:
        import pyarrow
    except ImportError:
        return None
    return pyarrow


def has_pyarrow() -> bool:
    """True if pyarrow can be imported."""
    return _pyarrow() is not None


def require_pyarrow(feature: str) -> ModuleType:
    """pyarrow, or `InvalidInput` naming ``feature`` and the extra that installs it."""
    pa = _pyarrow()
    if pa is None:
        raise InvalidInput(
            f"{feature} needs pyarrow, which is not installed: "
            "pip install 'prefect-mlops[tabular]'."
        )
    return pa


def is_tabular(path: str) -> bool:
    """True if ``path`` ends in one of `TABULAR_SUFFIXES` (any case)."""
    return path.lower().endswith(TABULAR_SUFFIXES)


def tabular_format(path: str) -> str | None:
    """``"csv"`` (also for ``.tsv``), ``"parquet"``, or None for a non-tabular path."""
    lower = path.lower()
    if lower.endswith((".csv", ".tsv")):
        return "csv"
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    return None


def csv_delimiter(path: str) -> str:
    """The field separator of a CSV or TSV file, by its suffix."""
    return "\t" if path.lower().endswith(".tsv") else ","


@contextlib.contextmanager
def seekable(source: Source) -> Iterator[Any]:
    """``source`` as something pyarrow can read more than once: a path as is, a seekable
    stream rewound to where it was, any other stream copied to a temporary file first.
    Streams passed in are not closed."""
    if isinstance(source, (str, os.PathLike)):
        yield os.fspath(source)
        return
    if _is_seekable(source):
        start = source.tell()
        try:
            yield source
        finally:
            source.seek(start)
        return
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(source, spool, 1 << 20)
        spool.seek(0)
        yield spool


def _is_seekable(stream: IO[bytes]) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def file_stats(source: Source, name: str) -> dict[str, Any] | None:
    """Statistics of the tabular file ``name`` (its suffix picks the format) read from
    ``source``; None when ``name`` is not tabular. A file that cannot be read gives
    ``{"format": ..., "error": "<why>"}`` instead of raising."""
    fmt = tabular_format(name)
    if fmt is None:
        return None
    pa = _pyarrow()
    try:
        with seekable(source) as src:
            if fmt == "parquet":
                if pa is None:
                    return {"format": fmt, "error": _NO_PYARROW}
                return _parquet_stats(src)
            if pa is None:
                return _csv_stats_stdlib(src, csv_delimiter(name))
            return _csv_stats_arrow(src, csv_delimiter(name))
    except (OSError, ValueError, csv.Error) as e:  # ArrowInvalid is a ValueError
        return {"format": fmt, "error": f"{name} could not be read: {e}"}
    except Exception as e:
        if pa is not None and isinstance(e, pa.lib.ArrowException):
            return {"format": fmt, "error": f"{name} could not be read: {e}"}
        raise


# --- aggregates --------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    """A min or max as JSON: numbers as numbers (non-finite as None), temporal as ISO text."""
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return value


def _type_name(pa: ModuleType, type_: Any) -> str:
    """pyarrow's name of ``type_``, with the 64-bit-offset variants named as the plain ones
    (pandas writes ``large_string`` to Parquet where a CSV reads ``string``)."""
    if pa.types.is_large_string(type_):
        return "string"
    if pa.types.is_large_binary(type_):
        return "binary"
    return str(type_)


class _ArrowColumn:
    """Null count, min, max and mean of one column, folded batch by batch."""

    def __init__(self, pa: ModuleType, type_: Any) -> None:
        self.pa = pa
        self.type = type_.value_type if pa.types.is_dictionary(type_) else type_
        t = pa.types
        if t.is_integer(self.type) or t.is_floating(self.type) or t.is_decimal(self.type):
            self.kind = "number"
        elif t.is_string(self.type) or t.is_large_string(self.type):
            self.kind = "string"
        elif t.is_timestamp(self.type) or t.is_date(self.type) or t.is_time(self.type):
            self.kind = "temporal"
        else:
            self.kind = "other"
        self.nulls = 0
        self.min: Any = None
        self.max: Any = None
        self.total = 0.0
        self.count = 0

    def update(self, arr: Any) -> None:
        import pyarrow.compute as pc

        pa = self.pa
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        self.nulls += arr.null_count
        if self.kind == "other" or arr.null_count == len(arr):
            return
        if pa.types.is_floating(arr.type):
            arr = pc.filter(arr, pc.invert(pc.is_nan(arr)))  # NaN is no value; nulls drop too
            if len(arr) == 0:
                return
        mm = pc.min_max(arr)
        lo, hi = mm["min"].as_py(), mm["max"].as_py()
        if lo is not None and (self.min is None or lo < self.min):
            self.min = lo
        if hi is not None and (self.max is None or hi > self.max):
            self.max = hi
        if self.kind == "number":
            self.total += pc.sum(pc.cast(arr, pa.float64())).as_py() or 0.0
            self.count += len(arr) - arr.null_count

    def result(self, name: str) -> dict[str, Any]:
        mean = self.total / self.count if self.kind == "number" and self.count else None
        return {
            "name": name,
            "type": _type_name(self.pa, self.type),
            "nulls": self.nulls,
            "min": _json_value(self.min),
            "max": _json_value(self.max),
            "mean": _json_value(mean),
        }


# --- Parquet -----------------------------------------------------------------------------


def _parquet_stats(src: Any) -> dict[str, Any]:
    import pyarrow.parquet as pq

    pa = require_pyarrow("Parquet statistics")
    pf = pq.ParquetFile(src)
    schema = pf.schema_arrow
    cols = [_ArrowColumn(pa, field.type) for field in schema]
    for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for col, arr in zip(cols, batch.columns, strict=True):
            col.update(arr)
    return {
        "format": "parquet",
        "rows": pf.metadata.num_rows,
        "columns": [c.result(f.name) for c, f in zip(cols, schema, strict=True)],
    }


# --- CSV with pyarrow --------------------------------------------------------------------


def _open_csv(src: Any, delimiter: str, column_types: dict[str, Any] | None = None) -> Any:
    import pyarrow.csv as pcsv

    return pcsv.open_csv(
        src,
        read_options=pcsv.ReadOptions(block_size=CSV_BLOCK_SIZE),
        parse_options=pcsv.ParseOptions(delimiter=delimiter),
        convert_options=pcsv.ConvertOptions(
            column_types=column_types or {}, strings_can_be_null=True
        ),
    )


def _csv_stats_arrow(src: Any, delimiter: str) -> dict[str, Any]:
    pa = require_pyarrow("CSV statistics")
    start = None if isinstance(src, str) else src.tell()
    reader = _open_csv(src, delimiter)
    schema = reader.schema
    cols = [_ArrowColumn(pa, field.type) for field in schema]
    rows = 0
    try:
        for batch in reader:
            rows += batch.num_rows
            for col, arr in zip(cols, batch.columns, strict=True):
                col.update(arr)
    except pa.ArrowInvalid as e:
        if "conversion error" not in str(e):
            raise
        # A later block holds values the type inferred from the first block cannot take
        # (an int column with a float further down): read again as text and keep, per column,
        # the narrowest type every value casts to.
        if start is not None:
            src.seek(start)
        return _csv_stats_widening(pa, src, delimiter, schema)
    return {
        "format": "csv",
        "rows": rows,
        "columns": [c.result(f.name) for c, f in zip(cols, schema, strict=True)],
    }


def _widening_types(pa: ModuleType, inferred: Any) -> list[Any]:
    """The types a CSV column first inferred as ``inferred`` may end up as, narrowest first
    (always ending in ``string``, which every cell casts to)."""
    t = pa.types
    if t.is_null(inferred) or t.is_integer(inferred):
        chain = [pa.int64(), pa.float64()]
    elif t.is_floating(inferred):
        chain = [pa.float64()]
    elif t.is_string(inferred) or t.is_large_string(inferred):
        chain = []
    else:  # bool, dates, times, timestamps
        chain = [inferred]
    return [*chain, pa.string()]


def _csv_stats_widening(pa: ModuleType, src: Any, delimiter: str, schema: Any) -> dict[str, Any]:
    import pyarrow.compute as pc

    names = schema.names
    reader = _open_csv(src, delimiter, dict.fromkeys(names, pa.string()))
    candidates = [[_ArrowColumn(pa, t) for t in _widening_types(pa, f.type)] for f in schema]
    rows = 0
    for batch in reader:
        rows += batch.num_rows
        for i, text in enumerate(batch.columns):
            alive = []
            for col in candidates[i]:
                try:
                    col.update(text if col.type == pa.string() else pc.cast(text, col.type))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    continue
                alive.append(col)
            candidates[i] = alive
    return {
        "format": "csv",
        "rows": rows,
        "columns": [cands[0].result(n) for cands, n in zip(candidates, names, strict=True)],
    }


# --- CSV without pyarrow -----------------------------------------------------------------

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity)", re.IGNORECASE)
_BOOLS = frozenset({"true", "True", "TRUE", "false", "False", "FALSE"})
_INT64 = (-(2**63), 2**63 - 1)


class _TextColumn:
    """One CSV column read by the stdlib: inferred type (int64, bool, double, string) and
    its aggregates, folded cell by cell."""

    def __init__(self) -> None:
        self.nulls = 0
        self.values = 0
        self.can_int = self.can_float = self.can_bool = True
        self.num_min: float | None = None
        self.num_max: float | None = None
        self.total = 0.0
        self.text_min: str | None = None
        self.text_max: str | None = None

    def update(self, cell: str) -> None:
        if cell in CSV_NULLS:
            self.nulls += 1
            return
        self.values += 1
        if self.text_min is None or cell < self.text_min:
            self.text_min = cell
        if self.text_max is None or cell > self.text_max:
            self.text_max = cell
        if self.can_bool and cell not in _BOOLS:
            self.can_bool = False
        number: int | float | None = None
        if self.can_int:
            if _INT.fullmatch(cell) and _INT64[0] <= int(cell) <= _INT64[1]:
                number = int(cell)
            else:
                self.can_int = False
        if number is None and self.can_float:
            if _FLOAT.fullmatch(cell):
                number = float(cell)
            else:
                self.can_float = False
        if number is not None:
            self.total += number
            if self.num_min is None or number < self.num_min:
                self.num_min = number
            if self.num_max is None or number > self.num_max:
                self.num_max = number

    def result(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name, "type": "null", "nulls": self.nulls}
        out.update(min=None, max=None, mean=None)
        if not self.values:
            return out
        if self.can_int or self.can_float:
            as_type = int if self.can_int else float
            lo = as_type(self.num_min) if self.num_min is not None else None
            hi = as_type(self.num_max) if self.num_max is not None else None
            out.update(
                type="int64" if self.can_int else "double",
                min=_json_value(lo),
                max=_json_value(hi),
                mean=_json_value(self.total / self.values),
            )
        elif self.can_bool:
            out["type"] = "bool"
        else:
            out.update(type="string", min=self.text_min, max=self.text_max)
        return out


@contextlib.contextmanager
def _text(src: Any) -> Iterator[IO[str]]:
    """The CSV text of a path or a binary stream (a stream is left open)."""
    if isinstance(src, str):
        with open(src, encoding="utf-8", newline="") as f:
            yield f
        return
    text = io.TextIOWrapper(src, encoding="utf-8", newline="")
    try:
        yield text
    finally:
        text.detach()


def _csv_stats_stdlib(src: Any, delimiter: str) -> dict[str, Any]:
    with _text(src) as text:
        reader = csv.reader(text, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise ValueError("Empty CSV file")
        cols = [_TextColumn() for _ in header]
        rows = 0
        for row in reader:
            if not row:
                continue  # a blank line, as pyarrow skips it
            if len(row) != len(header):
                raise ValueError(
                    f"CSV parse error: line {reader.line_num} has {len(row)} fields, "
                    f"the header has {len(header)}"
                )
            rows += 1
            for col, cell in zip(cols, row, strict=True):
                col.update(cell)
    return {
        "format": "csv",
        "rows": rows,
        "columns": [c.result(n) for c, n in zip(cols, header, strict=True)],
    }
