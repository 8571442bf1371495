"""The stock client's sklearn autolog and model logging against our server, and what it
writes read back by our own TrackingClient (and the reverse)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

mlflow: Any = pytest.importorskip("mlflow")
pytest.importorskip("sklearn")


def _data() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True, as_frame=True)
    return x, y


def test_sklearn_autolog_during_a_real_fit(mlflow_server: str) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = _data()
    mlflow.sklearn.autolog(log_models=False, log_datasets=True)
    try:
        with mlflow.start_run() as run:
            LogisticRegression(max_iter=200, C=0.5).fit(x, y)
    finally:
        mlflow.sklearn.autolog(disable=True)
    got = mlflow.MlflowClient().get_run(run.info.run_id)
    assert got.data.params["C"] == "0.5"
    assert got.data.params["max_iter"] == "200"
    assert got.data.metrics["training_accuracy_score"] > 0.9
    assert got.data.tags["estimator_name"] == "LogisticRegression"


def test_log_model_then_pyfunc_load_model_predicts(mlflow_server: str) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = _data()
    model = LogisticRegression(max_iter=500).fit(x, y)
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model", input_example=x.head(3))
    assert info.model_id.startswith("m-")
    loaded = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    assert list(loaded.predict(x.head(20))) == list(model.predict(x.head(20)))
    by_id = mlflow.pyfunc.load_model(f"models:/{info.model_id}")
    assert list(by_id.predict(x.tail(5))) == list(model.predict(x.tail(5)))
    client = mlflow.MlflowClient()
    logged = client.get_logged_model(info.model_id)
    assert logged.source_run_id == run.info.run_id
    assert logged.status.to_proto() == mlflow.entities.LoggedModelStatus.READY.to_proto()
    found = client.search_logged_models(["0"], filter_string="name = 'model'")
    assert [m.model_id for m in found] == [info.model_id]
    outputs = client.get_run(run.info.run_id).outputs.model_outputs
    assert [o.model_id for o in outputs] == [info.model_id]


def _our_client(home: Path) -> Any:
    from prefect_mlops.tracking.client import TrackingClient

    return TrackingClient(
        database_url=f"sqlite:///{home / 'mlops.db'}", artifact_storage=str(home / "artifacts")
    )


def test_what_the_stock_client_wrote_our_client_reads_back(
    mlflow_server: str, tmp_path: Path
) -> None:
    (tmp_path / "weights.txt").write_text("w")
    mlflow.set_experiment("cross")
    with mlflow.start_run(run_name="stock") as run:
        mlflow.log_param("lr", "0.1")
        mlflow.log_metric("loss", 0.5, step=1)
        mlflow.log_metric("loss", 0.25, step=2)
        mlflow.set_tag("who", "mlflow")
        mlflow.log_artifact(str(tmp_path / "weights.txt"), "ckpt")
    ours = _our_client(tmp_path / "server-home")
    got = ours.get_run(run.info.run_id)
    assert got.info.run_name == "stock"
    assert ours.get_experiment(got.info.experiment_id).name == "cross"
    assert got.data.params == {"lr": "0.1"}
    assert got.data.metrics == {"loss": 0.25}
    assert got.data.tags["who"] == "mlflow"
    assert [(m.step, m.value) for m in ours.get_metric_history(run.info.run_id, "loss")] == [
        (1, 0.5),
        (2, 0.25),
    ]
    assert [f.path for f in ours.list_artifact_files(run.info.run_id)] == ["ckpt/weights.txt"]
    with ours.open_artifact(run.info.run_id, "ckpt/weights.txt") as f:
        assert f.read() == b"w"


def test_runs_our_client_created_are_found_by_the_stock_client(
    mlflow_server: str, tmp_path: Path
) -> None:
    ours = _our_client(tmp_path / "server-home")
    experiment = ours.get_or_create_experiment("ours")
    run = ours.create_run(experiment.experiment_id, run_name="native", tags={"src": "ours"})
    ours.log_param(run.info.run_id, "depth", 4)
    ours.log_metric(run.info.run_id, "score", 0.75, step=3)
    ours.log_text(run.info.run_id, "hi", "readme.txt")
    ours.set_terminated(run.info.run_id)
    ours.flush()
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("ours")
    assert exp.experiment_id == experiment.experiment_id
    found = client.search_runs([exp.experiment_id], "params.depth = '4'")
    assert [r.info.run_id for r in found] == [run.info.run_id]
    got = found[0]
    assert got.info.status == "FINISHED" and got.data.tags["src"] == "ours"
    assert got.data.metrics == {"score": 0.75}
    assert [m.step for m in client.get_metric_history(run.info.run_id, "score")] == [3]
    path = client.download_artifacts(run.info.run_id, "readme.txt", str(tmp_path))
    assert Path(path).read_text() == "hi"
