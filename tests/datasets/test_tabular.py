"""Tabular datasets: file statistics, validation rules and readers, on real files."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from prefect_mlops.core.errors import InvalidInput
from prefect_mlops.datasets import stats as stats_mod
from prefect_mlops.datasets.entities import FileEntry
from prefect_mlops.datasets.rules import (
    ColumnTypes,
    FileCount,
    NotNull,
    RequiredColumns,
    RequiredGlob,
    RuleSet,
    TotalSize,
    UniqueKey,
    ValidationFailed,
    ValueRange,
    Violation,
    check_rules,
    glob_match,
    parse_rules,
    type_matches,
)
from prefect_mlops.datasets.stats import file_stats, is_tabular
from prefect_mlops.datasets.tabular import read_arrow, read_pandas


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def cols(stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in stats["columns"]}


def entries(root: Path) -> list[FileEntry]:
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            rel = p.relative_to(root).as_posix()
            out.append(FileEntry(rel, len(data), hashlib.sha256(data).hexdigest()))
    return out


def opener(root: Path) -> Callable[[str], IO[bytes]]:
    return lambda rel: (root / rel).open("rb")


def all_stats(root: Path) -> dict[str, Any]:
    out = {}
    for f in entries(root):
        s = file_stats(root / f.path, f.path)
        if s is not None:
            out[f.path] = s
    return out


@pytest.fixture
def no_pyarrow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats_mod, "_pyarrow", lambda: None)


PEOPLE = (
    "id,age,name,born,member,empty\n"
    "1,3.5,bob,2020-01-01,true,\n"
    "2,,al,2021-02-03,false,\n"
    "3,7,,2019-05-05,true,\n"
)


# --- file_stats --------------------------------------------------------------------------


def test_is_tabular_by_suffix_in_any_case() -> None:
    assert [is_tabular(p) for p in ("a.CSV", "d/b.tsv", "c.Parquet", "x.pq")] == [True] * 4
    assert not is_tabular("a.csv.gz") and not is_tabular("image.png") and not is_tabular("csv")
    assert file_stats(io.BytesIO(b"\x89PNG"), "image.png") is None


def test_csv_stats_give_types_nulls_min_max_mean(tmp_path: Path) -> None:
    path = write(tmp_path, "people.csv", PEOPLE)
    s = file_stats(path, "people.csv")
    assert s is not None
    assert (s["format"], s["rows"]) == ("csv", 3)
    c = cols(s)
    assert [x["name"] for x in s["columns"]] == ["id", "age", "name", "born", "member", "empty"]
    assert c["id"] == {"name": "id", "type": "int64", "nulls": 0, "min": 1, "max": 3, "mean": 2.0}
    assert c["age"] == {
        "name": "age",
        "type": "double",
        "nulls": 1,
        "min": 3.5,
        "max": 7.0,
        "mean": 5.25,
    }
    assert (c["name"]["type"], c["name"]["nulls"]) == ("string", 1)
    assert (c["name"]["min"], c["name"]["max"], c["name"]["mean"]) == ("al", "bob", None)
    assert (c["born"]["type"], c["born"]["min"], c["born"]["max"]) == (
        "date32[day]",
        "2019-05-05",
        "2021-02-03",
    )
    assert (c["member"]["type"], c["member"]["mean"]) == ("bool", None)
    assert (c["empty"]["type"], c["empty"]["nulls"], c["empty"]["min"]) == ("null", 3, None)
    json.dumps(s, allow_nan=False)


def test_parquet_stats_fold_row_groups_and_batches_without_nan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stats_mod, "PARQUET_BATCH_ROWS", 3)
    table = pa.table(
        {
            "x": pa.array([5, None, 1, 9, 2, None, 4], pa.int64()),
            "f": [1.0, float("nan"), 3.0, None, 5.0, 7.0, float("nan")],
            "cat": pa.array(["b", "a", "c", "a", None, "b", "a"]).dictionary_encode(),
            "t": pa.array([3000, 1000, 2000, 4000, 5000, 6000, 7000], pa.timestamp("ms")),
            "nested": [[1], [2], None, [3], [4], [5], [6]],
        }
    )
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=2)
    assert pq.ParquetFile(tmp_path / "t.parquet").num_row_groups == 4
    with (tmp_path / "t.parquet").open("rb") as f:
        s = file_stats(f, "t.parquet")
    assert s is not None
    assert (s["format"], s["rows"]) == ("parquet", 7)
    c = cols(s)
    assert c["x"] == {"name": "x", "type": "int64", "nulls": 2, "min": 1, "max": 9, "mean": 4.2}
    # NaN is no value: not a min, max or part of the mean, and never in the JSON
    assert (c["f"]["type"], c["f"]["nulls"]) == ("double", 1)
    assert (c["f"]["min"], c["f"]["max"], c["f"]["mean"]) == (1.0, 7.0, 4.0)
    assert (c["cat"]["type"], c["cat"]["min"], c["cat"]["max"]) == ("string", "a", "c")
    assert c["cat"]["nulls"] == 1
    assert (c["t"]["type"], c["t"]["min"], c["t"]["max"]) == (
        "timestamp[ms]",
        "1970-01-01T00:00:01",
        "1970-01-01T00:00:07",
    )
    assert c["nested"] == {
        "name": "nested",
        "type": "list<element: int64>",
        "nulls": 1,
        "min": None,
        "max": None,
        "mean": None,
    }
    json.dumps(s, allow_nan=False)


def test_csv_and_parquet_of_one_frame_report_the_same_types(tmp_path: Path) -> None:
    frame = pd.DataFrame({"n": [1, 2, 3], "x": [0.5, 1.5, 2.0], "s": ["a", "b", "c"]})
    frame.to_csv(tmp_path / "f.csv", index=False)
    frame.to_parquet(tmp_path / "f.parquet", index=False)
    from_csv = file_stats(tmp_path / "f.csv", "f.csv")
    from_parquet = file_stats(tmp_path / "f.parquet", "f.parquet")
    assert from_csv is not None and from_parquet is not None
    assert from_csv["columns"] == from_parquet["columns"]
    assert [c["type"] for c in from_csv["columns"]] == ["int64", "double", "string"]


def test_csv_column_turning_float_after_the_first_block(tmp_path: Path) -> None:
    # ~1.9 MB: pyarrow infers int64 from the first 1 MiB block, then meets 0.5 at the end
    rows = [f"{i},{i % 7}" for i in range(250_000)]
    path = write(tmp_path, "big.csv", "n,k\n" + "\n".join(rows) + "\n0.5,3\n")
    assert path.stat().st_size > 2 * stats_mod.CSV_BLOCK_SIZE - 300_000
    s = file_stats(path, "big.csv")
    assert s is not None and "error" not in s
    assert s["rows"] == 250_001
    n, k = cols(s)["n"], cols(s)["k"]
    assert (n["type"], n["min"], n["max"]) == ("double", 0.0, 249_999.0)
    assert n["mean"] == pytest.approx((sum(range(250_000)) + 0.5) / 250_001)
    assert (k["type"], k["min"], k["max"]) == ("int64", 0, 6)


def test_csv_widening_picks_each_columns_narrowest_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stats_mod, "CSV_BLOCK_SIZE", 64)
    head = "".join(f"{i},{i},,{i}\n" for i in range(40))
    path = write(tmp_path, "w.csv", "a,b,c,d\n" + head + "2.5,x,7,39\n,,8,\n")
    s = file_stats(path, "w.csv")
    assert s is not None and s["rows"] == 42
    c = cols(s)
    assert (c["a"]["type"], c["a"]["max"], c["a"]["nulls"]) == ("double", 39.0, 1)
    assert (c["b"]["type"], c["b"]["min"], c["b"]["max"], c["b"]["mean"]) == (
        "string",
        "0",
        "x",
        None,
    )
    assert (c["c"]["type"], c["c"]["nulls"], c["c"]["min"], c["c"]["max"]) == ("int64", 40, 7, 8)
    assert (c["d"]["type"], c["d"]["nulls"], c["d"]["max"]) == ("int64", 1, 39)


def test_tsv_unicode_columns_and_a_file_name_with_spaces(tmp_path: Path) -> None:
    path = write(tmp_path, "my data/día 1.tsv", "größe\tname, full\n1.5\tÅsa, B\n2.5\tZoë\n")
    s = file_stats(path, "my data/día 1.tsv")
    assert s is not None and s["rows"] == 2
    c = cols(s)
    assert (c["größe"]["type"], c["größe"]["mean"]) == ("double", 2.0)
    assert (c["name, full"]["min"], c["name, full"]["max"]) == ("Zoë", "Åsa, B")


def test_header_only_csv_has_zero_rows(tmp_path: Path) -> None:
    s = file_stats(write(tmp_path, "h.csv", "a,b\n"), "h.csv")
    assert s == {
        "format": "csv",
        "rows": 0,
        "columns": [
            {"name": "a", "type": "null", "nulls": 0, "min": None, "max": None, "mean": None},
            {"name": "b", "type": "null", "nulls": 0, "min": None, "max": None, "mean": None},
        ],
    }


@pytest.mark.parametrize(
    ("name", "data", "why"),
    [
        ("bad.csv", b"a,b\n1,2\n1,2,3\n", "Expected 2 columns, got 3"),
        ("empty.csv", b"", "Empty CSV file"),
        ("bad.parquet", b"not parquet at all", "bad.parquet could not be read"),
    ],
)
def test_unreadable_files_give_an_error_not_an_exception(name: str, data: bytes, why: str) -> None:
    s = file_stats(io.BytesIO(data), name)
    assert s is not None and set(s) == {"format", "error"}
    assert s["format"] == ("parquet" if name.endswith("parquet") else "csv")
    assert name in s["error"] and why in s["error"]


class OneWayStream(io.RawIOBase):
    """A stream that cannot seek, like an HTTP body."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b: Any) -> int:
        return self._inner.readinto(b)


