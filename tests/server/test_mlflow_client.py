"""The unmodified mlflow client against our server: fluent API and MlflowClient."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

mlflow: Any = pytest.importorskip("mlflow")


def test_fluent_run_with_params_metrics_tags_lands_in_default_experiment(
    mlflow_server: str,
) -> None:
    with mlflow.start_run(run_name="first") as run:
        mlflow.log_param("lr", 0.01)
        mlflow.log_params({"layers": 3, "act": "relu"})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"acc": 0.9, "nan": math.nan})
        mlflow.set_tag("team", "cv")
        mlflow.set_tags({"stage": "dev"})
    got = mlflow.get_run(run.info.run_id)
    assert got.info.experiment_id == "0"
    assert got.info.run_name == "first"
    assert got.info.status == "FINISHED"
    assert got.info.end_time >= got.info.start_time
    assert got.data.params == {"lr": "0.01", "layers": "3", "act": "relu"}
    assert got.data.metrics["loss"] == pytest.approx(0.2)
    assert got.data.metrics["acc"] == pytest.approx(0.9)
    assert math.isnan(got.data.metrics["nan"])
    assert got.data.tags["team"] == "cv" and got.data.tags["stage"] == "dev"
    assert got.info.artifact_uri.startswith("mlflow-artifacts:/")
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(s, 1.0 / (s + 1)) for s in range(5)]
    assert mlflow.get_experiment("0").name == "Default"


def test_client_experiments_create_get_search_update_delete_restore_and_tags(
    mlflow_server: str,
) -> None:
    client = mlflow.MlflowClient()
    exp_id = client.create_experiment("vision", tags={"team": "cv"})
    other = client.create_experiment("nlp")
    assert client.get_experiment(exp_id).tags == {"team": "cv"}
    assert client.get_experiment_by_name("vision").experiment_id == exp_id
    assert client.get_experiment_by_name("missing") is None
    with pytest.raises(mlflow.exceptions.MlflowException, match="already exists"):
        client.create_experiment("vision")
    client.set_experiment_tag(exp_id, "stage", "prod")
    client.delete_experiment_tag(exp_id, "team")
    assert client.get_experiment(exp_id).tags == {"stage": "prod"}
    client.rename_experiment(exp_id, "vision-2")
    assert client.get_experiment(exp_id).name == "vision-2"
    found = client.search_experiments(filter_string="name LIKE 'vision%'")
    assert [e.experiment_id for e in found] == [exp_id]
    names = [e.name for e in client.search_experiments(order_by=["name ASC"])]
    assert names == sorted(names) and {"nlp", "vision-2"} <= set(names)
    first = client.search_experiments(max_results=1, order_by=["name ASC"])
    assert len(first) == 1 and first.token
    second = client.search_experiments(max_results=1, order_by=["name ASC"], page_token=first.token)
    assert second[0].name != first[0].name
    client.delete_experiment(other)
    assert client.get_experiment(other).lifecycle_stage == "deleted"
    deleted = client.search_experiments(view_type=mlflow.entities.ViewType.DELETED_ONLY)
    assert [e.experiment_id for e in deleted] == [other]
    client.restore_experiment(other)
    assert client.get_experiment(other).lifecycle_stage == "active"
    mlflow.set_experiment("vision-2")
    with mlflow.start_run() as run:
        pass
    assert run.info.experiment_id == exp_id


def test_log_batch_search_with_filter_and_order_and_pages(mlflow_server: str) -> None:
    from mlflow.entities import Metric, Param, RunTag

    client = mlflow.MlflowClient()
    exp_id = client.create_experiment("search")
    ids = []
    for i in range(5):
        run = client.create_run(exp_id, run_name=f"r{i}")
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("acc", i / 10, 0, step) for step in range(3)],
            params=[Param("i", str(i))],
            tags=[RunTag("parity", "even" if i % 2 == 0 else "odd")],
        )
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    found = client.search_runs(
        [exp_id], "metrics.acc > 0.15 and tags.parity = 'even'", order_by=["metrics.acc DESC"]
    )
    assert [r.info.run_id for r in found] == [ids[4], ids[2]]
    assert found[0].data.metrics == {"acc": 0.4}
    page = client.search_runs([exp_id], order_by=["params.i ASC"], max_results=2)
    assert [r.data.params["i"] for r in page] == ["0", "1"] and page.token
    rest = client.search_runs([exp_id], order_by=["params.i ASC"], page_token=page.token)
    assert [r.data.params["i"] for r in rest] == ["2", "3", "4"]
    frame = mlflow.search_runs([exp_id], filter_string="params.i = '3'")
    assert list(frame["run_id"]) == [ids[3]]
    assert list(frame["metrics.acc"]) == [pytest.approx(0.3)]


def test_nested_runs_delete_restore_and_tags(mlflow_server: str) -> None:
    client = mlflow.MlflowClient()
    with (
        mlflow.start_run(run_name="parent") as parent,
        mlflow.start_run(run_name="child", nested=True) as child,
    ):
        mlflow.log_metric("x", 1)
    got = client.get_run(child.info.run_id)
    assert got.data.tags["mlflow.parentRunId"] == parent.info.run_id
    children = client.search_runs(["0"], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert [r.info.run_id for r in children] == [child.info.run_id]
    client.set_tag(child.info.run_id, "note", "keep")
    client.delete_tag(child.info.run_id, "note")
    assert "note" not in client.get_run(child.info.run_id).data.tags
    client.delete_run(child.info.run_id)
    assert client.get_run(child.info.run_id).info.lifecycle_stage == "deleted"
    assert [r.info.run_id for r in client.search_runs(["0"])] == [parent.info.run_id]
    deleted = client.search_runs(["0"], run_view_type=mlflow.entities.ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [child.info.run_id]
    client.restore_run(child.info.run_id)
    assert client.get_run(child.info.run_id).info.lifecycle_stage == "active"
    with pytest.raises(mlflow.exceptions.MlflowException) as err:
        client.get_run("0" * 32)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_artifacts_up_and_down(mlflow_server: str, tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text("one")
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.bin").write_bytes(bytes(range(256)) * 4096)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "one.txt"))
        mlflow.log_artifact(str(tmp_path / "one.txt"), artifact_path="copies")
        mlflow.log_artifacts(str(folder), artifact_path="data")
        mlflow.log_dict({"k": [1, 2]}, "config.json")
        mlflow.log_text("hello", "notes/hello.txt")
    client = mlflow.MlflowClient()
    rid = run.info.run_id
    top = {(f.path, f.is_dir) for f in client.list_artifacts(rid)}
    assert top == {
        ("one.txt", False),
        ("copies", True),
        ("data", True),
        ("config.json", False),
        ("notes", True),
    }
    assert [(f.path, f.file_size) for f in client.list_artifacts(rid, "data/sub")] == [
        ("data/sub/b.bin", 256 * 4096)
    ]
    out = Path(mlflow.artifacts.download_artifacts(run_id=rid, dst_path=str(tmp_path / "dl")))
    assert (out / "one.txt").read_text() == "one"
    assert (out / "data" / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 4096
    assert mlflow.artifacts.load_dict(f"runs:/{rid}/config.json") == {"k": [1, 2]}
    assert mlflow.artifacts.load_text(f"runs:/{rid}/notes/hello.txt") == "hello"
