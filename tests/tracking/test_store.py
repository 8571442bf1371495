"""The tracking store and client against SQLite and PostgreSQL."""

from __future__ import annotations

import math

import pytest

from prefect_mlops import (
    AlreadyExists,
    Conflict,
    InvalidInput,
    Metric,
    NotFound,
    Param,
    RunStatus,
    RunTag,
    TrackingClient,
)


def new_run(client: TrackingClient, name: str = "r", **kw):  # type: ignore[no-untyped-def]
    exp = client.get_or_create_experiment("exp")
    return client.create_run(exp.experiment_id, run_name=name, **kw)


def test_experiments_create_get_search(client: TrackingClient) -> None:
    exp_id = client.create_experiment("vision", tags={"team": "cv"})
    assert len(exp_id) == 32
    exp = client.get_experiment(exp_id)
    assert (exp.name, exp.tags, exp.lifecycle_stage) == ("vision", {"team": "cv"}, "active")
    assert exp.artifact_location.endswith(f"/{exp_id}")
    assert client.get_experiment_by_name("vision") == exp
    assert client.get_experiment_by_name("nope") is None
    with pytest.raises(AlreadyExists, match="'vision' already exists"):
        client.create_experiment("vision")
    client.create_experiment("nlp")
    assert {e.name for e in client.search_experiments()} == {"vision", "nlp"}
    with pytest.raises(NotFound, match="deadbeef"):
        client.get_experiment("deadbeef")


def test_run_lifecycle_and_shape(client: TrackingClient) -> None:
    exp = client.get_or_create_experiment("exp")
    run = client.create_run(exp.experiment_id, run_name="first", tags={"k": "v"})
    info = run.info
    assert info.status is RunStatus.RUNNING and info.end_time is None
    assert info.experiment_id == exp.experiment_id and info.run_name == "first"
    assert info.artifact_uri.endswith(f"{exp.experiment_id}/{info.run_id}/artifacts")
    child = client.create_run(exp.experiment_id, parent_run_id=info.run_id)
    assert client.get_run(child.info.run_id).info.parent_run_id == info.run_id

    client.log_batch(
        info.run_id,
        metrics=[Metric("acc", 0.5, 1000, 1), Metric("acc", 0.7, 1001, 2)],
        params=[Param("lr", 0.01), Param("opt", "adam")],
        tags=[RunTag("stage", "dev")],
    )
    got = client.get_run(info.run_id)
    assert got.data.params == {"lr": "0.01", "opt": "adam"}
    assert got.data.metrics == {"acc": 0.7}
    assert got.data.tags == {"k": "v", "stage": "dev"}

    client.set_terminated(info.run_id, "FAILED", end_time=123)
    done = client.get_run(info.run_id).info
    assert (done.status, done.end_time) == (RunStatus.FAILED, 123)


def test_metric_history_order_and_latest(client: TrackingClient) -> None:
    run_id = new_run(client).info.run_id
    for step, value in [(2, 0.2), (0, 1.0), (1, 0.5), (2, 0.1)]:
        client.log_metric(
            run_id, "loss", value, timestamp=1000 + step * 10 + int(value * 10), step=step
        )
    history = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5), (2, 0.1), (2, 0.2)]
    assert all(m.key == "loss" for m in history)
    # latest = highest step, then latest timestamp: (2, 0.2) was logged at t=1022
    assert client.get_run(run_id).data.metrics["loss"] == 0.2
    (summary,) = client.get_metric_summaries(run_id)
    assert (summary.min, summary.max, summary.count, summary.step) == (0.1, 1.0, 4, 2)


def test_nan_and_infinities_round_trip(client: TrackingClient) -> None:
    run_id = new_run(client).info.run_id
    for i, value in enumerate([float("nan"), float("inf"), float("-inf"), 1.5]):
        client.log_metric(run_id, "odd", value, step=i)
    values = [m.value for m in client.get_metric_history(run_id, "odd")]
    assert math.isnan(values[0])
    assert values[1:] == [math.inf, -math.inf, 1.5]
    (summary,) = client.get_metric_summaries(run_id)
    assert (summary.min, summary.max) == (-math.inf, math.inf)
    client.log_metric(run_id, "only_nan", float("nan"))
    assert math.isnan(client.get_run(run_id).data.metrics["only_nan"])


@pytest.mark.parametrize("bad", ["0.5", None, [1], {"a": 1}, True])
def test_non_numeric_metric_value_names_the_key(client: TrackingClient, bad: object) -> None:
    run_id = new_run(client).info.run_id
    with pytest.raises(InvalidInput, match="'val/acc'"):
        client.log_metric(run_id, "val/acc", bad)  # type: ignore[arg-type]


