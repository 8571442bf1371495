"""Readers of a dataset's tabular files: one pyarrow Table or pandas DataFrame from many
CSV, TSV and Parquet files (pyarrow is the ``tabular`` extra), and the key rows `UniqueKey`
checks."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any

from prefect_mlops.core.errors import InvalidInput
from prefect_mlops.datasets.stats import (
    CSV_BLOCK_SIZE,
    CSV_NULLS,
    PARQUET_BATCH_ROWS,
    TABULAR_SUFFIXES,
    csv_delimiter,
    has_pyarrow,
    require_pyarrow,
    seekable,
    tabular_format,
)

if TYPE_CHECKING:
    import pandas
    import pyarrow

Opener = Callable[[], IO[bytes]]


def read_arrow(
    files: Sequence[tuple[str, Opener]], *, columns: Sequence[str] | None = None
) -> pyarrow.Table:
    """One Table of the rows of ``files`` (``(path, opener)`` pairs, read in order; the
    suffix of each path picks CSV, TSV or Parquet), optionally only ``columns``. Every file
    must have the same columns (in any order: the first file's order is kept); where their
    types differ only as int and float (or a column with no values) they are widened, any
    other difference raises `InvalidInput`."""
    pa = require_pyarrow("read_arrow")
    for path, _ in files:
        if tabular_format(path) is None:
            raise InvalidInput(
                f"{path!r} is not a tabular file: read_arrow reads {', '.join(TABULAR_SUFFIXES)}"
                " files; select only those (e.g. the glob '**/*.parquet')."
            )
    if not files:
        return pa.table({})
    tables: list[Any] = []
    for path, opener in files:
        with opener() as stream:
            table = _read_one(stream, path, columns)
        if tables:
            _check_same_schema(pa, files[0][0], tables[0].schema, path, table.schema)
            table = table.select(tables[0].column_names)
        tables.append(table)
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:  # pragma: no cover - checked above
        raise InvalidInput(f"the files' schemas cannot be combined: {e}") from e


def read_pandas(
    files: Sequence[tuple[str, Opener]], *, columns: Sequence[str] | None = None
) -> pandas.DataFrame:
    """`read_arrow` as a pandas DataFrame."""
    try:
        import pandas  # noqa: F401
    except ImportError:
        raise InvalidInput("read_pandas needs pandas: pip install pandas.") from None
    return read_arrow(files, columns=columns).to_pandas()


def _read_one(stream: IO[bytes], path: str, columns: Sequence[str] | None) -> Any:
    pa = require_pyarrow("read_arrow")
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    try:
        with seekable(stream) as src:
            if tabular_format(path) == "parquet":
                return pq.read_table(src, columns=list(columns) if columns else None)
            return pcsv.read_csv(
                src,
                parse_options=pcsv.ParseOptions(delimiter=csv_delimiter(path)),
                convert_options=pcsv.ConvertOptions(
                    include_columns=list(columns or []), strings_can_be_null=True
                ),
            )
    except (pa.ArrowInvalid, KeyError) as e:
        raise InvalidInput(f"{path!r} could not be read as a table: {e}") from e


def _check_same_schema(pa: Any, first_path: str, first: Any, path: str, schema: Any) -> None:
    missing = [n for n in first.names if n not in schema.names]
    extra = [n for n in schema.names if n not in first.names]
    clashes = []
    for field in first:
        if field.name in schema.names:
            other = schema.field(field.name).type
            if not _compatible(pa, field.type, other):
                clashes.append(f"{field.name!r} is {other} there, {field.type} in {first_path!r}")
    if missing or extra or clashes:
        parts = []
        if missing:
            parts.append(f"lacks columns {missing}")
        if extra:
            parts.append(f"has extra columns {extra}")
        parts.extend(clashes)
        raise InvalidInput(
            f"{path!r} does not match the schema of {first_path!r}: {'; '.join(parts)}. "
            "Read files of one schema together, or pass columns=[...] that all of them have."
        )


def _compatible(pa: Any, a: Any, b: Any) -> bool:
    t = pa.types
    if a == b or t.is_null(a) or t.is_null(b):
        return True
    numeric = (t.is_integer, t.is_floating)
    return any(f(a) for f in numeric) and any(f(b) for f in numeric)


def iter_keys(
    stream: IO[bytes], path: str, columns: Sequence[str]
) -> Iterator[tuple[str | None, ...]]:
    """The values of ``columns`` in each row of the tabular file ``path``, as text (a CSV
    cell as written, a Parquet value cast to text; None for null), streamed in bounded
    memory. Without pyarrow only CSV can be read (`InvalidInput` for Parquet)."""
    if tabular_format(path) == "parquet" or has_pyarrow():
        yield from _iter_keys_arrow(stream, path, columns)
        return
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    try:
        reader = csv.reader(text, delimiter=csv_delimiter(path))
        header = next(reader, [])
        absent = [c for c in columns if c not in header]
        if absent:
            raise InvalidInput(f"{path!r} has no columns {absent}; it has {header}.")
        at = [header.index(c) for c in columns]
        for row in reader:
            if row:
                yield tuple(None if row[i] in CSV_NULLS else row[i] for i in at)
    finally:
        text.detach()


def _iter_keys_arrow(
    stream: IO[bytes], path: str, columns: Sequence[str]
) -> Iterator[tuple[str | None, ...]]:
    pa = require_pyarrow(f"reading the Parquet file {path!r}")
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    with seekable(stream) as src:
        if tabular_format(path) == "parquet":
            pf = pq.ParquetFile(src)
            absent = [c for c in columns if c not in pf.schema_arrow.names]
            if absent:
                raise InvalidInput(
                    f"{path!r} has no columns {absent}; it has {pf.schema_arrow.names}."
                )
            batches = pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=list(columns))
        else:
            try:
                batches = pcsv.open_csv(
                    src,
                    read_options=pcsv.ReadOptions(block_size=CSV_BLOCK_SIZE),
                    parse_options=pcsv.ParseOptions(delimiter=csv_delimiter(path)),
                    convert_options=pcsv.ConvertOptions(
                        include_columns=list(columns),
                        column_types=dict.fromkeys(columns, pa.string()),
                        strings_can_be_null=True,
                    ),
                )
            except KeyError as e:  # pyarrow's ArrowKeyError: a column it does not have
                raise InvalidInput(f"{path!r} lacks a key column: {e}") from e
        for batch in batches:
            arrays = []
            for name in columns:
                arr = batch.column(name)
                try:
                    arr = pc.cast(arr, pa.string())
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    arr = pa.array([None if v is None else str(v) for v in arr.to_pylist()])
                arrays.append(arr.to_pylist())
            yield from zip(*arrays, strict=True)
