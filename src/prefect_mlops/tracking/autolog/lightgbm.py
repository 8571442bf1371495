"""LightGBM auto-logging: params, per-iteration eval metrics, feature importance and model.

``install`` patches ``lightgbm.train`` where it is looked up (``lightgbm``,
``lightgbm.engine`` and ``lightgbm.sklearn``, so ``LGBMClassifier.fit`` and friends log too).
Each outermost training call records, to the active run (or to a run started for it and
ended after it):

- params: the params dict (``None`` left out) plus ``num_boost_round``;
- metrics ``<data name>-<metric>`` (e.g. ``valid_0-binary_logloss``) at ``step=iteration``,
  logged live by a callback reading ``env.evaluation_result_list``; ``best_iteration`` when
  early stopping chose one;
- ``feature_importance.json``: ``Booster.feature_importance(importance_type="gain")`` by
  feature name;
- the booster at ``model/model.txt`` (``log_models``; skipped past ``max_artifact_mb``).

A training started inside a logged scikit-learn fit is not logged separately.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from prefect_mlops.tracking import fluent
from prefect_mlops.tracking.autolog._common import (
    TrainPatch,
    log_model_file,
    metric_key,
    param_text,
    safe_hook,
)
from prefect_mlops.tracking.entities import Param, RunTag

LIBRARY = "lightgbm"
SUPPORTED = ">=4.0,<5"

_TARGETS = ("lightgbm.engine", "lightgbm", "lightgbm.sklearn")
#: LightGBM runs after-iteration callbacks by ``order``: early stopping is 30 and raises to
#: stop, so ours runs before it and records the last iteration too.
_CALLBACK_ORDER = 25
#: (module, its ``train`` before patching), in patch order


def install(config: Any) -> None:
    """Patch ``train`` in every module that exposes it (idempotent)."""
    _patch.install()


def uninstall() -> None:
    """Put every original ``train`` back."""
    _patch.uninstall()


def _log_params(run_id: str, bound: inspect.BoundArguments) -> None:

    values = dict(bound.arguments.get("params") or {})
    rounds = bound.signature.parameters["num_boost_round"].default
    values["num_boost_round"] = bound.arguments.get("num_boost_round", rounds)
    texts = {k: param_text(v) for k, v in values.items() if v is not None}
    client = fluent.get_client()
    client.log_batch(run_id, tags=[RunTag("mlflow.autologging", "lightgbm")])
    client.log_batch(run_id, params=[Param(k, v) for k, v in texts.items() if v is not None])


class _Callback:
    """Logs every entry of ``env.evaluation_result_list`` after each iteration."""

    def __init__(self, run_id: str) -> None:

        self.run_id = run_id
        self.client = fluent.get_client()
        self.keys: dict[tuple[str, str], str] = {}
        # an instance attribute: LightGBM sets a missing one with __dict__.setdefault
        self.order = _CALLBACK_ORDER

    def __call__(self, env: Any) -> None:
        self._log(env.iteration, env.evaluation_result_list or ())

    @safe_hook("lightgbm: metrics")
    def _log(self, iteration: int, results: Any) -> None:
        for item in results:
            data, metric, value = item[0], item[1], item[2]
            key = self.keys.get((data, metric))
            if key is None:
                key = self.keys[(data, metric)] = metric_key(data, metric)
            self.client.log_metric(self.run_id, key, value, step=iteration)


def _log_best(run_id: str, booster: Any) -> None:
    best = getattr(booster, "best_iteration", 0)
    if best and best > 0:
        fluent.log_metrics({"best_iteration": float(best)}, run_id=run_id)


def _log_importance(run_id: str, booster: Any) -> None:

    gains = booster.feature_importance(importance_type="gain")
    importance = {n: float(g) for n, g in zip(booster.feature_name(), gains, strict=True)}
    fluent.get_client().log_dict(run_id, importance, "feature_importance.json")


def _log_model(run_id: str, booster: Any) -> None:
    def write(path: Path) -> None:
        booster.save_model(str(path))

    log_model_file(run_id, write, "model.txt")


_patch = TrainPatch(
    "lightgbm",
    _TARGETS,
    _log_params,
    _Callback,
    [("best iteration", _log_best), ("feature importance", _log_importance)],
    _log_model,
)