def test_numpy_scalars_are_metrics(client: TrackingClient) -> None:
    import numpy as np

    run_id = new_run(client).info.run_id
    client.log_metric(run_id, "np", np.float32(0.25), step=np.int64(3))
    (m,) = client.get_metric_history(run_id, "np")
    assert (m.value, m.step) == (0.25, 3)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("a" * 251, "the limit is 250"),
        ("bad:key", "':'"),
        ("", "must not be empty"),
        ("semi;colon", "';'"),
    ],
)
def test_bad_keys_are_refused(client: TrackingClient, key: str, message: str) -> None:
    run_id = new_run(client).info.run_id
    with pytest.raises(InvalidInput, match=message):
        client.log_metric(run_id, key, 1.0)
    with pytest.raises(InvalidInput, match=message):
        client.log_param(run_id, key, 1)
    with pytest.raises(InvalidInput, match=message):
        client.set_tag(run_id, key, 1)


def test_allowed_key_characters(client: TrackingClient) -> None:
    run_id = new_run(client).info.run_id
    key = "Train-set/loss_v2.final " + "x" * 226
    assert len(key) == 250
    client.log_metric(run_id, key, 1.0)
    client.log_param(run_id, key, "v")
    assert client.get_run(run_id).data.params == {key: "v"}


def test_value_length_limits(client: TrackingClient) -> None:
    run_id = new_run(client).info.run_id
    client.log_param(run_id, "ok", "p" * 6000)
    with pytest.raises(InvalidInput, match="6001 characters; the limit is 6000"):
        client.log_param(run_id, "long", "p" * 6001)
    client.set_tag(run_id, "ok", "t" * 8000)
    with pytest.raises(InvalidInput, match="8001 characters; the limit is 8000"):
        client.set_tag(run_id, "long", "t" * 8001)
    assert "long" not in client.get_run(run_id).data.params


def test_param_relog(client: TrackingClient) -> None:
    run_id = new_run(client).info.run_id
    client.log_param(run_id, "lr", 0.1)
    client.log_param(run_id, "lr", 0.1)  # same value: no-op
    with pytest.raises(Conflict, match=r"'0\.1'.*'0\.2'"):
        client.log_param(run_id, "lr", 0.2)
    assert client.get_run(run_id).data.params == {"lr": "0.1"}


def test_tags_overwrite_and_delete(client: TrackingClient) -> None:
    run_id = new_run(client).info.run_id
    client.set_tag(run_id, "stage", "dev")
    client.set_tag(run_id, "stage", "prod")
    assert client.get_run(run_id).data.tags == {"stage": "prod"}
    client.delete_tag(run_id, "stage")
    assert client.get_run(run_id).data.tags == {}
    with pytest.raises(NotFound, match="'stage'"):
        client.delete_tag(run_id, "stage")


def test_logging_to_finished_or_deleted_run_is_refused(client: TrackingClient) -> None:
    finished = new_run(client, "done").info.run_id
    client.set_terminated(finished)
    other = TrackingClient()  # a fresh client does not know the run is writable
    for c in (client, other):
        with pytest.raises(InvalidInput, match="FINISHED"):
            c.log_metric(finished, "m", 1.0)
        with pytest.raises(InvalidInput, match="FINISHED"):
            c.log_param(finished, "p", 1)
    other.set_tag(finished, "verdict", "best")  # tags annotate finished runs
    assert client.get_run(finished).data.tags == {"verdict": "best"}
    deleted = new_run(client, "gone").info.run_id
    client.delete_run(deleted)
    with pytest.raises(InvalidInput, match="deleted"):
        client.set_tag(deleted, "t", 1)
    client.restore_run(deleted)
    client.set_tag(deleted, "t", 1)
    assert client.get_run(deleted).data.tags == {"t": "1"}


def test_unknown_run_id_is_not_found(client: TrackingClient) -> None:
    missing = "0" * 32
    with pytest.raises(NotFound, match=missing):
        client.log_metric(missing, "m", 1.0)
    with pytest.raises(NotFound, match=missing):
        client.get_run(missing)
    with pytest.raises(NotFound, match=missing):
        client.get_metric_history(missing, "m")


