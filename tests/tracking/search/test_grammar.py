"""Conformance of the filter grammar: what parses to what, and where errors point."""

from __future__ import annotations

import pytest

from prefect_mlops import InvalidFilter, InvalidInput
from prefect_mlops.tracking.search.grammar import (
    And,
    Comparison,
    Not,
    Or,
    parse_filter,
    parse_order_by,
)
from prefect_mlops.tracking.store.sql.filters import BARE_ATTRIBUTES, FilterCompiler


def shape(node: object) -> object:
    """A compact, comparable form of a parse tree."""
    if isinstance(node, Comparison):
        return (f"{node.ident.entity}.{node.ident.key}", node.op, node.value)
    if isinstance(node, And):
        return ("AND", *[shape(i) for i in node.items])
    if isinstance(node, Or):
        return ("OR", *[shape(i) for i in node.items])
    if isinstance(node, Not):
        return ("NOT", shape(node.item))
    return node


PARSES = [
    # MLflow's forms
    ("metrics.acc > 0.9", ("metrics.acc", ">", 0.9)),
    ("metric.acc >= 1", ("metrics.acc", ">=", 1.0)),
    ("metrics.loss < -1e-3", ("metrics.loss", "<", -0.001)),
    ("metrics.loss <= .5", ("metrics.loss", "<=", 0.5)),
    ("metrics.acc = 1", ("metrics.acc", "=", 1.0)),
    ("metrics.acc != 1", ("metrics.acc", "!=", 1.0)),
    ("metrics.acc <> 1", ("metrics.acc", "!=", 1.0)),
    ("metrics.`val acc` > 0", ("metrics.val acc", ">", 0.0)),
    ('metrics."val-acc" > 0', ("metrics.val-acc", ">", 0.0)),
    ("metrics.val/acc > 0", ("metrics.val/acc", ">", 0.0)),
    ("params.lr = '0.01'", ("params.lr", "=", "0.01")),
    ('params.lr = "0.01"', ("params.lr", "=", "0.01")),
    ("param.opt != 'sgd'", ("params.opt", "!=", "sgd")),
    ("parameter.opt = 'adam'", ("params.opt", "=", "adam")),
    ("parameters.opt = 'adam'", ("params.opt", "=", "adam")),
    ("params.\"a.b\" = 'x'", ("params.a.b", "=", "x")),
    ("params.a.b = 'x'", ("params.a.b", "=", "x")),
    ("params.model LIKE 'res%'", ("params.model", "LIKE", "res%")),
    ("params.model ILIKE 'RES%'", ("params.model", "ILIKE", "RES%")),
    ("tags.team = 'cv'", ("tags.team", "=", "cv")),
    ("tag.`mlflow.user` = 'me'", ("tags.mlflow.user", "=", "me")),
    ("tags.note IS NULL", ("tags.note", "IS NULL", None)),
    ("tags.note is not null", ("tags.note", "IS NOT NULL", None)),
    ("attributes.status = 'FINISHED'", ("attributes.status", "=", "FINISHED")),
    ("attribute.run_name LIKE 'x%'", ("attributes.run_name", "LIKE", "x%")),
    ("attr.start_time > 1000", ("attributes.start_time", ">", 1000.0)),
    ("run.run_id IN ('a', 'b')", ("attributes.run_id", "IN", ("a", "b"))),
    ("attributes.run_id NOT IN ('a')", ("attributes.run_id", "NOT IN", ("a",))),
    ("datasets.name = 'train'", ("datasets.name", "=", "train")),
    ("dataset.digest IN ('d1', 'd2')", ("datasets.digest", "IN", ("d1", "d2"))),
    ("params.q = 'it''s'", ("params.q", "=", "it's")),
    ("params.q = 'it\\'s'", ("params.q", "=", "it's")),
    ("params.q = 'ünï €'", ("params.q", "=", "ünï €")),
    ("params.a = 'x' and params.b = 'y'", ("AND", ("params.a", "=", "x"), ("params.b", "=", "y"))),
    ("metrics.acc>0.9AND params.a='x'", ("AND", ("metrics.acc", ">", 0.9), ("params.a", "=", "x"))),
    # beyond MLflow
    (
        "params.a = 'x' OR params.b = 'y'",
        ("OR", ("params.a", "=", "x"), ("params.b", "=", "y")),
    ),
    (
        "metrics.a > 1 AND (params.b = 'x' OR NOT tags.c = 'y')",
        (
            "AND",
            ("metrics.a", ">", 1.0),
            ("OR", ("params.b", "=", "x"), ("NOT", ("tags.c", "=", "y"))),
        ),
    ),
    (
        "metrics.a > 1 OR metrics.b > 1 AND metrics.c > 1",
        ("OR", ("metrics.a", ">", 1.0), ("AND", ("metrics.b", ">", 1.0), ("metrics.c", ">", 1.0))),
    ),
    ("NOT NOT metrics.a > 1", ("NOT", ("NOT", ("metrics.a", ">", 1.0)))),
    ("params.lr < 0.01", ("params.lr", "<", 0.01)),
    ("tags.t NOT LIKE '%x'", ("tags.t", "NOT LIKE", "%x")),
    ("attributes.duration > 60000", ("attributes.duration", ">", 60000.0)),
    ("attributes.flow_name = 'train'", ("attributes.flow_name", "=", "train")),
    ("   ", None),
]


@pytest.mark.parametrize(("text", "expected"), PARSES, ids=[p[0] for p in PARSES])
def test_parses(text: str, expected: object) -> None:
    node = parse_filter(text)
    assert shape(node) == expected
    if node is not None:
        FilterCompiler(text).compile(node)  # also means something


