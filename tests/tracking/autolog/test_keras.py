"""Keras autolog: Model.fit logs params, every epoch's metrics and the model.

Keras 3 runs here on its PyTorch backend (TensorFlow, its default, is far heavier); the test is
skipped where Keras (or the backend it is set to) is not installed.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with pytest.MonkeyPatch.context() as _env:  # Keras reads its backend once, when imported
    if "KERAS_BACKEND" not in os.environ:
        _env.setenv("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")

import numpy as np

import prefect_mlops as mlops
from prefect_mlops import RunStatus, TrackingClient
from prefect_mlops.tracking.autolog import AutologConfig, installed
from prefect_mlops.tracking.autolog import keras as keras_autolog

# Keras imports absl, whose log handler takes sys.stderr at import (here: pytest's capture) and
# closes it when logging is reconfigured (Prefect does) at a moment sys.stderr is another stream
# (a CLI test's runner): that would close pytest's capture under later tests.
_absl = sys.modules.get("absl.logging")
if _absl is not None:
    _absl.get_absl_handler().python_handler.setStream(sys.__stderr__)

FRAMEWORKS = ["keras"]


@pytest.fixture
def autolog(mlops_home: Path) -> Iterator[None]:
    assert mlops.autolog(frameworks=FRAMEWORKS) == ["keras"]
    yield
    mlops.autolog(disable=True, frameworks=FRAMEWORKS)


def _model(optimizer: Any = "sgd") -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
    return model


def _data(n: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype("float32")
    return x, (x @ np.array([1.0, -2.0, 0.5], dtype="float32"))[:, None]


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


class _Recorder(keras.callbacks.Callback):
    """Keeps every epoch's ``logs`` as the callbacks before ours leave them."""

    def __init__(self) -> None:
        super().__init__()
        self.logs: list[tuple[int, dict[str, Any]]] = []

    def on_epoch_end(self, epoch, logs=None):  # type: ignore[no-untyped-def]
        self.logs.append((epoch, dict(logs or {})))


def _assert_history_logged(run_id: str, history: Any, recorder: _Recorder) -> None:
    """Every key of the History ``fit`` returned is a metric holding exactly its values, each
    at the epoch Keras reported it for (``val_*`` only at the epochs validation ran)."""
    assert [epoch for epoch, _ in recorder.logs] == history.epoch
    assert set(mlops.get_run(run_id).data.metrics) == set(history.history)
    for key, values in history.history.items():
        points = mlops.get_metric_history(run_id, key)
        assert [p.value for p in points] == values
        assert [p.step for p in points] == [e for e, logs in recorder.logs if key in logs]


def test_fit_logs_params_epoch_metrics_and_model(autolog: None, tmp_path: Path) -> None:
    x, y = _data()
    x_val, y_val = _data(8, seed=1)
    recorder = _Recorder()
    user_callbacks = [recorder]
    model = _model(keras.optimizers.SGD(learning_rate=0.05))
    with mlops.start_run() as run:
        history = model.fit(
            x,
            y,
            epochs=3,
            batch_size=8,
            verbose=0,
            validation_data=(x_val, y_val),
            callbacks=user_callbacks,
        )
    assert user_callbacks == [recorder]  # the caller's list is not modified
    stored = mlops.get_run(run.run_id)
    assert stored.info.status is RunStatus.FINISHED
    assert stored.data.params == {
        "epochs": "3",
        "batch_size": "8",
        "validation_split": "0.0",
        "shuffle": "True",
        "initial_epoch": "0",
        "validation_freq": "1",
        "optimizer_name": "SGD",
        "learning_rate": "0.05",
    }
    assert stored.data.tags == {"mlflow.autologging": "keras"}
    assert set(history.history) == {"loss", "mae", "val_loss", "val_mae"}
    assert history.epoch == [0, 1, 2]
    _assert_history_logged(run.run_id, history, recorder)
    assert stored.data.metrics["val_loss"] == history.history["val_loss"][-1]

    path = mlops.download_artifacts(run.run_id, "model/model.keras", tmp_path / "dl")
    reloaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(reloaded.predict(x_val, verbose=0)),
        keras.ops.convert_to_numpy(model.predict(x_val, verbose=0)),
    )


def test_positional_callbacks_and_a_run_of_its_own(autolog: None) -> None:
    x, y = _data()
    recorder = _Recorder()
    history = _model().fit(x, y, 8, 2, 0, [recorder])  # batch_size, epochs, verbose, callbacks
    assert mlops.active_run() is None  # the run fit started is ended with it
    (run,) = mlops.search_runs()
    assert run.info.status is RunStatus.FINISHED
    assert run.data.params["batch_size"] == "8"
    assert run.data.params["epochs"] == "2"
    assert run.data.params["learning_rate"] == "0.01"  # SGD's default, not 0.009999999776...
    assert history.epoch == [0, 1]
    _assert_history_logged(run.info.run_id, history, recorder)
    assert len(mlops.get_client().list_artifacts(run.info.run_id, "model")) == 1


