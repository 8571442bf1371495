"""Differential test: the same runs in MLflow's own SQLAlchemy store and in ours, searched with
the same filters and orders (MLflow's test cases and what users type); the run names and their
order must be equal. What we deliberately add beyond MLflow is listed apart, with its results.
"""

from __future__ import annotations

import getpass
import math
from collections.abc import Iterator
from typing import Any

import pytest

from prefect_mlops import InvalidFilter, TrackingClient

pytest.importorskip("mlflow.store.tracking.sqlalchemy_store")

from tests.tracking.search.parity_stores import MlflowSide, OurSide


@pytest.fixture(scope="module")
def mlflow_side(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowSide]:
    side = MlflowSide(tmp_path_factory.mktemp("mlflow"))
    yield side
    side.store.engine.dispose()


@pytest.fixture
def ours(client: TrackingClient) -> OurSide:
    return OurSide(client)


# (filter, order_by, experiments, view): MLflow's own cases and what users type
FILTERS = [
    "",
    "metrics.acc > 0.8",
    "metric.acc >= 0.9",
    "metrics.acc = 0.7",
    "metrics.acc != 0.7",
    "metrics.acc < 1",
    "metrics.acc>=0.9",
    "metrics.loss > 0",
    "metrics.loss < 0",
    "metrics.loss != 0.3",
    "metrics.loss > 1e300",
    "metrics.loss > -1",
    "metrics.`acc` > 0.5",
    'metrics."acc" > 0.5',
    "`metric`.acc > 0.5",
    "`metrics`.acc > 0.5",
    "params.opt = 'adam'",
    'params.opt = "adam"',
    "params.opt != 'adam'",
    "params.opt LIKE 'a%'",
    "params.opt ILIKE 'a%'",
    "params.model LIKE '%Net'",
    "params.model ILIKE '%net'",
    "`params`.opt = 'adam'",
    "param.lr = '0.01'",
    "parameter.lr != '0.01'",
    'params."lr" = "0.1"',
    "params.lr IS NULL",
    "params.lr IS NOT NULL",
    "tags.team = 'cv'",
    "tags.team != 'cv'",
    "`tags`.team = 'cv'",
    "tag.team LIKE 'c%'",
    "tags.note IS NULL",
    "tags.note IS NOT NULL",
    "tags.team IS NULL AND params.opt = 'adam'",
    "tags.mlflow.runName = 'alpha'",
    "tags.`mlflow.runName` LIKE '%a%'",
    'tags."mlflow.runName" = "beta run"',
    "attributes.status = 'FINISHED'",
    "attribute.status != 'FINISHED'",
    "run.status = 'RUNNING'",
    "attr.status = 'FAILED'",
    "status = 'FAILED'",
    "attributes.run_name = 'alpha'",
    "run_name = 'beta run'",
    "attributes.run_name LIKE '%a%'",
    "attributes.run_name ILIKE 'alpha%'",
    "attributes.run_name != 'alpha'",
    "attributes.`Run name` = 'alpha'",
    "`Run name` = 'alpha'",
    "`Run Name` LIKE '%eta%'",
    "attributes.`run name` = 'alpha'",
    'attributes.run_name = "it\'s gamma"',
    "attributes.run_name = 'delta \"q\"'",
    "attributes.start_time >= 3000",
    "start_time > 2000",
    "attributes.created < 3000",
    "Created >= 5000",
    "created = 1000",
    "attributes.end_time > 5000",
    "end_time <= 6000",
    "attributes.user_id = '" + getpass.getuser() + "'",
    "user_id != 'nobody'",
    "attributes.run_id = '{alpha}'",
    "run_id IN ('{alpha}', '{beta run}')",
    "attributes.run_id NOT IN ('{alpha}')",
    "metrics.acc > 0.5 AND params.opt = 'adam' AND tags.team = 'cv'",
    "metrics.acc >= 0.7 and attributes.status = 'FINISHED'",
    "metrics.acc != 0.9 AND metrics.loss != 0.3",
]
ORDERS: list[list[str] | None] = [
    None,
    ["metrics.acc DESC"],
    ["metrics.acc"],
    ["metrics.acc ASC"],
    ["metrics.loss DESC"],
    ["metrics.loss asc"],
    ["metrics.`acc` DESC"],
    ["params.opt"],
    ["params.opt DESC", "metrics.acc DESC"],
    ["tags.team", "metrics.loss DESC"],
    ["tags.team DESC", "metrics.acc"],
    ["params.lr DESC"],
    ["attributes.start_time"],
    ["start_time DESC"],
    ["run_name"],
    ["attributes.run_name DESC"],
    ["end_time"],
    ["attributes.end_time DESC"],
    ["Created"],
    ["created DESC"],
    ["status", "run_name DESC"],
    ["tags.`mlflow.runName`"],
]
CASES: list[tuple[str, list[str] | None, str, str]] = [
    *[(f, None, "a", "active") for f in FILTERS],
    *[("", o, "a", "active") for o in ORDERS],
    ("metrics.acc != 0.7", ["metrics.acc DESC"], "a", "active"),
    ("params.opt = 'adam'", ["metrics.acc ASC"], "ab", "active"),
    ("metrics.acc > 0", ["params.opt", "metrics.loss"], "a", "active"),
    ("", ["metrics.acc DESC"], "ab", "all"),
    ("", None, "a", "deleted"),
    ("metrics.acc > 0.9", None, "a", "all"),
]