ERRORS = [
    # (filter, position of the caret, words the message must contain)
    ("metrics.acc >", 13, "expected a value"),
    ("metrics.acc > 1 AND", 19, "expected a comparison"),
    ("metrics.acc", 11, "comparison operator"),
    ("foo.acc > 1", 0, "unknown entity 'foo'"),
    ("acc > 1", 0, "unexpected word 'acc'"),
    ("metrics.acc ~ 1", 12, "unexpected character '~'"),
    ("params.a = 'unterminated", 11, "unterminated string"),
    ("metrics.`unterminated > 1", 8, "unterminated key"),
    ("(metrics.a > 1", 14, "expected ')'"),
    ("metrics.a > 1)", 13, "expected AND, OR"),
    ("metrics.a > 1 params.b = 'x'", 14, "expected AND, OR"),
    ("params.a IN 'x'", 12, "expected '('"),
    ("params.a IN ('x' 'y')", 17, "expected ',' or ')'"),
    ("params.a IS 'x'", 12, "expected NULL"),
    ("params.a NOT = 'x'", 13, "expected LIKE, ILIKE or IN"),
    ("metrics. > 1", 8, "expected a key"),
    ("metrics.acc = 'x'", 14, "numeric value for metric 'acc'"),
    ("metrics.acc LIKE 1", 12, "cannot be compared with LIKE"),
    ("params.lr = 5", 12, "expected a quoted string value for param 'lr'"),
    ("tags.t = 5", 9, "quoted string value for tag 't'"),
    ("attributes.colour = 'red'", 0, "unknown attribute 'colour'"),
    ("attributes.start_time = 'yesterday'", 24, "expected a number"),
    ("attributes.status > 'A'", 18, "cannot be compared with >"),
    ("datasets.size = 'x'", 0, "unknown dataset field 'size'"),
    ("metrics.acc ! 1", 12, "expected '!='"),
]


@pytest.mark.parametrize(("text", "position", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_point_at_the_problem(text: str, position: int, message: str) -> None:
    with pytest.raises(InvalidFilter) as err:
        node = parse_filter(text)
        assert node is not None
        FilterCompiler(text).compile(node)
    assert err.value.position == position
    assert message in str(err.value)
    lines = str(err.value).splitlines()
    assert lines[1] == f"  {text}"
    assert lines[2] == "  " + " " * position + "^"
    assert isinstance(err.value, InvalidInput)


def test_unknown_attribute_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidFilter) as err:
        FilterCompiler("attributes.bogus = 'x'").compile(parse_filter("attributes.bogus = 'x'"))  # type: ignore[arg-type]
    for name in ("run_id", "run_name", "status", "start_time", "end_time", "duration", "user"):
        assert name in str(err.value)


def test_order_by_clauses() -> None:
    keys = parse_order_by(["metrics.`val acc` DESC", "params.lr", "attributes.start_time asc"])
    assert [(k.ident.entity, k.ident.key, k.descending) for k in keys] == [
        ("metrics", "val acc", True),
        ("params", "lr", False),
        ("attributes", "start_time", False),
    ]
    with pytest.raises(InvalidFilter, match="one identifier"):
        parse_order_by(["metrics.a DESC extra"])


MLFLOW_FORMS = [
    # MLflow's backtick-quoted entities, bare attributes and attribute aliases
    ("`metric`.a >= 0.1", ("metrics.a", ">=", 0.1)),
    ("`tags`.source_name = 'a notebook'", ("tags.source_name", "=", "a notebook")),
    ("`attribute`.status = 'FAILED'", ("attributes.status", "=", "FAILED")),
    ("status = 'FINISHED'", ("attributes.status", "=", "FINISHED")),
    ("run_name = 'x'", ("attributes.run_name", "=", "x")),
    ("`Run name` = 'x'", ("attributes.Run name", "=", "x")),
    ("attributes.`Run Name` LIKE 'x%'", ("attributes.Run Name", "LIKE", "x%")),
    ("Created > 5", ("attributes.Created", ">", 5.0)),
    (
        "start_time > 5 AND metrics.a < 1",
        ("AND", ("attributes.start_time", ">", 5.0), ("metrics.a", "<", 1.0)),
    ),
]


@pytest.mark.parametrize(("text", "expected"), MLFLOW_FORMS, ids=[p[0] for p in MLFLOW_FORMS])
def test_mlflow_forms_parse_for_runs(text: str, expected: object) -> None:
    node = parse_filter(text, BARE_ATTRIBUTES)
    assert shape(node) == expected
    assert node is not None
    FilterCompiler(text).compile(node)


def test_bare_order_by_names_attributes() -> None:
    keys = parse_order_by(["start_time DESC", "run_name", "`metrics`.acc"], BARE_ATTRIBUTES)
    assert [(k.ident.entity, k.ident.key, k.descending) for k in keys] == [
        ("attributes", "start_time", True),
        ("attributes", "run_name", False),
        ("metrics", "acc", False),
    ]


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("params.x > 'a'", 9, "only against a number"),
        ("tags.x >= 'a'", 7, "tags compare with"),
        ("tags.x < 5", 7, "tags compare with"),
        ("`nope` = 'x'", 0, "a backtick-quoted name"),
        ("`thing`.x = 'x'", 0, "unknown entity 'thing'"),
    ],
)
def test_refused_like_mlflow(text: str, position: int, message: str) -> None:
    with pytest.raises(InvalidFilter) as err:
        node = parse_filter(text, BARE_ATTRIBUTES)
        assert node is not None
        FilterCompiler(text).compile(node)
    assert err.value.position == position
    assert message in str(err.value)