def test_search_runs_newest_first_and_view_types(client: TrackingClient) -> None:
    exp = client.get_or_create_experiment("exp")
    other = client.get_or_create_experiment("other")
    ids = [
        client.create_run(exp.experiment_id, run_name=f"r{i}", start_time=1000 + i).info.run_id
        for i in range(3)
    ]
    client.create_run(other.experiment_id, start_time=5000)
    found = client.search_runs([exp.experiment_id])
    assert [r.info.run_id for r in found] == ids[::-1]
    client.delete_run(ids[1])
    assert [r.info.run_id for r in client.search_runs([exp.experiment_id])] == [ids[2], ids[0]]
    assert [
        r.info.run_id for r in client.search_runs([exp.experiment_id], run_view_type="deleted")
    ] == [ids[1]]
    assert len(client.search_runs(None, run_view_type="all")) == 4
    assert len(client.search_runs([exp.experiment_id], max_results=1)) == 1
    with pytest.raises(InvalidInput, match="max_results=50001"):
        client.search_runs(max_results=50001)
    with pytest.raises(InvalidInput, match="'nope'"):
        client.search_runs(run_view_type="nope")


def test_histograms_are_bucket_counts(client: TrackingClient) -> None:
    import numpy as np

    run_id = new_run(client).info.run_id
    values = np.arange(100, dtype=float)
    h = client.log_histogram(run_id, "weights", values, step=3, bins=4)
    assert h.counts == [25, 25, 25, 25]
    assert h.edges == [0.0, 24.75, 49.5, 74.25, 99.0]
    client.log_histogram(run_id, "weights", [1, 1, 1, float("nan")], step=4, bins=2)
    stored = client.get_histograms(run_id, "weights")
    assert [(x.step, sum(x.counts)) for x in stored] == [(3, 100), (4, 3)]
    with pytest.raises(InvalidInput, match="no finite values"):
        client.log_histogram(run_id, "empty", [float("nan")])


def test_buffered_metrics_visible_to_same_process_reads(client: TrackingClient) -> None:
    run_id = new_run(client).info.run_id
    for i in range(1000):
        client.log_metric(run_id, "m", float(i), step=i)
    # no explicit flush: reads flush first
    assert len(client.get_metric_history(run_id, "m")) == 1000
    assert client.get_run(run_id).data.metrics["m"] == 999.0


def test_metric_history_is_a_sequence_with_columns(client: TrackingClient) -> None:
    run_id = new_run(client).info.run_id
    for i in range(5):
        client.log_metric(run_id, "m", i * 1.5, timestamp=100 + i, step=i)
    history = client.get_metric_history(run_id, "m")
    assert len(history) == 5
    assert history[1] == Metric("m", 1.5, 101, 1)
    assert history[-1].step == 4
    assert list(history[1:3]) == [Metric("m", 1.5, 101, 1), Metric("m", 3.0, 102, 2)]
    assert history == [Metric("m", i * 1.5, 100 + i, i) for i in range(5)]
    assert list(history.steps) == [0, 1, 2, 3, 4]
    assert list(history.values) == [0.0, 1.5, 3.0, 4.5, 6.0]
    assert list(history.timestamps) == [100, 101, 102, 103, 104]
    assert client.get_metric_history(run_id, "never-logged") == []


def test_end_run_stores_final_tags_and_artifacts_with_the_status(
    client: TrackingClient, tmp_path: pytest.TempPathFactory
) -> None:
    run = new_run(client, "finalised", tags={"stage": "dev"})
    run_id = run.info.run_id
    client.log_metric(run_id, "loss", 0.25)  # buffered: ending writes it first
    console = tmp_path / "console.txt"  # type: ignore[operator]
    console.write_text("hello\n")
    client.set_terminated(
        run_id,
        "FAILED",
        tags={"stage": "prod", "git.branch": "feature-x"},
        texts={"environment/requirements.txt": "numpy==2.0\n"},
        files={"console.log": console},
    )
    got = client.get_run(run_id)
    assert got.info.status is RunStatus.FAILED and got.info.end_time is not None
    assert got.data.tags == {"stage": "prod", "git.branch": "feature-x"}
    assert got.data.metrics == {"loss": 0.25}
    files = {f.path: f.file_size for f in client.list_artifacts(run_id, "environment")}
    assert files == {"environment/requirements.txt": 11}
    with client.open_artifact(run_id, "console.log") as fh:
        assert fh.read() == b"hello\n"
    (found,) = client.search_runs(query="feature")  # the full-text document has the new tags
    assert found.info.run_id == run_id
    with pytest.raises(InvalidInput, match="FINISHED|FAILED|finished|failed"):
        client.log_metric(run_id, "late", 1.0)
        client.flush()
    with pytest.raises(NotFound, match="nope"):
        client.store.end_run("nope", RunStatus.FINISHED, 0)