def test_same_runs_in_the_same_order_as_mlflow(mlflow_side: MlflowSide, ours: OurSide) -> None:
    def outcome(side: MlflowSide | OurSide, case: tuple[Any, ...]) -> list[str] | str:
        try:
            return side.search(*case)
        except Exception as exc:  # a refusal is an outcome too, listed with the others
            return f"refused: {type(exc).__name__}"

    differences = []
    for case in CASES:
        theirs, mine = outcome(mlflow_side, case), outcome(ours, case)
        if mine != theirs:
            differences.append((*case, theirs, mine))
    assert differences == []


@pytest.mark.parametrize("order_by", [o for o in ORDERS if o])
def test_pages_walk_mlflow_order(
    mlflow_side: MlflowSide, ours: OurSide, order_by: list[str]
) -> None:
    seen: list[str] = []
    token = None
    while True:
        page = ours.client.search_runs(
            [ours.experiments["a"]], order_by=order_by, max_results=2, page_token=token
        )
        seen += [r.info.run_name for r in page]
        token = page.token
        if token is None:
            break
    assert seen == mlflow_side.search("", order_by, "a", "active")


def test_max_results_none_returns_every_run(ours: OurSide) -> None:
    everything = ours.search("", max_results=None)
    assert len(everything) == 7
    assert everything == ours.search("", max_results=1000)


def test_run_name_tag_follows_a_rename(ours: OurSide) -> None:
    client = ours.client
    run = client.create_run(ours.experiments["a"], tags={"mlflow.runName": "from-tag"})
    assert run.info.run_name == "from-tag"  # what the stock client sends
    client.update_run(run.info.run_id, run_name="renamed")
    assert client.get_run(run.info.run_id).data.tags["mlflow.runName"] == "renamed"
    assert ours.search("tags.mlflow.runName = 'renamed'") == ["renamed"]
    assert ours.search("attributes.run_name = 'renamed'") == ["renamed"]
    ours.client.update_run(ours.ids["alpha"], run_name="alpha 2")
    assert ours.search("tags.`mlflow.runName` = 'alpha 2'") == ["alpha 2"]


# Beyond MLflow, on purpose (MLflow refuses each of these filters): filter -> our runs
EXTENSIONS = [
    ("params.opt = 'adam' OR tags.team = 'nlp'", ["it's gamma", "beta run", "alpha"]),
    ("NOT params.opt = 'adam'", ["Alpha-upper", "zeta-nan", "epsilon", 'delta "q"', "beta run"]),
    (
        "(metrics.acc > 0.8 OR metrics.loss < 0) AND attributes.status != 'RUNNING'",
        ["Alpha-upper", 'delta "q"', "alpha"],
    ),
    ("params.lr < 0.01", ["zeta-nan", "it's gamma"]),  # numeric params
    ("params.lr >= '0.01'", ["beta run", "alpha"]),
    ("metrics.acc IS NULL", ["epsilon"]),  # a NaN metric is present
    ("metrics.loss IS NOT NULL", ["zeta-nan", 'delta "q"', "beta run", "alpha"]),
    ("attributes.status IN ('FAILED', 'RUNNING')", ['delta "q"', "it's gamma"]),
    ("attributes.end_time IS NULL", ["it's gamma"]),
    ("attributes.duration > 3000", ['delta "q"', "alpha"]),
    ("params.opt IN ('adam', 'Adam')", ['delta "q"', "it's gamma", "alpha"]),
    ("tags.team NOT LIKE 'c%'", ["beta run"]),
    ("attributes.run_name = 'it''s gamma'", ["it's gamma"]),  # SQL's doubled quote
    ("attributes.run_name = 'it\\'s gamma'", ["it's gamma"]),
]


@pytest.mark.parametrize(("filter_string", "expected"), EXTENSIONS, ids=[e[0] for e in EXTENSIONS])
def test_documented_extensions(ours: OurSide, filter_string: str, expected: list[str]) -> None:
    assert ours.search(filter_string) == expected


def test_full_text_is_an_extension(ours: OurSide) -> None:
    assert ours.search("", query="gamma") == ["it's gamma"]


# Refused by both, as MLflow refuses them (ours with a caret under the operator or value)
REFUSED = [
    ("params.opt > 'a'", 11),
    ("tags.team >= 'c'", 10),
    ("metrics.acc = 'x'", 14),
    ("params.lr = 5", 12),
    ("acc > 1", 0),
    ("metrics.acc >", 13),
    ("attributes.colour = 'x'", 0),
    ("metrics.acc LIKE 1", 12),
]


@pytest.mark.parametrize(("filter_string", "position"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_as_mlflow_refuses(
    mlflow_side: MlflowSide, ours: OurSide, filter_string: str, position: int
) -> None:
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException):
        mlflow_side.search(filter_string, None, "a", "active")
    with pytest.raises(InvalidFilter) as err:
        ours.search(filter_string)
    assert err.value.position == position


def test_nan_is_unequal_to_every_number_but_not_greater_or_smaller(ours: OurSide) -> None:
    nan_runs = {"it's gamma", "zeta-nan"}
    assert nan_runs <= set(ours.search("metrics.acc != 12345"))
    for op in ("=", "<", "<=", ">", ">="):
        assert not nan_runs & set(ours.search(f"metrics.acc {op} 0.5")), op
    assert math.isnan(ours.client.get_run(ours.ids["zeta-nan"]).data.metrics["acc"])