def test_learning_rate_validation_freq_and_initial_epoch(mlops_home: Path) -> None:
    x, y = _data()
    mlops.autolog(frameworks=FRAMEWORKS, log_models=False)
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch, rate: 0.1 / (epoch + 1))
    recorder = _Recorder()
    with mlops.start_run() as run:
        history = _model().fit(
            x,
            y,
            epochs=5,
            initial_epoch=1,
            verbose=0,
            validation_split=0.25,
            validation_freq=2,
            callbacks=(schedule, recorder),
        )
    assert history.epoch == [1, 2, 3, 4]  # Keras counts from initial_epoch
    assert len(history.history["val_loss"]) == 2  # validation every 2nd epoch
    assert history.history["learning_rate"] == pytest.approx([0.05, 0.1 / 3, 0.025, 0.02])
    _assert_history_logged(run.run_id, history, recorder)
    assert [p.step for p in mlops.get_metric_history(run.run_id, "learning_rate")] == [1, 2, 3, 4]
    assert [p.step for p in mlops.get_metric_history(run.run_id, "val_loss")] == [1, 3]
    params = mlops.get_run(run.run_id).data.params
    assert params["initial_epoch"] == "1"
    assert params["validation_split"] == "0.25"
    assert params["validation_freq"] == "2"
    assert "batch_size" not in params  # not given: Keras' default is not guessed
    assert mlops.get_client().list_artifacts(run.run_id) == []  # log_models=False

    decay = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.9)
    with mlops.start_run() as scheduled:
        _model(keras.optimizers.Adam(decay)).fit(x, y, epochs=1, verbose=0)
    params = mlops.get_run(scheduled.run_id).data.params
    assert params["optimizer_name"] == "Adam"
    assert params["learning_rate_schedule"] == "ExponentialDecay"
    assert "learning_rate" not in params


def test_install_is_idempotent_and_uninstall_restores(mlops_home: Path) -> None:
    had_own = "fit" in keras.Model.__dict__
    original = keras.Model.fit
    mlops.autolog(frameworks=FRAMEWORKS)
    patched = keras.Model.fit
    assert mlops.autolog(frameworks=FRAMEWORKS) == ["keras"]
    keras_autolog.install(AutologConfig())
    assert installed() == ["keras"]
    assert keras.Model.fit is patched
    assert keras.Model.fit.__prefect_mlops_original__ is original
    x, y = _data()
    with mlops.start_run() as run:
        _model().fit(x, y, epochs=3, verbose=0)
    assert [p.step for p in mlops.get_metric_history(run.run_id, "loss")] == [0, 1, 2]  # once

    mlops.autolog(disable=True, frameworks=FRAMEWORKS)
    assert keras.Model.fit is original
    assert ("fit" in keras.Model.__dict__) is had_own


def test_disable_stops_logging(mlops_home: Path) -> None:
    x, y = _data()
    mlops.autolog(frameworks=FRAMEWORKS)
    kept = keras.Model.fit  # a reference taken while enabled stops logging too
    mlops.autolog(disable=True, frameworks=FRAMEWORKS)
    with mlops.start_run() as run:
        _model().fit(x, y, epochs=2, verbose=0)
        kept(_model(), x, y, epochs=2, verbose=0)
    stored = mlops.get_run(run.run_id)
    assert stored.data.params == {} and stored.data.metrics == {}
    assert mlops.get_client().list_artifacts(run.run_id) == []
    assert len(mlops.search_runs()) == 1


def test_a_failing_hook_warns_once_and_training_goes_on(
    mlops_home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    x, y = _data()
    unlogged = _model()
    expected = unlogged.fit(x, y, epochs=3, batch_size=8, verbose=0).history
    mlops.autolog(frameworks=FRAMEWORKS)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("metric store is down")

    monkeypatch.setattr(TrackingClient, "log_metric", broken)
    with caplog.at_level(logging.WARNING, logger="prefect_mlops.autolog"), mlops.start_run() as run:
        models, histories = [], []
        for _ in range(2):
            models.append(_model())
            histories.append(models[-1].fit(x, y, epochs=3, batch_size=8, verbose=0).history)
    assert histories == [expected, expected]
    for model in models:
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(model.predict(x, verbose=0)),
            keras.ops.convert_to_numpy(unlogged.predict(x, verbose=0)),
        )
    warned = _warnings(caplog, "keras: metrics")
    assert len(warned) == 1 and "metric store is down" in warned[0].getMessage()
    assert len(_warnings(caplog, "prefect-mlops autolog")) == 1
    stored = mlops.get_run(run.run_id)
    assert stored.data.params["epochs"] == "3"  # the other hooks still ran
    assert stored.data.metrics == {}


def test_user_exceptions_propagate_unchanged_and_fail_the_run(autolog: None) -> None:
    x, y = _data()
    error = KeyError("the user's own failure")

    class Failing(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):  # type: ignore[no-untyped-def]
            if epoch == 2:
                raise error

    with pytest.raises(KeyError) as caught:
        _model().fit(x, y, epochs=4, verbose=0, callbacks=[Failing()])
    assert caught.value is error
    with pytest.raises(TypeError):
        _model().fit(x, y, not_an_argument=1)
    (run,) = mlops.search_runs()  # the bad call started no run
    assert run.info.status is RunStatus.FAILED
    assert [p.step for p in mlops.get_metric_history(run.info.run_id, "loss")] == [0, 1]
    assert mlops.active_run() is None


def test_unknown_keras_version_is_skipped_with_one_warning(
    mlops_home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    original = keras.Model.fit
    monkeypatch.setattr(keras_autolog, "SUPPORTED", "<1.0")
    with caplog.at_level(logging.WARNING, logger="prefect_mlops.autolog"):
        assert mlops.autolog(frameworks=FRAMEWORKS) == []
    assert len(_warnings(caplog, "is not a version we know")) == 1
    assert keras.Model.fit is original