def test_stats_of_streams_one_way_or_seekable_leave_them_open(tmp_path: Path) -> None:
    pq.write_table(pa.table({"v": [1, 2, 3]}), tmp_path / "v.parquet")
    one_way = OneWayStream((tmp_path / "v.parquet").read_bytes())
    s = file_stats(one_way, "v.parquet")  # type: ignore[arg-type]
    assert s is not None and s["rows"] == 3 and cols(s)["v"]["max"] == 3
    stream = io.BytesIO(b"x\n1\n2\n")
    assert file_stats(stream, "x.csv") == file_stats(io.BytesIO(b"x\n1\n2\n"), "x.csv")
    assert not stream.closed and stream.tell() == 0


# --- without pyarrow ---------------------------------------------------------------------


@pytest.mark.usefixtures("no_pyarrow")
def test_stdlib_csv_stats_match_pyarrow_for_the_types_it_infers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "id,x,word,none,flag\n1,2,b,,true\n2,,a,NA,false\n3,4.5,,,TRUE\n"
    path = write(tmp_path, "s.csv", text)
    assert stats_mod._pyarrow() is None
    fallback = file_stats(path, "s.csv")
    monkeypatch.undo()
    with_arrow = file_stats(path, "s.csv")
    assert fallback == with_arrow
    assert fallback is not None
    assert [c["type"] for c in fallback["columns"]] == ["int64", "double", "string", "null", "bool"]
    assert cols(fallback)["x"] == {
        "name": "x",
        "type": "double",
        "nulls": 1,
        "min": 2.0,
        "max": 4.5,
        "mean": 3.25,
    }


