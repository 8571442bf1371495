"""scikit-learn autolog on real estimators: params, score, model, searches, patch hygiene."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sklearn")

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.cluster import KMeans
from sklearn.datasets import make_classification
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import resample

import prefect_mlops as mlops
from prefect_mlops import InvalidInput, RunStatus, TrackingClient
from prefect_mlops.tracking.autolog import sklearn as sk_autolog

pytestmark = pytest.mark.usefixtures("mlops_home")


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    return make_classification(n_samples=120, n_features=6, random_state=0)


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


def _load_model(run_id: str, tmp_path: Path) -> Any:
    path = mlops.download_artifacts(run_id, "model/model.pkl", tmp_path / "dl")
    with open(path, "rb") as fh:
        return pickle.load(fh)


def _late_class(fit: Any, module: str = "sklearn.late_test_module") -> type:
    """An estimator class defined (as if imported) after autolog was enabled."""
    return type(
        "LateEstimator",
        (ClassifierMixin, BaseEstimator),
        {"__module__": module, "fit": fit, "predict": lambda self, X: np.zeros(len(X))},
    )


def test_fit_logs_params_tags_score_and_model(data: Any, tmp_path: Path) -> None:
    X, y = data
    assert mlops.autolog(frameworks=["sklearn"]) == ["sklearn"]
    with mlops.start_run() as run:
        model = LogisticRegression(C=0.5, max_iter=300, random_state=3).fit(X, y)
    stored = mlops.get_run(run.run_id)
    assert stored.data.params == {k: str(v) for k, v in model.get_params(deep=True).items()}
    assert stored.data.params["C"] == "0.5"
    assert stored.data.params["max_iter"] == "300"
    assert stored.data.params["random_state"] == "3"
    assert stored.data.metrics == {"training_score": model.score(X, y)}
    assert stored.data.tags == {
        "estimator_name": "LogisticRegression",
        "estimator_class": "sklearn.linear_model._logistic.LogisticRegression",
        "mlflow.autologging": "sklearn",
        "training_score_rows": "120",  # at most max_score_rows: every row scored
    }
    assert stored.info.status is RunStatus.FINISHED
    loaded = _load_model(run.run_id, tmp_path)
    assert type(loaded) is LogisticRegression
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


@pytest.fixture
def scored_rows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of rows each ``ClassifierMixin.score`` call gets."""
    seen: list[int] = []
    original = ClassifierMixin.score

    def score(self: Any, X: Any, y: Any, sample_weight: Any = None) -> float:
        seen.append(len(X))
        return float(original(self, X, y, sample_weight))

    monkeypatch.setattr(ClassifierMixin, "score", score)
    return seen


def test_training_score_past_max_score_rows_is_on_a_recorded_seeded_subsample(
    scored_rows: list[int],
) -> None:
    X, y = make_classification(n_samples=300, n_features=6, random_state=1)
    mlops.autolog(frameworks=["sklearn"], max_score_rows=100)
    with mlops.start_run() as run:
        model = LogisticRegression().fit(X, y)
    assert scored_rows == [100]
    stored = mlops.get_run(run.run_id)
    assert stored.data.tags["training_score_rows"] == "100"
    X_sub, y_sub = resample(X, y, replace=False, n_samples=100, random_state=0)
    assert stored.data.metrics["training_score"] == model.score(X_sub, y_sub)
    rows = {tuple(r) for r in X}
    assert {tuple(r) for r in X_sub} <= rows and len({tuple(r) for r in X_sub}) == 100


def test_training_score_up_to_max_score_rows_or_unbounded_scores_every_row(
    scored_rows: list[int],
) -> None:
    X, y = make_classification(n_samples=300, n_features=6, random_state=1)
    mlops.autolog(frameworks=["sklearn"], max_score_rows=300)
    with mlops.start_run() as at_bound:
        at = LogisticRegression(C=0.2).fit(X, y)
    mlops.autolog(frameworks=["sklearn"], max_score_rows=None)
    with mlops.start_run() as unbounded:
        free = LogisticRegression(C=3.0).fit(X, y)
    assert scored_rows == [300, 300]
    for run, model in ((at_bound, at), (unbounded, free)):
        stored = mlops.get_run(run.run_id)
        assert stored.data.metrics["training_score"] == model.score(X, y)
        assert stored.data.tags["training_score_rows"] == "300"


