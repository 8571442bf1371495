"""Keras autolog: Model.fit logs every epoch's metrics (skipped where Keras is not installed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

keras = pytest.importorskip("keras")

import numpy as np  # noqa: E402

import prefect_mlops as mlops  # noqa: E402
from prefect_mlops.tracking.autolog import AutologConfig, installed  # noqa: E402
from prefect_mlops.tracking.autolog import keras as keras_autolog  # noqa: E402

FRAMEWORKS = ["keras"]


@pytest.fixture
def autolog(mlops_home: Path) -> Iterator[None]:
    assert mlops.autolog(frameworks=FRAMEWORKS) == ["keras"]
    yield
    mlops.autolog(disable=True, frameworks=FRAMEWORKS)


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    return model


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    return x, (x @ np.array([1.0, -2.0, 0.5], dtype="float32"))[:, None]


class _Counter(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):  # type: ignore[no-untyped-def]
        self.epochs += 1


def test_fit_logs_each_epoch(autolog: None) -> None:
    x, y = _data()
    counter = _Counter()
    user_callbacks = [counter]
    with mlops.start_run() as run:
        history = _model().fit(
            x,
            y,
            epochs=3,
            batch_size=8,
            verbose=0,
            validation_split=0.25,
            callbacks=user_callbacks,
        )
    assert user_callbacks == [counter] and counter.epochs == 3  # the caller's list untouched
    client = mlops.get_client()
    for key in ("loss", "mae", "val_loss", "val_mae"):
        points = client.get_metric_history(run.run_id, key)
        assert list(points.steps) == [0, 1, 2]
        assert list(points.values) == pytest.approx(history.history[key], rel=1e-6)


def test_fit_with_positional_callbacks_and_without_a_run(autolog: None) -> None:
    x, y = _data()
    model = _model()
    model.fit(x, y, 8, 2, 0, [])  # batch_size, epochs, verbose, callbacks by position
    active = mlops.active_run()
    assert active is not None  # like log_metric, fit starts a run when none is active
    assert list(mlops.get_metric_history(active.run_id, "loss").steps) == [0, 1]
    mlops.end_run()


def test_install_is_idempotent_and_uninstall_restores(mlops_home: Path) -> None:
    had_own = "fit" in keras.Model.__dict__
    original = keras.Model.fit
    mlops.autolog(frameworks=FRAMEWORKS)
    mlops.autolog(frameworks=FRAMEWORKS)
    keras_autolog.install(AutologConfig())
    assert installed() == ["keras"]
    assert keras.Model.fit.__prefect_mlops_original__ is original
    mlops.autolog(disable=True, frameworks=FRAMEWORKS)
    assert keras.Model.fit is original
    assert ("fit" in keras.Model.__dict__) is had_own

    x, y = _data()
    with mlops.start_run() as run:  # disabled: nothing logged
        _model().fit(x, y, epochs=1, verbose=0)
    assert mlops.get_run(run.run_id).data.metrics == {}