@pytest.mark.usefixtures("no_pyarrow")
def test_stdlib_csv_widens_int_to_float_to_string(tmp_path: Path) -> None:
    path = write(tmp_path, "w.csv", "a,b,c\n1,1,1_0\n2,2.5,3\n3,x,4\n")
    s = file_stats(path, "w.csv")
    assert s is not None and s["rows"] == 3
    a, b, c = (cols(s)[k] for k in "abc")
    assert (a["type"], a["min"], a["max"], a["mean"]) == ("int64", 1, 3, 2.0)
    assert (b["type"], b["min"], b["max"], b["mean"]) == ("string", "1", "x", None)
    assert c["type"] == "string"  # Python's int() takes "1_0"; a CSV reader must not


@pytest.mark.usefixtures("no_pyarrow")
def test_stdlib_fallback_reports_bad_csv_and_unreadable_parquet(tmp_path: Path) -> None:
    bad = file_stats(io.BytesIO(b"a,b\n1,2\n3\n"), "bad.csv")
    assert bad == {
        "format": "csv",
        "error": "bad.csv could not be read: CSV parse error: line 3 has 1 fields, "
        "the header has 2",
    }
    binary = file_stats(io.BytesIO(b"a\n\xff\xfe\n"), "bin.csv")
    assert binary is not None and "bin.csv could not be read" in binary["error"]
    pq.write_table(pa.table({"v": [1]}), tmp_path / "v.parquet")
    s = file_stats(tmp_path / "v.parquet", "v.parquet")
    assert s is not None and s["format"] == "parquet"
    assert "pip install 'prefect-mlops[tabular]'" in s["error"]