def test_subsampled_score_of_a_search_over_a_pipeline_on_a_dataframe() -> None:
    pd = pytest.importorskip("pandas")
    X, y = make_classification(n_samples=240, n_features=4, random_state=2)
    frame, labels = pd.DataFrame(X, columns=list("abcd")), pd.Series(y)
    mlops.autolog(frameworks=["sklearn"], max_score_rows=60)
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    with mlops.start_run() as run:
        search = GridSearchCV(pipe, {"logisticregression__C": [0.1, 1.0]}, cv=2)
        search.fit(frame, labels)
    stored = mlops.get_run(run.run_id)
    frame_sub, labels_sub = resample(frame, labels, replace=False, n_samples=60, random_state=0)
    assert len(frame_sub) == 60
    assert stored.data.metrics["training_score"] == search.score(frame_sub, labels_sub)
    assert stored.data.tags["training_score_rows"] == "60"


def test_scores_that_are_not_a_mean_over_rows_always_use_every_row(data: Any) -> None:
    X, y = data
    mlops.autolog(frameworks=["sklearn"], max_score_rows=10)
    with mlops.start_run() as run:
        kmeans = KMeans(n_clusters=2, n_init=1, random_state=0).fit(X, y)  # -inertia: a sum
    stored = mlops.get_run(run.run_id)
    assert stored.data.metrics["training_score"] == kmeans.score(X, y)
    assert stored.data.tags["training_score_rows"] == "120"


def test_a_score_that_fails_on_the_subsample_falls_back_to_every_row(data: Any) -> None:
    X, y = data

    def fit(self: Any, X: Any, y: Any = None) -> Any:
        return self

    def score(self: Any, X: Any, y: Any) -> float:
        if len(X) < 120:
            raise ValueError("needs a class the subsample lacks")
        return 0.25

    picky = _late_class(fit)
    picky.score = score  # type: ignore[attr-defined]
    mlops.autolog(frameworks=["sklearn"], max_score_rows=50)
    with mlops.start_run() as run:
        picky().fit(X, y)
    stored = mlops.get_run(run.run_id)
    assert stored.data.metrics["training_score"] == 0.25
    assert stored.data.tags["training_score_rows"] == "120"


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "100"])
def test_max_score_rows_must_be_a_positive_int_or_none(bad: Any) -> None:
    with pytest.raises(InvalidInput, match="max_score_rows"):
        mlops.autolog(frameworks=["sklearn"], max_score_rows=bad)


def test_fit_outside_a_run_gets_its_own_finished_run(data: Any) -> None:
    X, y = data
    mlops.autolog(frameworks=["sklearn"])
    RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    RandomForestClassifier(n_estimators=4, random_state=0).fit(X, y)
    assert mlops.active_run() is None
    runs = mlops.search_runs()
    assert sorted(r.data.params["n_estimators"] for r in runs) == ["3", "4"]
    assert all(r.info.status is RunStatus.FINISHED for r in runs)


def test_pipeline_logs_once_with_nested_params(data: Any) -> None:
    X, y = data
    mlops.autolog(frameworks=["sklearn"])
    with mlops.start_run() as run:
        pipe = make_pipeline(StandardScaler(), LogisticRegression(C=2.0)).fit(X, y)
    assert len(mlops.search_runs()) == 1
    params = mlops.get_run(run.run_id).data.params
    assert params["logisticregression__C"] == "2.0"
    assert params["standardscaler__with_mean"] == "True"
    assert "logisticregression" not in params and "standardscaler" not in params  # estimators
    assert params["steps"].startswith("[('standardscaler', StandardScaler())")
    assert mlops.get_run(run.run_id).data.tags["estimator_name"] == "Pipeline"
    history = mlops.get_metric_history(run.run_id, "training_score")
    assert [p.value for p in history] == [pipe.score(X, y)]


