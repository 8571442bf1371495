"""The module-level API outside Prefect: active runs, nesting, artifacts of every kind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import prefect_mlops as mlops
from prefect_mlops import InvalidInput, RunStatus


def test_start_run_context_manager_finishes_and_fails(tracking_db: str) -> None:
    mlops.set_experiment("fluent")
    with mlops.start_run(run_name="ok", tags={"a": 1}) as run:
        assert mlops.active_run() is not None
        assert mlops.active_run().run_id == run.run_id  # type: ignore[union-attr]
        mlops.log_param("lr", 0.1)
        mlops.log_params({"epochs": 3, "opt": "sgd"})
        mlops.log_metric("loss", 0.5, step=1)
        mlops.log_metrics({"acc": 0.9, "f1": 0.8}, step=1)
        mlops.set_tag("stage", "dev")
        mlops.set_tags({"owner": "me"})
    assert mlops.active_run() is None
    done = mlops.get_run(run.run_id)
    assert done.info.status is RunStatus.FINISHED and done.info.end_time is not None
    assert done.data.params == {"lr": "0.1", "epochs": "3", "opt": "sgd"}
    assert done.data.metrics == {"loss": 0.5, "acc": 0.9, "f1": 0.8}
    assert done.data.tags == {"a": "1", "stage": "dev", "owner": "me"}
    assert mlops.get_client().get_experiment(done.info.experiment_id).name == "fluent"

    with pytest.raises(ZeroDivisionError), mlops.start_run() as failing:
        1 / 0  # noqa: B018
    assert mlops.get_run(failing.run_id).info.status is RunStatus.FAILED


def test_nested_runs_have_parent_ids(tracking_db: str) -> None:
    with mlops.start_run(run_name="parent") as parent:
        with pytest.raises(InvalidInput, match="nested=True"):
            mlops.start_run()
        with mlops.start_run(run_name="child", nested=True) as child:
            mlops.log_metric("x", 1)
        mlops.log_metric("y", 2)
    assert mlops.get_run(child.run_id).info.parent_run_id == parent.run_id
    assert mlops.get_run(child.run_id).data.metrics == {"x": 1.0}
    assert mlops.get_run(parent.run_id).data.metrics == {"y": 2.0}


def test_end_run_status_and_resume(tracking_db: str) -> None:
    run = mlops.start_run()
    mlops.end_run(status="KILLED")
    assert mlops.get_run(run.run_id).info.status is RunStatus.KILLED
    with pytest.raises(InvalidInput, match="KILLED"):
        mlops.get_client().log_metric(run.run_id, "m", 1)
    with mlops.start_run(run_id=run.run_id):
        mlops.log_metric("m", 1)
    assert mlops.get_run(run.run_id).data.metrics == {"m": 1.0}
    with pytest.raises(InvalidInput, match="'BOGUS'"):
        mlops.get_client().set_terminated(run.run_id, "BOGUS")


def test_logging_without_a_run_starts_one(tracking_db: str) -> None:
    mlops.log_metric("auto", 1.0)
    active = mlops.active_run()
    assert active is not None and active.data.metrics == {"auto": 1.0}
    assert mlops.get_client().get_experiment(active.info.experiment_id).name == "Default"
    mlops.end_run()
    assert mlops.get_run(active.run_id).info.status is RunStatus.FINISHED


def test_text_dict_table_artifacts(tracking_db: str, tmp_path: Path) -> None:
    with mlops.start_run() as run:
        mlops.log_text("hello", "notes/hello.txt")
        mlops.log_dict({"lr": 0.1, "layers": [1, 2]}, "config.json")
        mlops.log_dict({"lr": 0.1, "layers": [1, 2]}, "config.yaml")
        mlops.log_table({"a": [1, 2], "b": ["x", "y"]}, "table.json")
        src = tmp_path / "dir"
        (src / "sub").mkdir(parents=True)
        (src / "top.txt").write_text("t")
        (src / "sub" / "deep.txt").write_text("d")
        mlops.log_artifacts(src, "bundle")
        mlops.log_artifact(src / "top.txt")
    client = mlops.get_client()
    listing = {f.path: f for f in client.list_artifacts(run.run_id)}
    assert set(listing) == {
        "bundle",
        "config.json",
        "config.yaml",
        "notes",
        "table.json",
        "top.txt",
    }
    assert listing["bundle"].is_dir and not listing["top.txt"].is_dir
    assert listing["top.txt"].file_size == 1
    assert [f.path for f in client.list_artifacts(run.run_id, "bundle")] == [
        "bundle/sub",
        "bundle/top.txt",
    ]
    out = mlops.download_artifacts(run.run_id, dst_path=tmp_path / "dl")
    assert json.loads((out / "config.json").read_text()) == {"lr": 0.1, "layers": [1, 2]}
    assert yaml.safe_load((out / "config.yaml").read_text()) == {"lr": 0.1, "layers": [1, 2]}
    assert json.loads((out / "table.json").read_text()) == {
        "columns": ["a", "b"],
        "data": [[1, "x"], [2, "y"]],
    }
    assert (out / "bundle" / "sub" / "deep.txt").read_text() == "d"
    assert (out / "notes" / "hello.txt").read_text() == "hello"


def test_table_from_pandas_and_bad_tables(tracking_db: str) -> None:
    import pandas as pd

    with mlops.start_run() as run:
        mlops.log_table(pd.DataFrame({"x": [1.5, None], "y": ["a", "b"]}), "df.json")
        with pytest.raises(InvalidInput, match="differ in length"):
            mlops.log_table({"a": [1, 2], "b": [1]}, "bad.json")
        with pytest.raises(InvalidInput, match="must end with '.json'"):
            mlops.log_table({"a": [1]}, "bad.csv")
    with mlops.get_client().open_artifact(run.run_id, "df.json") as fh:
        assert json.loads(fh.read()) == {"columns": ["x", "y"], "data": [[1.5, "a"], [None, "b"]]}


def test_images_and_figures(tracking_db: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    with mlops.start_run() as run:
        mlops.log_image(np.zeros((4, 6, 3), dtype=np.uint8), "img/black.png")
        mlops.log_image(np.full((2, 2), 0.5), "img/gray.jpg")
        with pytest.raises(InvalidInput, match=r"\[0, 1\]"):
            mlops.log_image(np.full((2, 2), 3.0), "img/bad.png")
        with pytest.raises(InvalidInput, match="suffixes"):
            mlops.log_image(np.zeros((2, 2)), "img/bad.xyz")
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3])
        mlops.log_figure(fig, "plots/line.png")
        mlops.log_figure(fig, "plots/line.svg")
        plt.close(fig)
    client = mlops.get_client()
    with client.open_artifact(run.run_id, "img/black.png") as fh:
        image = Image.open(fh)
        assert (image.size, image.mode) == ((6, 4), "RGB")
    with client.open_artifact(run.run_id, "plots/line.png") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    with client.open_artifact(run.run_id, "plots/line.svg") as fh:
        assert b"<svg" in fh.read()


def test_log_artifact_of_missing_file(tracking_db: str, tmp_path: Path) -> None:
    with mlops.start_run(), pytest.raises(InvalidInput, match="missing.bin"):
        mlops.log_artifact(tmp_path / "missing.bin")


def test_search_runs_by_experiment_name(tracking_db: str) -> None:
    mlops.set_experiment("a")
    with mlops.start_run() as first:
        pass
    mlops.set_experiment("b")
    with mlops.start_run():
        pass
    assert [r.info.run_id for r in mlops.search_runs(experiment_names=["a"])] == [first.run_id]
    assert mlops.search_runs(experiment_names=["missing"]) == []
    assert len(mlops.search_runs()) == 2