@pytest.mark.usefixtures("no_pyarrow")
def test_readers_without_pyarrow_say_how_to_install_it(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", "x\n1\n")
    with pytest.raises(InvalidInput, match=r"pip install 'prefect-mlops\[tabular\]'"):
        read_arrow([("a.csv", lambda: path.open("rb"))])


# --- read_arrow / read_pandas ------------------------------------------------------------


def test_read_arrow_concatenates_csv_and_parquet_in_the_first_files_column_order(
    tmp_path: Path,
) -> None:
    write(tmp_path, "a.csv", "id,score\n1,10\n2,20\n")
    pq.write_table(pa.table({"score": [2.5], "id": [3]}), tmp_path / "b.parquet")
    write(tmp_path, "c d.csv", "id,score\n4,\n")

    def open_(rel: str) -> Callable[[], IO[bytes]]:
        return lambda: (tmp_path / rel).open("rb")

    files = [(rel, open_(rel)) for rel in ("a.csv", "b.parquet", "c d.csv")]
    table = read_arrow(files)
    assert table.column_names == ["id", "score"]
    assert table.schema.field("score").type == pa.float64()
    assert table.to_pydict() == {"id": [1, 2, 3, 4], "score": [10.0, 20.0, 2.5, None]}
    frame = read_pandas(files, columns=["id"])
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["id"] and frame["id"].tolist() == [1, 2, 3, 4]


def test_read_arrow_refuses_a_non_tabular_file_before_opening_any(tmp_path: Path) -> None:
    opened: list[str] = []

    def open_(rel: str) -> Callable[[], IO[bytes]]:
        def go() -> IO[bytes]:
            opened.append(rel)
            return io.BytesIO(b"x\n1\n")

        return go

    with pytest.raises(InvalidInput) as err:
        read_arrow([("a.csv", open_("a.csv")), ("notes/read me.txt", open_("read me.txt"))])
    assert "'notes/read me.txt' is not a tabular file" in str(err.value)
    assert ".csv, .tsv, .parquet, .pq" in str(err.value)
    assert opened == []


def test_read_arrow_names_the_file_and_columns_of_a_schema_mismatch() -> None:
    files = [
        ("a.csv", lambda: io.BytesIO(b"id,name\n1,x\n")),
        ("b.csv", lambda: io.BytesIO(b"id,label\nq,y\n")),
    ]
    with pytest.raises(InvalidInput) as err:
        read_arrow(files)  # type: ignore[arg-type]
    message = str(err.value)
    assert "'b.csv' does not match the schema of 'a.csv'" in message
    assert "lacks columns ['name']" in message and "has extra columns ['label']" in message
    assert "'id' is string there, int64 in 'a.csv'" in message
    assert read_arrow([]).num_rows == 0


# --- globs and types ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("train/**", "train/a.csv", True),
        ("train/**", "train/x/y.csv", True),
        ("train/**", "training/a.csv", False),
        ("**/*.csv", "a.csv", True),
        ("**/*.csv", "d/e/a.csv", True),
        ("**/*.csv", "a.csv.bak", False),
        ("*.csv", "d/a.csv", False),
        ("d/*.csv", "d/a.csv", True),
        ("d/?.csv", "d/ab.csv", False),
        ("[!t]*/**", "valid/a.csv", True),
        ("[!t]*/**", "train/a.csv", False),
        ("a[b.csv", "a[b.csv", True),
        ("my data/*.csv", "my data/día 1.csv", True),
        ("**", "any/depth/at/all", True),
    ],
)
def test_glob_match(pattern: str, path: str, matches: bool) -> None:
    assert glob_match(pattern, path) is matches


