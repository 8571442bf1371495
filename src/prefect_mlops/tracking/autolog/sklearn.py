"""scikit-learn auto-logging: params, training score, model and search results of every fit.

``install`` patches ``fit``, ``fit_transform`` and ``fit_predict`` on every scikit-learn
estimator class (the ``BaseEstimator`` subclasses defined in ``sklearn.*`` modules): the classes
already imported at install time, and, through a hook on ``BaseEstimator.__init_subclass__``,
those imported later, so enabling autolog costs no import of scikit-learn's hundreds of modules.
Only the outermost training call logs: a Pipeline's (or a search's) inner fits, and any
XGBoost or LightGBM training they run, are not logged separately.

What one fit records, to the active run (or to a run started for it and ended after it, as
MLflow's autolog does):

- params: ``get_params(deep=True)``, stringified; values that are estimators themselves, or
  whose text is longer than a param may be, are left out;
- tags: ``estimator_name``, ``estimator_class``, ``mlflow.autologging`` and, with the score,
  ``training_score_rows``;
- metric ``training_score``: ``estimator.score(X, y)`` when ``y`` is given and it has ``score``;
  for a classifier or regressor (or a pipeline or search ending in one) trained on more than
  ``max_score_rows`` rows (an `autolog` option, 10,000 by default), on a seeded random
  subsample of that many rows instead, since scoring costs a prediction over every row scored
  (2-3% of a random forest's fit on the full set); tag ``training_score_rows`` says how many
  rows were scored;
- the fitted estimator pickled at ``model/model.pkl`` (``log_models``; skipped past
  ``max_artifact_mb``);
- for ``GridSearchCV``/``RandomizedSearchCV``: params ``best_params.<name>``, metric
  ``best_cv_score`` and, with ``log_child_runs``, one finished child run per candidate with its
  params and ``mean_test_*``/``std_test_*``/``rank_test_*`` scores.

"""

from __future__ import annotations

import functools
import inspect
import logging
import pickle
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from prefect_mlops.core.ids import now_ms
from prefect_mlops.tracking import fluent
from prefect_mlops.tracking.autolog._common import (
    AttributePatches,
    call_safely,
    close_run,
    log_model_file,
    open_run,
    param_text,
    training_session,
)
from prefect_mlops.tracking.entities import Metric, Param, RunStatus, RunTag

LIBRARY = "sklearn"
DISTRIBUTIONS = ("scikit-learn",)
SUPPORTED = ">=1.3,<2"

logger = logging.getLogger("prefect_mlops.autolog")

_ORIGINAL = "__prefect_mlops_original__"

_METHODS = ("fit", "fit_transform", "fit_predict")
_SEARCH_SCORE_PREFIXES = ("mean_test_", "std_test_", "rank_test_")

_patches = AttributePatches(_ORIGINAL)
_MISSING = object()
_hook_installed = False
_prev_init_subclass: Any = _MISSING
_patch_lock = threading.RLock()
_active = False
_signatures: dict[Callable[..., Any], inspect.Signature] = {}

#: tag on a run with a ``training_score``: how many training rows it was computed on
SCORE_ROWS_TAG = "training_score_rows"
#: seed of the subsample ``training_score`` uses past ``max_score_rows`` (reproducible figures)
SCORE_SEED = 0


def install(config: Any) -> None:
    """Patch every scikit-learn estimator class loaded now, and any loaded later."""
    global _active
    from sklearn.base import BaseEstimator

    with _patch_lock:
        if _hook_installed:
            _active = True
            return
        try:
            _install_subclass_hook(BaseEstimator)
            for cls in _subclasses(BaseEstimator):
                _patch_class(cls)
        except BaseException:
            uninstall()  # all or nothing
            raise
        _active = True


