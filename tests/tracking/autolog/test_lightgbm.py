"""LightGBM autolog on real trainings: params, per-iteration metrics, importance, model."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sklearn")
lgb = pytest.importorskip("lightgbm")

import numpy as np  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402

import prefect_mlops as mlops  # noqa: E402
from prefect_mlops import RunStatus, TrackingClient  # noqa: E402
from prefect_mlops.tracking.autolog import lightgbm as lgb_autolog  # noqa: E402

pytestmark = pytest.mark.usefixtures("mlops_home")

PARAMS = {
    "objective": "binary",
    "num_leaves": 7,
    "learning_rate": 0.2,
    "verbose": -1,
    "seed": 3,
    "num_threads": 1,
}


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    return make_classification(n_samples=300, n_features=5, random_state=0)


def _datasets(data: Any) -> tuple[Any, Any]:
    X, y = data
    train = lgb.Dataset(X[:200], y[:200], feature_name=[f"f{i}" for i in range(5)])
    return train, lgb.Dataset(X[200:], y[200:], reference=train)


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


def _trains() -> tuple[Any, ...]:
    return (lgb.train, lgb.engine.train, lgb.sklearn.train)


def test_train_logs_params_metrics_importance_and_model(data: Any, tmp_path: Path) -> None:
    X, _ = data
    train, valid = _datasets(data)
    mlops.autolog(frameworks=["lightgbm"])
    recorded: dict[str, Any] = {}
    params = {**PARAMS, "metric": ["binary_logloss", "auc"]}
    with mlops.start_run() as run:
        booster = lgb.train(
            params,
            train,
            num_boost_round=15,
            valid_sets=[train, valid],
            valid_names=["train", "valid"],
            callbacks=[lgb.record_evaluation(recorded)],
        )
    stored = mlops.get_run(run.run_id)
    assert stored.data.params == {
        "objective": "binary",
        "num_leaves": "7",
        "learning_rate": "0.2",
        "verbose": "-1",
        "seed": "3",
        "num_threads": "1",
        "metric": "['binary_logloss', 'auc']",
        "num_boost_round": "15",
    }
    assert stored.data.tags == {"mlflow.autologging": "lightgbm"}
    expected_keys = {"train-binary_logloss", "train-auc", "valid-binary_logloss", "valid-auc"}
    assert set(stored.data.metrics) == expected_keys
    for data_name in ("train", "valid"):
        for metric in ("binary_logloss", "auc"):
            history = mlops.get_metric_history(run.run_id, f"{data_name}-{metric}")
            assert [p.step for p in history] == list(range(15))
            assert [p.value for p in history] == recorded[data_name][metric]

    out = mlops.download_artifacts(run.run_id, dst_path=tmp_path / "dl")
    importance = json.loads((out / "feature_importance.json").read_text())
    gains = booster.feature_importance(importance_type="gain")
    assert importance == {f"f{i}": float(g) for i, g in enumerate(gains)}
    reloaded = lgb.Booster(model_file=str(out / "model" / "model.txt"))
    np.testing.assert_allclose(reloaded.predict(X), booster.predict(X), rtol=1e-12)


@pytest.mark.filterwarnings("ignore:The argument 'eval_set' is deprecated")
def test_sklearn_wrapper_and_a_run_of_its_own(data: Any, tmp_path: Path) -> None:
    X, y = data
    mlops.autolog(frameworks=["lightgbm"])
    model = lgb.LGBMClassifier(n_estimators=6, num_leaves=5, verbose=-1, n_jobs=1)
    model.fit(X, y, eval_set=[(X, y)])
    assert mlops.active_run() is None
    (run,) = mlops.search_runs()
    assert run.info.status is RunStatus.FINISHED
    assert run.data.params["num_boost_round"] == "6"
    assert run.data.params["num_leaves"] == "5"
    history = mlops.get_metric_history(run.info.run_id, "training-binary_logloss")
    assert [p.value for p in history] == model.evals_result_["training"]["binary_logloss"]
    path = mlops.download_artifacts(run.info.run_id, "model/model.txt", tmp_path / "dl")
    reloaded = lgb.Booster(model_file=str(path))
    np.testing.assert_allclose(reloaded.predict(X), model.predict_proba(X)[:, 1], rtol=1e-12)


def test_early_stopping_logs_every_iteration_and_best(data: Any) -> None:
    train, valid = _datasets(data)
    mlops.autolog(frameworks=["lightgbm"])
    with mlops.start_run() as run:
        booster = lgb.train(
            {**PARAMS, "learning_rate": 1.0, "num_leaves": 31, "min_data_in_leaf": 1},
            train,
            num_boost_round=300,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(3, verbose=False)],
        )
    stored = mlops.get_run(run.run_id)
    assert stored.data.metrics["best_iteration"] == booster.best_iteration
    history = mlops.get_metric_history(run.run_id, "valid_0-binary_logloss")
    assert len(history) == booster.best_iteration + 3 < 300  # the stopping round included


def test_install_is_idempotent_and_uninstall_restores_originals(data: Any) -> None:
    train, _ = _datasets(data)
    original = lgb.engine.train
    assert _trains() == (original, original, original)
    mlops.autolog(frameworks=["lightgbm"])
    patched = _trains()
    assert patched[0] is not original and len(set(patched)) == 1
    assert mlops.autolog(frameworks=["lightgbm"]) == ["lightgbm"]
    assert _trains() == patched
    with mlops.start_run() as run:
        lgb.train(PARAMS, train, 4, valid_sets=[train], valid_names=["train"])
    assert len(mlops.get_metric_history(run.run_id, "train-binary_logloss")) == 4
    mlops.autolog(disable=True, frameworks=["lightgbm"])
    assert all(fn is original for fn in _trains())


def test_disable_stops_logging(data: Any) -> None:
    train, _ = _datasets(data)
    mlops.autolog(frameworks=["lightgbm"])
    mlops.autolog(disable=True, frameworks=["lightgbm"])
    with mlops.start_run() as run:
        lgb.train(PARAMS, train, 3, valid_sets=[train])
    stored = mlops.get_run(run.run_id)
    assert stored.data.params == {} and stored.data.metrics == {}
    assert mlops.get_client().list_artifacts(run.run_id) == []


def test_a_failing_hook_warns_once_and_training_goes_on(
    data: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    X, _ = data
    train, _ = _datasets(data)
    expected = lgb.train(PARAMS, train, 8).predict(X)
    mlops.autolog(frameworks=["lightgbm"])

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("metric store is down")

    monkeypatch.setattr(TrackingClient, "log_metric", broken)
    with caplog.at_level(logging.WARNING, logger="prefect_mlops.autolog"), mlops.start_run() as run:
        booster = lgb.train(PARAMS, train, 8, valid_sets=[train])
        again = lgb.train(PARAMS, train, 8, valid_sets=[train])
    np.testing.assert_array_equal(booster.predict(X), expected)
    np.testing.assert_array_equal(again.predict(X), expected)
    warned = _warnings(caplog, "lightgbm: metrics")
    assert len(warned) == 1 and "metric store is down" in warned[0].getMessage()
    assert len(_warnings(caplog, "prefect-mlops autolog")) == 1
    assert mlops.get_run(run.run_id).data.params["num_boost_round"] == "8"


def test_user_exceptions_propagate_unchanged_and_fail_the_run(data: Any) -> None:
    train, _ = _datasets(data)
    mlops.autolog(frameworks=["lightgbm"])
    error = KeyError("the user's own failure")

    def failing(env: Any) -> None:
        if env.iteration == 2:
            raise error

    with pytest.raises(KeyError) as caught:
        lgb.train(PARAMS, train, 5, callbacks=[failing])
    assert caught.value is error
    (run,) = mlops.search_runs()
    assert run.info.status is RunStatus.FAILED
    assert mlops.active_run() is None


def test_unknown_lightgbm_version_is_skipped_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    original = lgb.engine.train
    monkeypatch.setattr(lgb_autolog, "SUPPORTED", "<1.0")
    with caplog.at_level(logging.WARNING, logger="prefect_mlops.autolog"):
        assert mlops.autolog(frameworks=["lightgbm"]) == []
    assert len(_warnings(caplog, "is not a version we know")) == 1
    assert all(fn is original for fn in _trains())