def test_type_families() -> None:
    assert type_matches("int", "int64") and type_matches("int", "uint8")
    assert type_matches("float", "double") and type_matches("float64", "double")
    assert type_matches("number", "int32") and type_matches("number", "double")
    assert type_matches("string", "large_string") and type_matches("timestamp", "timestamp[ms]")
    assert not type_matches("int", "double") and not type_matches("number", "string")
    assert not type_matches("date", "timestamp[s]") and not type_matches("time", "timestamp[s]")


# --- rules -------------------------------------------------------------------------------


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    write(tmp_path, "train/a.csv", "id,age,name\n1,30,x\n2,,y\n3,-4,\n4,,z\n")
    write(tmp_path, "train/part/b.csv", "id,age,name\n5,40,p\n2,41,q\n")
    write(tmp_path, "README.md", "# people\n")
    return tmp_path


def test_every_violation_of_every_rule_is_reported_together(dataset: Path) -> None:
    rules = [
        NotNull(columns=["id", "age"]),
        ValueRange(column="age", min=0, max=40),
        RequiredColumns(columns=["id", "label"], glob="train/part/**"),
    ]
    found = check_rules(rules, entries(dataset), all_stats(dataset), opener(dataset))
    assert [(v.rule, v.path, v.message) for v in found] == [
        (
            "NotNull(columns=['id', 'age'])",
            "train/a.csv",
            "train/a.csv: column 'age' has 2 nulls in 4 rows; NotNull requires none",
        ),
        (
            "ValueRange(column='age', min=0.0, max=40.0)",
            "train/a.csv",
            "train/a.csv: column 'age' has minimum -4; ValueRange requires >= 0.0",
        ),
        (
            "ValueRange(column='age', min=0.0, max=40.0)",
            "train/part/b.csv",
            "train/part/b.csv: column 'age' has maximum 41; ValueRange requires <= 40.0",
        ),
        (
            "RequiredColumns(columns=['id', 'label'], glob='train/part/**')",
            "train/part/b.csv",
            "train/part/b.csv: lacks columns ['label'] (it has ['id', 'age', 'name']); "
            "RequiredColumns requires ['id', 'label']",
        ),
    ]
    with pytest.raises(ValidationFailed) as err:
        raise ValidationFailed(found)
    assert isinstance(err.value, InvalidInput) and err.value.violations == found
    message = str(err.value)
    assert message.startswith("the version breaks 4 rules:\n")
    assert all(v.message in message for v in found)
    assert message.endswith("Fix the data or the rules and try again; nothing was created.")