def test_fit_transform_that_does_not_call_fit_is_logged_once(data: Any) -> None:
    X, _ = data
    mlops.autolog(frameworks=["sklearn"])
    with mlops.start_run() as run:
        PCA(n_components=2).fit_transform(X)
    stored = mlops.get_run(run.run_id)
    assert stored.data.params["n_components"] == "2"
    assert stored.data.metrics == {}  # no y: no training score
    assert len(mlops.search_runs()) == 1


def test_grid_search_best_params_score_and_child_runs(data: Any) -> None:
    X, y = data
    mlops.autolog(frameworks=["sklearn"], log_child_runs=True)
    grid = {"C": [0.1, 1.0, 10.0]}
    with mlops.start_run() as run:
        search = GridSearchCV(LogisticRegression(max_iter=200), grid, cv=3).fit(X, y)
    parent = mlops.get_run(run.run_id)
    assert parent.data.params["best_params.C"] == str(search.best_params_["C"])
    assert parent.data.params["estimator__max_iter"] == "200"
    assert parent.data.params["param_grid"] == str(grid)
    assert parent.data.metrics["best_cv_score"] == search.best_score_
    assert parent.data.metrics["training_score"] == search.score(X, y)
    children = [r for r in mlops.search_runs() if r.info.parent_run_id == run.run_id]
    assert len(children) == 3
    by_c = {r.data.params["C"]: r for r in children}
    assert set(by_c) == {"0.1", "1.0", "10.0"}
    for i, params in enumerate(search.cv_results_["params"]):
        child = by_c[str(params["C"])]
        assert child.info.parent_run_id == run.run_id
        assert child.info.status is RunStatus.FINISHED
        assert child.data.metrics["mean_test_score"] == search.cv_results_["mean_test_score"][i]
        assert child.data.metrics["rank_test_score"] == search.cv_results_["rank_test_score"][i]
    assert len(mlops.search_runs()) == 4  # the candidates' inner fits log nothing


def test_grid_search_without_child_runs(data: Any) -> None:
    X, y = data
    mlops.autolog(frameworks=["sklearn"])
    with mlops.start_run() as run:
        GridSearchCV(LogisticRegression(), {"C": [0.5, 5.0]}, cv=2).fit(X, y)
    assert len(mlops.search_runs()) == 1
    assert "best_params.C" in mlops.get_run(run.run_id).data.params


def test_install_is_idempotent_and_uninstall_restores_originals(data: Any) -> None:
    from sklearn.base import BaseEstimator as Base
    from sklearn.ensemble._forest import BaseForest

    X, y = data
    classes = (LogisticRegression, RandomForestClassifier, BaseForest, StandardScaler, PCA)
    before = {(c, m): c.__dict__.get(m) for c in classes for m in sk_autolog._METHODS}
    inherited_fit = RandomForestClassifier.fit
    assert "__init_subclass__" not in Base.__dict__

    mlops.autolog(frameworks=["sklearn"])
    patched = {(c, m): c.__dict__.get(m) for c in classes for m in sk_autolog._METHODS}
    assert patched[(LogisticRegression, "fit")] is not before[(LogisticRegression, "fit")]
    assert patched[(RandomForestClassifier, "fit")] is not None  # inherited: patched on the class
    mlops.autolog(frameworks=["sklearn"])
    assert {(c, m): c.__dict__.get(m) for c in classes for m in sk_autolog._METHODS} == patched
    with mlops.start_run() as run:
        RandomForestClassifier(n_estimators=2, random_state=0).fit(X, y)
    assert len(mlops.get_metric_history(run.run_id, "training_score")) == 1

    late_fit_calls: list[int] = []

    def late_fit(self: Any, X: Any, y: Any = None) -> Any:
        late_fit_calls.append(1)
        return self

    late = _late_class(late_fit)
    outside = _late_class(late_fit, module="my_package.models")
    assert late.__dict__["fit"] is not late_fit  # sklearn classes imported later are patched
    assert outside.__dict__["fit"] is late_fit  # other libraries' estimators are not

    assert mlops.autolog(disable=True, frameworks=["sklearn"]) == []
    after = {(c, m): c.__dict__.get(m) for c in classes for m in sk_autolog._METHODS}
    assert all(after[k] is before[k] for k in before)
    assert RandomForestClassifier.fit is inherited_fit
    assert "__init_subclass__" not in Base.__dict__
    assert late.__dict__["fit"] is late_fit


