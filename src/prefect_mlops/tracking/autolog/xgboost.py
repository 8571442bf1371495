"""XGBoost auto-logging: params, per-iteration eval metrics, feature importance and model.

``install`` patches ``xgboost.train`` where it is looked up (``xgboost``, ``xgboost.training``
and ``xgboost.sklearn``, so ``XGBClassifier.fit`` and friends log too). Each outermost
training call records, to the active run (or to a run started for it and ended after it):

- params: the booster params (``None`` left out) plus ``num_boost_round`` and, when set,
  ``early_stopping_rounds`` and ``maximize``;
- metrics ``<eval name>-<metric>`` (e.g. ``validation_0-logloss``) at ``step=iteration``,
  logged live by a ``TrainingCallback``; ``best_iteration``/``best_score`` after early stopping;
- ``feature_importance.json``: ``Booster.get_score(importance_type="gain")``;
- the booster at ``model/model.json`` (``log_models``; skipped past ``max_artifact_mb``).

A training started inside a logged scikit-learn fit (``GridSearchCV(XGBClassifier())``)
is not logged separately.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
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

LIBRARY = "xgboost"
SUPPORTED = ">=2.0,<4"

_TARGETS = ("xgboost.training", "xgboost", "xgboost.sklearn")
#: (module, its ``train`` before patching), in patch order


def install(config: Any) -> None:
    """Patch ``train`` in every module that exposes it (idempotent)."""
    _patch.install()


def uninstall() -> None:
    """Put every original ``train`` back."""
    _patch.uninstall()


def _param_items(params: Any) -> Iterable[tuple[str, Any]]:
    """XGBoost takes a dict or a list of pairs (a key may repeat, e.g. ``eval_metric``)."""
    if params is None:
        return []
    if isinstance(params, dict):
        return params.items()
    grouped: dict[str, list[Any]] = {}
    for key, value in params:
        grouped.setdefault(key, []).append(value)
    return [(k, v[0] if len(v) == 1 else v) for k, v in grouped.items()]


def _log_params(run_id: str, bound: inspect.BoundArguments) -> None:

    values = dict(_param_items(bound.arguments.get("params")))
    rounds = bound.signature.parameters["num_boost_round"].default
    values["num_boost_round"] = bound.arguments.get("num_boost_round", rounds)
    for name in ("early_stopping_rounds", "maximize"):
        values[name] = bound.arguments.get(name)
    texts = {k: param_text(v) for k, v in values.items() if v is not None}
    client = fluent.get_client()
    client.log_batch(run_id, tags=[RunTag("mlflow.autologging", "xgboost")])
    client.log_batch(run_id, params=[Param(k, v) for k, v in texts.items() if v is not None])


def _callback(run_id: str) -> Any:
    """A ``TrainingCallback`` logging every eval metric after each iteration."""
    from xgboost.callback import TrainingCallback

    client = fluent.get_client()
    keys: dict[tuple[str, str], str] = {}

    @safe_hook("xgboost: metrics")
    def log(epoch: int, evals_log: dict[str, dict[str, Any]]) -> None:
        for data, metrics in evals_log.items():
            for metric, history in metrics.items():
                key = keys.get((data, metric))
                if key is None:
                    key = keys[(data, metric)] = metric_key(data, metric)
                value = history[-1]
                if isinstance(value, tuple):  # (mean, std) from xgboost.cv
                    value = value[0]
                client.log_metric(run_id, key, value, step=epoch)

    class PrefectMlopsCallback(TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            log(epoch, evals_log)
            return False

    return PrefectMlopsCallback()


def _log_best(run_id: str, booster: Any) -> None:
    best_iteration = booster.attr("best_iteration")
    if best_iteration is None:
        return

    metrics = {"best_iteration": float(best_iteration)}
    best_score = booster.attr("best_score")
    if best_score is not None:
        metrics["best_score"] = float(best_score)
    fluent.log_metrics(metrics, run_id=run_id)


def _log_importance(run_id: str, booster: Any) -> None:

    importance = booster.get_score(importance_type="gain")
    fluent.get_client().log_dict(run_id, importance, "feature_importance.json")


def _log_model(run_id: str, booster: Any) -> None:
    def write(path: Path) -> None:
        booster.save_model(str(path))

    log_model_file(run_id, write, "model.json")


_patch = TrainPatch(
    "xgboost",
    _TARGETS,
    _log_params,
    _callback,
    [("best iteration", _log_best), ("feature importance", _log_importance)],
    _log_model,
)