def test_file_rules_count_sizes_and_required_globs(dataset: Path) -> None:
    files = entries(dataset)
    total = sum(f.size for f in files)
    ok = [
        RequiredGlob(pattern="train/**"),
        FileCount(min=2, max=2, glob="**/*.csv"),
        TotalSize(min_bytes=total, max_bytes=total),
    ]
    assert check_rules(ok, files, {}, opener(dataset)) == []
    bad = [
        RequiredGlob(pattern="test/**"),
        FileCount(min=3, glob="**/*.csv"),
        FileCount(max=0, glob="*.md"),
        TotalSize(max_bytes=10),
    ]
    messages = [v.message for v in check_rules(bad, files, {}, opener(dataset))]
    assert messages == [
        "no file matches 'test/**' (of 3 files); RequiredGlob requires at least one",
        "2 files match '**/*.csv'; FileCount requires at least 3",
        "1 file matches '*.md'; FileCount allows at most 0",
        f"the files matching '**' total {total} bytes; TotalSize allows at most 10",
    ]


def test_column_types_by_family_and_exact_name(dataset: Path) -> None:
    files, stats = entries(dataset), all_stats(dataset)
    ok = ColumnTypes(types={"id": "int", "age": "number", "name": "string"})
    assert check_rules(ok, files, stats, opener(dataset)) == []
    bad = ColumnTypes(types={"id": "float64", "missing": "int"}, glob="train/a.csv")
    assert [v.message for v in check_rules(bad, files, stats, opener(dataset))] == [
        "train/a.csv: column 'id' is int64; ColumnTypes requires float64",
        "train/a.csv: has no column 'missing'; ColumnTypes requires it as int",
    ]
    with pytest.raises(ValidationError, match="unknown type 'integer'"):
        ColumnTypes(types={"id": "integer"})


def test_unique_key_spans_all_matching_files(dataset: Path) -> None:
    pq.write_table(pa.table({"id": [9, 5], "age": [1, 2], "name": ["a", "b"]}), dataset / "c.pq")
    files = entries(dataset)  # c.pq, then train/a.csv, then train/part/b.csv
    found = check_rules([UniqueKey(columns=["id"])], files, {}, opener(dataset))
    assert [(v.rule, v.path, v.message) for v in found] == [
        (
            "UniqueKey(columns=['id'])",
            "train/part/b.csv",
            "train/part/b.csv: 2 rows repeat a key of ['id'] seen before, e.g. ('5',) "
            "(first in c.pq), ('2',) (first in train/a.csv); UniqueKey requires each key "
            "once across the 3 matching files",
        )
    ]
    assert check_rules([UniqueKey(columns=["id", "name"])], files, {}, opener(dataset)) == []
    one_file = UniqueKey(columns=["id"], glob="train/a.csv")
    assert check_rules(one_file, files, {}, opener(dataset)) == []
    missing = check_rules(UniqueKey(columns=["key"], glob="c.pq"), files, {}, opener(dataset))
    assert [v.message for v in missing] == ["c.pq: lacks key columns ['key']; UniqueKey needs them"]


@pytest.mark.usefixtures("no_pyarrow")
def test_unique_key_and_stats_without_pyarrow(dataset: Path) -> None:
    write(dataset, "train/c.csv", "id,age,name\n7,1,a\n7,2,b\n,3,c\n,4,d\n")
    found = check_rules(
        [UniqueKey(columns=["id"], glob="train/c.csv"), NotNull(columns=["id"])],
        entries(dataset),
        {},
        opener(dataset),
    )
    assert [v.message for v in found] == [
        "train/c.csv: 2 rows repeat a key of ['id'] seen before, e.g. ('7',) (first in "
        "train/c.csv), (None,) (first in train/c.csv); UniqueKey requires each key once "
        "across the 1 matching files",
        "train/c.csv: column 'id' has 2 nulls in 4 rows; NotNull requires none",
    ]