def uninstall() -> None:
    """Restore every patched method and ``BaseEstimator.__init_subclass__`` as they were."""
    global _active, _hook_installed, _prev_init_subclass
    with _patch_lock:
        _active = False
        _patches.restore()
        if not _hook_installed:
            return
        from sklearn.base import BaseEstimator

        if _prev_init_subclass is _MISSING:
            del BaseEstimator.__init_subclass__
        else:
            BaseEstimator.__init_subclass__ = _prev_init_subclass
        _prev_init_subclass = _MISSING
        _hook_installed = False


def _subclasses(root: type) -> list[type]:
    seen: dict[type, None] = {}
    todo: list[type] = [root]
    while todo:
        subs: list[type] = todo.pop().__subclasses__()
        for sub in subs:
            if sub not in seen:
                seen[sub] = None
                todo.append(sub)
    return list(seen)


def _install_subclass_hook(base: type) -> None:
    """Patch scikit-learn estimator classes as their modules are imported."""
    global _hook_installed, _prev_init_subclass
    _prev_init_subclass = base.__dict__.get("__init_subclass__", _MISSING)

    def __init_subclass__(cls: type, **kwargs: Any) -> None:
        super(base, cls).__init_subclass__(**kwargs)  # type: ignore[arg-type]
        with _patch_lock:
            if _hook_installed:
                call_safely("sklearn: patch", _patch_class, cls)

    base.__init_subclass__ = classmethod(__init_subclass__)  # type: ignore[assignment]
    _hook_installed = True


def _patch_class(cls: type) -> None:
    """Give ``cls`` its own logging ``fit``/``fit_transform``/``fit_predict``."""
    if not cls.__module__.startswith("sklearn."):
        return
    for name in _METHODS:
        current = inspect.getattr_static(cls, name, None)
        if not inspect.isfunction(current):  # absent, or a descriptor such as available_if
            continue
        original = getattr(current, _ORIGINAL, current)
        _patches.apply(cls, name, functools.partial(_patched_instead, original), own_only=True)


def _patched_instead(original: Callable[..., Any], inherited: Any) -> Callable[..., Any]:
    """A logging wrapper of ``original`` for a class whose method is now ``inherited``."""
    return _patched(original)