def test_disable_stops_logging(data: Any) -> None:
    X, y = data
    mlops.autolog(frameworks=["sklearn"])
    mlops.autolog(disable=True, frameworks=["sklearn"])
    with mlops.start_run() as run:
        LogisticRegression().fit(X, y)
    stored = mlops.get_run(run.run_id)
    assert stored.data.params == {} and stored.data.metrics == {} and stored.data.tags == {}
    assert mlops.get_client().list_artifacts(run.run_id) == []


def test_a_failing_hook_warns_once_and_training_goes_on(
    data: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    X, y = data
    mlops.autolog(frameworks=["sklearn"])

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("artifact store is down")

    monkeypatch.setattr(TrackingClient, "log_artifact", broken)
    with caplog.at_level(logging.WARNING, logger="prefect_mlops.autolog"):
        with mlops.start_run() as run:
            first = LogisticRegression(C=0.3).fit(X, y)
        with mlops.start_run():
            second = RandomForestClassifier(n_estimators=2, random_state=0).fit(X, y)
    assert first.predict(X).shape == (120,) and second.predict(X).shape == (120,)
    warned = _warnings(caplog, "sklearn: model")
    assert len(warned) == 1 and "artifact store is down" in warned[0].getMessage()
    stored = mlops.get_run(run.run_id)
    assert stored.data.params["C"] == "0.3" and "training_score" in stored.data.metrics


def test_user_exceptions_propagate_unchanged_and_fail_the_run(data: Any) -> None:
    X, y = data
    mlops.autolog(frameworks=["sklearn"])
    error = RuntimeError("the user's own failure")

    def failing_fit(self: Any, X: Any, y: Any = None) -> Any:
        raise error

    late = _late_class(failing_fit)
    with pytest.raises(RuntimeError) as caught:
        late().fit(X, y)
    assert caught.value is error
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LogisticRegression().fit(bad, y)
    runs = mlops.search_runs()
    assert len(runs) == 2 and all(r.info.status is RunStatus.FAILED for r in runs)
    assert mlops.active_run() is None


def test_models_off_or_too_large_are_not_logged(
    data: Any, caplog: pytest.LogCaptureFixture
) -> None:
    X, y = data
    mlops.autolog(frameworks=["sklearn"], log_models=False)
    with mlops.start_run() as off:
        LogisticRegression().fit(X, y)
    mlops.autolog(frameworks=["sklearn"], max_artifact_mb=0.0001)
    with caplog.at_level(logging.WARNING, logger="prefect_mlops.autolog"), mlops.start_run() as big:
        RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    client = mlops.get_client()
    assert client.list_artifacts(off.run_id) == []
    assert client.list_artifacts(big.run_id) == []
    assert len(_warnings(caplog, "larger than max_artifact_mb")) == 1
    assert "n_estimators" in mlops.get_run(big.run_id).data.params


def test_unknown_sklearn_version_is_skipped_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    original = LogisticRegression.__dict__["fit"]
    monkeypatch.setattr(sk_autolog, "SUPPORTED", "<1.0")
    with caplog.at_level(logging.WARNING, logger="prefect_mlops.autolog"):
        assert mlops.autolog(frameworks=["sklearn"]) == []
    assert len(_warnings(caplog, "is not a version we know")) == 1
    assert LogisticRegression.__dict__["fit"] is original