def test_tabular_rules_report_unreadable_files_and_no_matching_file(dataset: Path) -> None:
    write(dataset, "train/broken.csv", "id,age\n1,2,3\n")
    files, stats = entries(dataset), all_stats(dataset)
    assert "error" in stats["train/broken.csv"]
    found = check_rules(
        [NotNull(columns=["id"], glob="train/*.csv"), RequiredColumns(columns=["id"], glob="x/**")],
        files,
        stats,
        opener(dataset),
    )
    assert [(v.path, v.message.split(";")[0]) for v in found] == [
        (
            "train/broken.csv",
            f"train/broken.csv: could not be read ({stats['train/broken.csv']['error']})",
        ),
        (None, "no tabular file (.csv, .tsv, .parquet, .pq) matches 'x/**'"),
    ]
    assert "fix the file or leave it out with the rule's glob" in found[0].message


def test_stats_not_given_are_read_through_open_file(dataset: Path) -> None:
    opened: list[str] = []

    def open_file(rel: str) -> IO[bytes]:
        opened.append(rel)
        return (dataset / rel).open("rb")

    given = {"train/a.csv": all_stats(dataset)["train/a.csv"]}
    rules = [NotNull(columns=["name"]), RequiredColumns(columns=["name"])]
    found = check_rules(rules, entries(dataset), given, open_file)
    assert [v.path for v in found] == ["train/a.csv"]
    assert opened == ["train/part/b.csv"]  # once, for both rules; README.md never


def test_parse_rules_from_models_dicts_rule_sets_and_yaml() -> None:
    rule = NotNull(columns=["id"])
    as_dicts = [{"kind": "NotNull", "columns": ["id"]}, {"kind": "FileCount", "min": 1}]
    expected = [rule, FileCount(min=1)]
    assert parse_rules(rule) == [rule]
    assert parse_rules(as_dicts) == expected
    assert parse_rules({"rules": as_dicts}) == expected
    assert parse_rules(as_dicts[0]) == [rule]
    assert parse_rules(RuleSet(rules=expected)) == expected
    assert parse_rules(None) == []
    yaml_text = "rules:\n  - {kind: NotNull, columns: [id]}\n  - kind: FileCount\n    min: 1\n"
    assert RuleSet.from_yaml(yaml_text).rules == expected
    assert RuleSet.from_yaml("- {kind: NotNull, columns: [id]}\n").rules == [rule]
    assert RuleSet.model_validate_json(RuleSet(rules=expected).model_dump_json()).rules == expected


def test_parse_rules_errors_name_the_bad_kind_field_or_value() -> None:
    with pytest.raises(ValidationError) as err:
        parse_rules([{"kind": "NotNul", "columns": ["id"]}])
    assert "'NotNul'" in str(err.value) and "'NotNull'" in str(err.value)
    with pytest.raises(ValidationError, match="colums"):
        parse_rules([{"kind": "NotNull", "colums": ["id"]}])
    with pytest.raises(ValidationError, match="min=3 is above max=1"):
        parse_rules([{"kind": "FileCount", "min": 3, "max": 1}])
    with pytest.raises(ValidationError, match="ValueRange needs min, max or both"):
        ValueRange(column="age")
    with pytest.raises(InvalidInput, match="rules=42 is not a rule"):
        parse_rules(42)  # type: ignore[arg-type]


def test_validation_failed_shows_fifty_then_counts_and_pickles() -> None:
    found = [Violation("NotNull(columns=['id'])", f"f{i}.csv", f"f{i}.csv: bad") for i in range(53)]
    err = ValidationFailed(found)
    lines = str(err).splitlines()
    assert lines[0] == "the version breaks 53 rules:"
    assert lines[50].startswith("  - f49.csv: bad") and lines[51] == "  ... and 3 more"
    assert "f50.csv" not in str(err)
    again = pickle.loads(pickle.dumps(err))
    assert again.violations == found and str(again) == str(err)