def _patched(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        with training_session() as outermost:
            if not (outermost and _active):
                return original(self, *args, **kwargs)
            run = open_run("sklearn")
            if run is None:
                return original(self, *args, **kwargs)
            call_safely("sklearn: params", _log_params, run.run_id, self)
            try:
                result = original(self, *args, **kwargs)
            except BaseException as exc:
                close_run("sklearn", run, exc)
                raise
            call_safely("sklearn: score", _log_score, run.run_id, self, original, args, kwargs)
            call_safely("sklearn: search", _log_search, run.run_id, self)
            if _config().log_models:
                call_safely("sklearn: model", _log_model, run.run_id, self)
            close_run("sklearn", run)
            return result

    setattr(patched, _ORIGINAL, original)
    return patched


def _config() -> Any:
    from prefect_mlops.tracking.autolog import current_config

    return current_config()


def _is_estimator(value: Any) -> bool:
    return not isinstance(value, type) and callable(getattr(value, "get_params", None))


def estimator_params(estimator: Any) -> dict[str, str]:
    """``get_params(deep=True)`` as stored: estimators and over-long values left out."""
    params = {}
    for key, value in estimator.get_params(deep=True).items():
        if _is_estimator(value):
            continue
        text = param_text(value)
        if text is not None:
            params[key] = text
    return params


def _log_params(run_id: str, estimator: Any) -> None:

    cls = type(estimator)
    tags = {
        "estimator_name": cls.__name__,
        "estimator_class": f"{cls.__module__}.{cls.__qualname__}",
        "mlflow.autologging": "sklearn",
    }
    client = fluent.get_client()
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    params = estimator_params(estimator)
    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    sig = _signatures.get(fn)
    if sig is None:
        sig = _signatures[fn] = inspect.signature(fn)
    return sig


def _log_score(
    run_id: str,
    estimator: Any,
    original: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> None:
    sig = _signature(original)
    names = list(sig.parameters)
    if (
        len(names) < 2
        or "y" not in sig.parameters
        or not callable(getattr(estimator, "score", None))
    ):
        return
    bound = sig.bind_partial(estimator, *args, **kwargs).arguments
    x, y = bound.get(names[1]), bound.get("y")
    if x is None or y is None:
        return

    rows = _num_rows(x)
    limit = _config().max_score_rows
    sample = score_sample(estimator, x, y, rows, limit)
    score: float | None = None
    if sample is not None:
        try:
            score, rows = float(estimator.score(*sample)), limit
        except Exception:  # e.g. a scorer that needs a class the subsample happens to miss
            score = None
    if score is None:
        score = float(estimator.score(x, y))
    client = fluent.get_client()
    client.log_metric(run_id, "training_score", score)
    if rows is not None:
        client.log_batch(run_id, tags=[RunTag(SCORE_ROWS_TAG, str(rows))])


def _num_rows(x: Any) -> int | None:
    shape = getattr(x, "shape", None)
    try:
        return int(shape[0]) if shape is not None and len(shape) > 0 else len(x)
    except TypeError:
        return None


def score_sample(
    estimator: Any, x: Any, y: Any, rows: int | None, limit: int | None
) -> tuple[Any, Any] | None:
    """A seeded random subsample of ``limit`` training rows to compute ``training_score`` on,
    or None to score all ``rows``.

    A classifier's or regressor's score is a mean over rows (accuracy, R², a search's scorer),
    so past ``limit`` rows a subsample estimates it at a bounded cost. Other estimators' scores
    may be sums over rows (``KMeans``, ``KernelDensity``): those always score every row.
    """
    if limit is None or rows is None or rows <= limit:
        return None
    from sklearn.base import is_classifier, is_regressor

    if not (is_classifier(estimator) or is_regressor(estimator)):
        return None
    from sklearn.utils import resample

    x_sub, y_sub = resample(x, y, replace=False, n_samples=limit, random_state=SCORE_SEED)
    return x_sub, y_sub


def _log_search(run_id: str, estimator: Any) -> None:
    results = getattr(estimator, "cv_results_", None)
    if not isinstance(results, Mapping):
        return

    client = fluent.get_client()
    best = getattr(estimator, "best_params_", None)
    if isinstance(best, Mapping):
        params = {f"best_params.{k}": param_text(v) for k, v in best.items()}
        client.log_batch(run_id, params=[Param(k, v) for k, v in params.items() if v is not None])
    best_score = getattr(estimator, "best_score_", None)
    if best_score is not None:
        client.log_metric(run_id, "best_cv_score", float(best_score))
    if _config().log_child_runs:
        _log_candidates(run_id, estimator, results)


def _log_candidates(run_id: str, estimator: Any, results: Mapping[str, Any]) -> None:
    """One finished child run per candidate: its params and cross-validation scores."""

    client = fluent.get_client()
    experiment_id = client.get_run_info(run_id).experiment_id
    keys = [k for k in results if k.startswith(_SEARCH_SCORE_PREFIXES)]
    cls = type(estimator)
    tags = {"mlflow.autologging": "sklearn", "estimator_name": cls.__name__}
    for i, candidate in enumerate(results["params"]):
        child = client.create_run(
            experiment_id, run_name=f"candidate-{i}", tags=tags, parent_run_id=run_id
        ).info.run_id
        now = now_ms()
        metrics = [Metric(k, float(results[k][i]), now, 0) for k in keys]
        texts = {k: param_text(v) for k, v in candidate.items()}
        params = [Param(k, v) for k, v in texts.items() if v is not None]
        client.log_batch(child, metrics=metrics, params=params)
        client.set_terminated(child, RunStatus.FINISHED)


def _log_model(run_id: str, estimator: Any) -> None:
    def write(path: Path) -> None:
        with open(path, "wb") as out:
            pickle.dump(estimator, out, protocol=pickle.HIGHEST_PROTOCOL)

    log_model_file(run_id, write, "model.pkl")
