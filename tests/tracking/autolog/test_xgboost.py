"""XGBoost autolog on real trainings: params, per-iteration metrics, importance, model."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sklearn")
xgb = pytest.importorskip("xgboost")

import numpy as np  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402

import prefect_mlops as mlops  # noqa: E402
from prefect_mlops import RunStatus, TrackingClient  # noqa: E402
from prefect_mlops.tracking.autolog import xgboost as xgb_autolog  # noqa: E402

pytestmark = pytest.mark.usefixtures("mlops_home")

PARAMS = {"max_depth": 3, "eta": 0.3, "objective": "binary:logistic", "seed": 7}


@pytest.fixture
def dmatrices() -> tuple[Any, Any]:
    X, y = make_classification(n_samples=300, n_features=5, random_state=0)
    return xgb.DMatrix(X[:200], y[:200]), xgb.DMatrix(X[200:], y[200:])


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


def _trains() -> tuple[Any, ...]:
    return (xgb.train, xgb.training.train, xgb.sklearn.train)


def test_train_logs_params_metrics_importance_and_model(dmatrices: Any, tmp_path: Path) -> None:
    dtrain, dvalid = dmatrices
    mlops.autolog(frameworks=["xgboost"])
    evals_result: dict[str, Any] = {}
    params = {**PARAMS, "eval_metric": ["logloss", "auc"]}
    with mlops.start_run() as run:
        booster = xgb.train(
            params,
            dtrain,
            num_boost_round=12,
            evals=[(dtrain, "train"), (dvalid, "valid")],
            evals_result=evals_result,
            verbose_eval=False,
        )
    stored = mlops.get_run(run.run_id)
    assert stored.data.params == {
        "max_depth": "3",
        "eta": "0.3",
        "objective": "binary:logistic",
        "seed": "7",
        "eval_metric": "['logloss', 'auc']",
        "num_boost_round": "12",
    }
    assert stored.data.tags == {"mlflow.autologging": "xgboost"}
    assert set(stored.data.metrics) == {"train-logloss", "train-auc", "valid-logloss", "valid-auc"}
    for data in ("train", "valid"):
        for metric in ("logloss", "auc"):
            history = mlops.get_metric_history(run.run_id, f"{data}-{metric}")
            assert [p.step for p in history] == list(range(12))
            assert [p.value for p in history] == evals_result[data][metric]

    out = mlops.download_artifacts(run.run_id, dst_path=tmp_path / "dl")
    importance = json.loads((out / "feature_importance.json").read_text())
    assert importance == booster.get_score(importance_type="gain")
    reloaded = xgb.Booster(model_file=str(out / "model" / "model.json"))
    np.testing.assert_array_equal(reloaded.predict(dvalid), booster.predict(dvalid))


def test_sklearn_wrapper_and_a_run_of_its_own(tmp_path: Path) -> None:
    X, y = make_classification(n_samples=200, n_features=4, random_state=1)
    mlops.autolog(frameworks=["xgboost"])
    model = xgb.XGBClassifier(n_estimators=9, max_depth=2, learning_rate=0.5)
    model.fit(X, y, eval_set=[(X, y)], verbose=False)
    assert mlops.active_run() is None
    (run,) = mlops.search_runs()
    assert run.info.status is RunStatus.FINISHED
    assert run.data.params["num_boost_round"] == "9"
    assert run.data.params["max_depth"] == "2"
    assert run.data.params["learning_rate"] == "0.5"
    history = mlops.get_metric_history(run.info.run_id, "validation_0-logloss")
    assert [p.value for p in history] == model.evals_result()["validation_0"]["logloss"]
    path = mlops.download_artifacts(run.info.run_id, "model/model.json", tmp_path / "dl")
    reloaded = xgb.Booster(model_file=str(path))
    np.testing.assert_array_equal(
        reloaded.predict(xgb.DMatrix(X)), model.get_booster().predict(xgb.DMatrix(X))
    )


def test_early_stopping_logs_best_iteration(dmatrices: Any) -> None:
    dtrain, dvalid = dmatrices
    mlops.autolog(frameworks=["xgboost"])
    with mlops.start_run() as run:
        booster = xgb.train(
            {**PARAMS, "eta": 1.0, "max_depth": 6},
            dtrain,
            num_boost_round=200,
            evals=[(dvalid, "valid")],
            early_stopping_rounds=3,
            verbose_eval=False,
        )
    stored = mlops.get_run(run.run_id)
    assert stored.data.params["early_stopping_rounds"] == "3"
    assert stored.data.metrics["best_iteration"] == booster.best_iteration
    rounds = booster.num_boosted_rounds()
    assert rounds < 200
    assert len(mlops.get_metric_history(run.run_id, "valid-logloss")) == rounds


def test_metric_names_are_made_valid_keys_and_defaults_logged(dmatrices: Any) -> None:
    dtrain, _ = dmatrices
    mlops.autolog(frameworks=["xgboost"])
    with mlops.start_run() as run:
        xgb.train({**PARAMS, "eval_metric": "error@0.7"}, dtrain, 3, evals=[(dtrain, "train")])
    assert set(mlops.get_run(run.run_id).data.metrics) == {"train-error_0.7"}
    with mlops.start_run() as default_rounds:
        booster = xgb.train([("objective", "binary:logistic"), ("eval_metric", "auc")], dtrain)
    params = mlops.get_run(default_rounds.run_id).data.params
    assert params == {"objective": "binary:logistic", "eval_metric": "auc", "num_boost_round": "10"}
    assert booster.num_boosted_rounds() == 10


def test_install_is_idempotent_and_uninstall_restores_originals(dmatrices: Any) -> None:
    dtrain, _ = dmatrices
    original = xgb.training.train
    assert _trains() == (original, original, original)
    mlops.autolog(frameworks=["xgboost"])
    patched = _trains()
    assert patched[0] is not original and len(set(patched)) == 1
    assert mlops.autolog(frameworks=["xgboost"]) == ["xgboost"]
    assert _trains() == patched
    with mlops.start_run() as run:
        xgb.train(PARAMS, dtrain, 4, evals=[(dtrain, "train")], verbose_eval=False)
    assert len(mlops.get_metric_history(run.run_id, "train-logloss")) == 4  # one callback
    mlops.autolog(disable=True, frameworks=["xgboost"])
    assert all(fn is original for fn in _trains())


def test_disable_stops_logging(dmatrices: Any) -> None:
    dtrain, _ = dmatrices
    mlops.autolog(frameworks=["xgboost"])
    kept = xgb.train  # a reference taken while enabled stops logging too
    mlops.autolog(disable=True, frameworks=["xgboost"])
    with mlops.start_run() as run:
        xgb.train(PARAMS, dtrain, 3, evals=[(dtrain, "train")], verbose_eval=False)
        kept(PARAMS, dtrain, 3, evals=[(dtrain, "train")], verbose_eval=False)
    stored = mlops.get_run(run.run_id)
    assert stored.data.params == {} and stored.data.metrics == {}
    assert mlops.get_client().list_artifacts(run.run_id) == []


def test_a_failing_hook_warns_once_and_training_goes_on(
    dmatrices: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    dtrain, dvalid = dmatrices
    expected = xgb.train(PARAMS, dtrain, 8).predict(dvalid)
    mlops.autolog(frameworks=["xgboost"])

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("metric store is down")

    monkeypatch.setattr(TrackingClient, "log_metric", broken)
    with caplog.at_level(logging.WARNING, logger="prefect_mlops.autolog"), mlops.start_run() as run:
        booster = xgb.train(PARAMS, dtrain, 8, evals=[(dtrain, "train")], verbose_eval=False)
        again = xgb.train(PARAMS, dtrain, 8, evals=[(dtrain, "train")], verbose_eval=False)
    np.testing.assert_array_equal(booster.predict(dvalid), expected)
    np.testing.assert_array_equal(again.predict(dvalid), expected)
    warned = _warnings(caplog, "xgboost: metrics")
    assert len(warned) == 1 and "metric store is down" in warned[0].getMessage()
    assert len(_warnings(caplog, "prefect-mlops autolog")) == 1
    assert mlops.get_run(run.run_id).data.params["num_boost_round"] == "8"


def test_user_exceptions_propagate_unchanged_and_fail_the_run(dmatrices: Any) -> None:
    dtrain, _ = dmatrices
    mlops.autolog(frameworks=["xgboost"])
    error = KeyError("the user's own failure")

    class Failing(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            if epoch == 2:
                raise error
            return False

    with pytest.raises(KeyError) as caught:
        xgb.train(PARAMS, dtrain, 5, evals=[(dtrain, "train")], callbacks=[Failing()])
    assert caught.value is error
    with pytest.raises(TypeError):
        xgb.train(PARAMS, dtrain, 5, not_an_argument=1)
    (run,) = mlops.search_runs()
    assert run.info.status is RunStatus.FAILED
    assert mlops.active_run() is None


def test_inside_a_logged_sklearn_search_only_the_search_logs() -> None:
    from sklearn.model_selection import GridSearchCV

    X, y = make_classification(n_samples=120, n_features=4, random_state=2)
    assert mlops.autolog(frameworks=["sklearn", "xgboost"]) == ["sklearn", "xgboost"]
    with mlops.start_run() as run:
        GridSearchCV(xgb.XGBClassifier(n_estimators=3), {"max_depth": [1, 2]}, cv=2).fit(X, y)
    stored = mlops.get_run(run.run_id)
    assert stored.data.tags["estimator_name"] == "GridSearchCV"
    assert "best_params.max_depth" in stored.data.params
    assert "num_boost_round" not in stored.data.params
    assert len(mlops.search_runs()) == 1


def test_unknown_xgboost_version_is_skipped_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    original = xgb.training.train
    monkeypatch.setattr(xgb_autolog, "SUPPORTED", "<1.0")
    with caplog.at_level(logging.WARNING, logger="prefect_mlops.autolog"):
        assert mlops.autolog(frameworks=["xgboost"]) == []
    assert len(_warnings(caplog, "is not a version we know")) == 1
    assert all(fn is original for fn in _trains())
