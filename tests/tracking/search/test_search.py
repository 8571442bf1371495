"""Searching a store seeded with known runs: exact ids, exact order, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from prefect_mlops import (
    AlreadyExists,
    BulkRun,
    DatasetInput,
    InvalidFilter,
    InvalidInput,
    NotFound,
    RunStatus,
    TrackingClient,
)

NAN = float("nan")
SPECS = {
    "r1": BulkRun(
        "resnet18-baseline",
        params={"opt": "adam", "lr": "0.01", "model": "resnet18"},
        tags={"team": "cv", "note": "baseline run"},
        metrics={"acc": [(0, 0.5), (1, 0.8)], "loss": 0.5},
        start_time=1000,
        end_time=61_000,
    ),
    "r2": BulkRun(
        "resnet50-augment",
        params={"opt": "sgd", "lr": "0.1", "model": "resnet50"},
        tags={"team": "cv", "note": "augment flips"},
        metrics={"acc": 0.9, "loss": 0.3},
        start_time=2000,
        end_time=5000,
    ),
    "r3": BulkRun(
        "vit-augment",
        params={"opt": "adam", "lr": "0.001", "model": "vit"},
        tags={"team": "nlp", "note": "augment mixup"},
        metrics={"acc": 0.9, "loss": 0.2},
        start_time=3000,
        status=RunStatus.FAILED,
    ),
    "r4": BulkRun(
        "vit-nan",
        params={"opt": "adam", "lr": "1e-4", "model": "vit"},
        tags={"team": "nlp"},
        metrics={"acc": NAN},
        start_time=4000,
    ),
    "r5": BulkRun(
        "no-metrics",
        params={"opt": "rmsprop", "lr": "abc"},
        start_time=5000,
        status=RunStatus.RUNNING,
    ),
    "r6": BulkRun(
        "Resnet-upper",
        params={"opt": "ADAM", "model": "ResNet"},
        tags={"team": "cv"},
        metrics={"acc": 0.7},
        start_time=6000,
    ),
}


@dataclass
class Seeded:
    client: TrackingClient
    experiment_id: str
    ids: dict[str, str]
    names: dict[str, str]

    def search(self, filter_string: str = "", **kw: object) -> list[str]:
        runs = self.client.search_runs([self.experiment_id], filter_string, **kw)  # type: ignore[arg-type]
        return [self.names[r.info.run_id] for r in runs]


@pytest.fixture
def seeded(client: TrackingClient) -> Seeded:
    exp = client.create_experiment("search")
    ids = client.create_runs_bulk(exp, SPECS.values())
    by_label = dict(zip(SPECS, ids, strict=True))
    return Seeded(client, exp, by_label, {v: k for k, v in by_label.items()})


BEHAVIOUR = [
    ("", {}, ["r6", "r5", "r4", "r3", "r2", "r1"]),
    ("metrics.acc > 0.85", {}, ["r3", "r2"]),
    ("", {"order_by": ["metrics.acc DESC"]}, ["r3", "r2", "r1", "r6", "r4", "r5"]),
    ("", {"order_by": ["metrics.acc ASC"]}, ["r6", "r1", "r3", "r2", "r4", "r5"]),
    (
        "",
        {"order_by": ["params.opt", "attributes.start_time ASC"]},
        ["r6", "r1", "r3", "r4", "r5", "r2"],
    ),
    ("params.opt = 'adam'", {}, ["r4", "r3", "r1"]),
    ("params.opt LIKE 'ad%'", {}, ["r4", "r3", "r1"]),
    ("params.opt ILIKE 'ad%'", {}, ["r6", "r4", "r3", "r1"]),
    ("params.opt NOT LIKE 'ad%'", {}, ["r6", "r5", "r2"]),
    ("params.lr < 0.01", {}, ["r4", "r3"]),
    ("params.lr >= '0.01'", {}, ["r2", "r1"]),
    ("params.lr = '0.01'", {}, ["r1"]),
    ("params.opt = 'adam' OR tags.team = 'cv'", {}, ["r6", "r4", "r3", "r2", "r1"]),
    ("NOT params.opt = 'adam'", {}, ["r6", "r5", "r2"]),
    (
        "(params.model = 'vit' OR params.model = 'resnet50') AND metrics.acc >= 0.9",
        {},
        ["r3", "r2"],
    ),
    ("tags.team IS NULL", {}, ["r5"]),
    ("tags.note IS NOT NULL", {}, ["r3", "r2", "r1"]),
    ("metrics.loss IS NULL", {}, ["r6", "r5", "r4"]),
    ("attributes.status = 'FAILED'", {}, ["r3"]),
    ("attributes.status IN ('FAILED', 'RUNNING')", {}, ["r5", "r3"]),
    ("attributes.status NOT IN ('FINISHED')", {}, ["r5", "r3"]),
    ("attributes.run_name LIKE '%augment%'", {}, ["r3", "r2"]),
    ("attributes.run_name ILIKE 'resnet%'", {}, ["r6", "r2", "r1"]),
    ("attributes.start_time >= 4000", {}, ["r6", "r5", "r4"]),
    ("attributes.duration > 10000", {}, ["r1"]),
    ("attributes.end_time IS NULL", {}, ["r6", "r5", "r4", "r3"]),
    ("metrics.acc != 0.9", {}, ["r6", "r4", "r1"]),
    ("metrics.acc = 0.8 AND metrics.loss < 1", {}, ["r1"]),
    ("params.model = 'vit'", {"order_by": ["metrics.acc DESC"]}, ["r3", "r4"]),
    ("", {"order_by": ["attributes.run_name"]}, ["r6", "r5", "r1", "r2", "r3", "r4"]),
]


@pytest.mark.parametrize(
    ("filter_string", "kw", "expected"), BEHAVIOUR, ids=[b[0] or str(b[1]) for b in BEHAVIOUR]
)
def test_filters_return_exact_runs_in_order(
    seeded: Seeded, filter_string: str, kw: dict[str, object], expected: list[str]
) -> None:
    assert seeded.search(filter_string, **kw) == expected


def test_run_id_filters(seeded: Seeded) -> None:
    r1, r2 = seeded.ids["r1"], seeded.ids["r2"]
    assert seeded.search(f"attributes.run_id IN ('{r1}', '{r2}')") == ["r2", "r1"]
    assert seeded.search(f"attributes.run_id = '{r1}'") == ["r1"]
    assert len(seeded.search(f"attributes.run_id NOT IN ('{r1}')")) == 5


@pytest.mark.parametrize(
    "attempt",
    [
        "params.opt = 'adam'' OR 1=1 --'",
        "params.opt = 'x'' OR ''1''=''1'",
        "params.opt = '%'",
        "params.opt = '_dam'",
        "params.opt = 'adam\\\\'",
        "params.opt = '\"; DROP TABLE runs; --'",
        "tags.team = 'cv'' UNION SELECT run_id FROM runs --'",
        "params.opt = 'ädäm'",
        "attributes.run_name = '%'",
        "params.opt IN ('x'') OR (''1''=''1')",
    ],
)
def test_injection_attempts_are_literals(seeded: Seeded, attempt: str) -> None:
    assert seeded.search(attempt) == []
    assert seeded.client.count_runs([seeded.experiment_id]) == 6  # and nothing was harmed


def test_like_wildcards_only_in_like(seeded: Seeded) -> None:
    assert seeded.search("params.opt LIKE '_dam'") == ["r4", "r3", "r1"]
    assert seeded.search("params.opt LIKE '%'") == ["r6", "r5", "r4", "r3", "r2", "r1"]


def test_full_text_search(seeded: Seeded) -> None:
    assert seeded.search(query="augment") == ["r3", "r2"]
    assert seeded.search(query="resnet augment") == ["r2"]
    assert seeded.search(query="MIXUP") == ["r3"]
    assert seeded.search(query="augm*") == ["r3", "r2"]
    assert seeded.search("params.opt = 'adam'", query="augment") == ["r3"]
    assert seeded.search(query='"unbalanced quote') == []
    assert seeded.client.count_runs([seeded.experiment_id], query="augment") == 2
    # documents follow tag and name changes
    seeded.client.set_tag(seeded.ids["r4"], "note", "augment later")
    assert seeded.search(query="augment") == ["r4", "r3", "r2"]
    seeded.client.delete_tag(seeded.ids["r4"], "note")
    seeded.client.update_run(seeded.ids["r5"], run_name="renamed-augment")
    assert seeded.search(query="augment") == ["r5", "r3", "r2"]


def test_keyset_pages_are_stable_under_inserts(seeded: Seeded) -> None:
    client, exp = seeded.client, seeded.experiment_id
    order = ["metrics.acc DESC"]
    first = client.search_runs([exp], order_by=order, max_results=2)
    assert [seeded.names[r.info.run_id] for r in first] == ["r3", "r2"]
    assert first.token is not None
    # a new best run arrives between pages: it must not shift what comes next
    newcomer = client.create_run(exp, run_name="newcomer", start_time=9000).info.run_id
    client.log_metric(newcomer, "acc", 0.99)
    second = client.search_runs([exp], order_by=order, max_results=2, page_token=first.token)
    assert [seeded.names[r.info.run_id] for r in second] == ["r1", "r6"]
    third = client.search_runs([exp], order_by=order, max_results=2, page_token=second.token)
    assert [seeded.names[r.info.run_id] for r in third] == ["r4", "r5"]
    assert third.token is None
    with pytest.raises(InvalidInput, match="does not belong to this search"):
        client.search_runs([exp], "metrics.acc > 0", order_by=order, page_token=first.token)
    with pytest.raises(InvalidInput, match="does not belong"):
        client.search_runs([exp], page_token="garbage")


def test_walking_all_pages_returns_every_run_once(seeded: Seeded) -> None:
    seen: list[str] = []
    token = None
    while True:
        page = seeded.client.search_runs(
            [seeded.experiment_id], order_by=["params.lr DESC"], max_results=4, page_token=token
        )
        seen += [r.info.run_id for r in page]
        token = page.token
        if token is None:
            break
    assert sorted(seen) == sorted(seeded.ids.values())


def test_results_carry_params_latest_metrics_and_tags(seeded: Seeded) -> None:
    (run,) = seeded.client.search_runs(
        [seeded.experiment_id], "attributes.run_name = 'resnet18-baseline'"
    )
    assert run.data.params == {"opt": "adam", "lr": "0.01", "model": "resnet18"}
    assert run.data.metrics == {"acc": 0.8, "loss": 0.5}
    assert run.data.tags == {"team": "cv", "note": "baseline run"}
    (nan_run,) = seeded.client.search_runs(
        [seeded.experiment_id], "attributes.run_name = 'vit-nan'"
    )
    assert math.isnan(nan_run.data.metrics["acc"])


def test_count_runs(seeded: Seeded) -> None:
    client, exp = seeded.client, seeded.experiment_id
    assert client.count_runs([exp]) == 6
    assert client.count_runs([exp], "metrics.acc > 0.85") == 2
    assert client.count_runs(experiment_names=["missing"]) == 0


def test_aggregate_runs_by_param(seeded: Seeded) -> None:
    rows = seeded.client.aggregate_runs(
        "",
        [seeded.experiment_id],
        group_by=["params.opt"],
        metrics={"acc": ["mean", "max", "count", "std"], "loss": ["min"]},
    )
    by_opt = {r["params.opt"]: r for r in rows}
    assert set(by_opt) == {"ADAM", "adam", "rmsprop", "sgd"}
    adam = by_opt["adam"]
    assert adam["runs"] == 3
    assert adam["acc.mean"] == pytest.approx(0.85)  # NaN (r4) is not counted
    assert adam["acc.max"] == pytest.approx(0.9)
    assert adam["acc.count"] == 2
    assert adam["acc.std"] == pytest.approx(math.sqrt(0.005))
    assert adam["loss.min"] == pytest.approx(0.2)
    assert by_opt["rmsprop"]["acc.mean"] is None and by_opt["rmsprop"]["runs"] == 1
    two_keys = seeded.client.aggregate_runs(
        "metrics.acc > 0",
        [seeded.experiment_id],
        group_by=["tags.team", "attributes.status"],
        metrics={"acc": ["count"]},
    )
    assert [(r["tags.team"], r["attributes.status"], r["runs"]) for r in two_keys] == [
        ("cv", "FINISHED", 3),
        ("nlp", "FAILED", 1),
    ]
    with pytest.raises(InvalidInput, match="'median'"):
        seeded.client.aggregate_runs(metrics={"acc": ["median"]})
    with pytest.raises(InvalidFilter, match="grouped by params, tags or attributes"):
        seeded.client.aggregate_runs(group_by=["metrics.acc"])


def test_saved_searches(seeded: Seeded) -> None:
    client = seeded.client
    saved = client.save_search(
        "best", "metrics.acc > 0.85", ["metrics.acc DESC"], [seeded.experiment_id]
    )
    assert saved.order_by == ["metrics.acc DESC"]
    assert [seeded.names[r.info.run_id] for r in client.search_runs(saved="best")] == ["r3", "r2"]
    narrowed = client.search_runs(filter_string="params.opt = 'sgd'", saved="best")
    assert [seeded.names[r.info.run_id] for r in narrowed] == ["r2"]
    with pytest.raises(AlreadyExists, match="overwrite=True"):
        client.save_search("best", "metrics.acc > 0")
    client.save_search("best", "metrics.acc > 0.75", overwrite=True)
    assert client.get_saved_search("best").filter_string == "metrics.acc > 0.75"
    with pytest.raises(InvalidFilter):
        client.save_search("broken", "metrics.acc >")
    assert [s.name for s in client.list_saved_searches()] == ["best"]
    with pytest.raises(NotFound, match="'nope'"):
        client.search_runs(saved="nope")
    client.delete_saved_search("best")
    assert client.list_saved_searches() == []


def test_compare_runs(seeded: Seeded) -> None:
    comparison = seeded.client.compare_runs([seeded.ids["r1"], seeded.ids["r2"], seeded.ids["r5"]])
    assert comparison.params["opt"] == ["adam", "sgd", "rmsprop"]
    assert comparison.params["model"] == ["resnet18", "resnet50", None]
    assert comparison.differing_params == ["lr", "model", "opt"]
    acc = comparison.metrics["acc"]
    assert acc[0] is not None and (acc[0].last, acc[0].min, acc[0].max) == (0.8, 0.5, 0.8)
    assert acc[2] is None
    markdown = comparison.to_markdown(seeded.client)
    assert "| opt **≠** | adam | sgd | rmsprop |" in markdown
    assert markdown.count("data:image/svg+xml;base64,") == 2
    with pytest.raises(InvalidInput, match="2 to 20"):
        seeded.client.compare_runs([seeded.ids["r1"]])


def test_dataset_filters(seeded: Seeded) -> None:
    client = seeded.client
    client.set_terminated(seeded.ids["r5"], "RUNNING")
    client.log_inputs(seeded.ids["r5"], [DatasetInput("train-set", "abc123", "training")])
    assert seeded.search("datasets.name = 'train-set'") == ["r5"]
    assert seeded.search("datasets.context = 'training' AND datasets.digest IN ('abc123')") == [
        "r5"
    ]
    assert seeded.search("datasets.name LIKE 'eval%'") == []
    assert client.get_inputs(seeded.ids["r5"]) == [DatasetInput("train-set", "abc123", "training")]


def test_views_pandas_and_limits(seeded: Seeded) -> None:
    client, exp = seeded.client, seeded.experiment_id
    client.delete_run(seeded.ids["r6"])
    assert "r6" not in seeded.search()
    assert seeded.search(run_view_type="deleted") == ["r6"]
    assert len(seeded.search(run_view_type="all")) == 6
    frame = client.search_runs([exp], "metrics.acc > 0.85", output="pandas")
    assert list(frame["run_name"]) == ["vit-augment", "resnet50-augment"]
    assert list(frame["metrics.acc"]) == [0.9, 0.9]
    assert list(frame["params.opt"]) == ["adam", "sgd"]
    with pytest.raises(InvalidInput, match="1..50000"):
        client.search_runs(max_results=50_001)
    assert client.search_runs(experiment_names=["does-not-exist"]) == []


def test_empty_store(client: TrackingClient) -> None:
    assert client.search_runs(filter_string="metrics.acc > 0") == []
    assert client.count_runs() == 0
    assert client.aggregate_runs(group_by=["params.x"], metrics={"m": ["mean"]}) == []


def test_search_experiments_by_name_and_tags(client: TrackingClient) -> None:
    client.create_experiment("vision-a", tags={"team": "cv"})
    client.create_experiment("vision-b", tags={"team": "research"})
    client.create_experiment("text", tags={"team": "cv"})

    def names(filter_string: str) -> list[str]:
        return sorted(e.name for e in client.search_experiments(filter_string=filter_string))

    assert names("name LIKE 'vision-%'") == ["vision-a", "vision-b"]
    assert names("attributes.name LIKE 'vision-%' AND tags.team = 'cv'") == ["vision-a"]
    assert names("tags.team = 'cv' OR name = 'vision-b'") == ["text", "vision-a", "vision-b"]
    assert names("tags.missing IS NULL") == ["text", "vision-a", "vision-b"]
    with pytest.raises(InvalidFilter, match="attributes and tags"):
        client.search_experiments(filter_string="metrics.acc > 1")
