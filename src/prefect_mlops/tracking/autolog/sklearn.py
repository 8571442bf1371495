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
- tags: ``estimator_name``, ``estimator_class`` and ``mlflow.autologging``;
- metric ``training_score``: ``estimator.score(X, y)`` when ``y`` is given and it has ``score``;
- the fitted estimator pickled at ``model/model.pkl`` (``log_models``; skipped past
  ``max_artifact_mb``);
- for ``GridSearchCV``/``RandomizedSearchCV``: params ``best_params.<name>``, metric
  ``best_cv_score`` and, with ``log_child_runs``, one finished child run per candidate with its
  params and ``mean_test_*``/``std_test_*``/``rank_test_*`` scores.

The helpers shared by the framework integrations (`training_session`, `open_run`,
`close_run`, `log_model_file`, `param_text`, `metric_key`) live here too; ``xgboost.py`` and
``lightgbm.py`` import them.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import pickle
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect_mlops.tracking.autolog._common import safe_hook

LIBRARY = "sklearn"
DISTRIBUTIONS = ("scikit-learn",)
SUPPORTED = ">=1.3,<2"

logger = logging.getLogger("prefect_mlops.autolog")

# -- shared by the integrations ----------------------------------------------------------------

_MB = 1024 * 1024
_ORIGINAL = "__prefect_mlops_original__"
_session_lock = threading.Lock()
_session_depth = 0
_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-./ ]")


@contextmanager
def training_session() -> Iterator[bool]:
    """Mark a training call; yields True only for the outermost one in the process.

    Process-wide rather than per thread: a meta-estimator may train its inner models in
    worker threads, and those must not log to the run the outer call logs to. Two separate
    trainings running at once in two threads therefore log only the first; the fluent API's
    active run is process-wide too, so both would otherwise write to one run.
    """
    global _session_depth
    with _session_lock:
        outermost = _session_depth == 0
        _session_depth += 1
    try:
        yield outermost
    finally:
        with _session_lock:
            _session_depth -= 1


def call_safely(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` under `safe_hook` ``name``: None (and one warning) on failure."""
    return safe_hook(name)(fn)(*args, **kwargs)


@dataclass(frozen=True)
class TrainingRun:
    """The run a training call logs to; ``owned`` when autolog started it for this call."""

    run_id: str
    owned: bool


def _open_run() -> TrainingRun:
    from prefect_mlops.tracking import fluent

    run_id = fluent._current_run_id(create=False)
    if run_id:
        return TrainingRun(run_id, False)
    return TrainingRun(fluent.start_run().run_id, True)


def open_run(integration: str) -> TrainingRun | None:
    """The active run (in a flow, the flow run's run); with none, a new run that `close_run`
    ends, as MLflow's autolog does. None if that failed (the failure is logged once)."""
    run: TrainingRun | None = call_safely(f"{integration}: start run", _open_run)
    return run


def _close_run(run: TrainingRun, error: BaseException | None) -> None:
    if not run.owned:
        return
    from prefect_mlops.tracking import fluent
    from prefect_mlops.tracking.entities import RunStatus

    if error is None:
        status = RunStatus.FINISHED
    elif isinstance(error, KeyboardInterrupt):
        status = RunStatus.KILLED
    else:
        status = RunStatus.FAILED
    fluent.end_run(status, run_id=run.run_id)


def close_run(integration: str, run: TrainingRun, error: BaseException | None = None) -> None:
    """End ``run`` if autolog started it: FINISHED, or FAILED/KILLED after ``error``."""
    call_safely(f"{integration}: end run", _close_run, run, error)


def param_text(value: Any) -> str | None:
    """How a param value is stored, or None to leave it out (too long for a param)."""
    from prefect_mlops.tracking.validation import MAX_PARAM_VALUE_LENGTH, stringify

    text = stringify(value)
    return text if len(text) <= MAX_PARAM_VALUE_LENGTH else None


def metric_key(data: str, metric: str) -> str:
    """``<data>-<metric>``, any character a metric key may not hold (``@``) replaced by ``_``."""
    return _BAD_KEY_CHARS.sub("_", f"{data}-{metric}")


def log_model_file(run_id: str, write: Callable[[Path], None], filename: str) -> bool:
    """``write(path)`` a model file in a temporary folder and log it as ``model/<filename>``,
    unless it is larger than ``max_artifact_mb``. True if it was logged."""
    from prefect_mlops.tracking import fluent
    from prefect_mlops.tracking.autolog import current_config

    limit_mb = current_config().max_artifact_mb
    with tempfile.TemporaryDirectory(prefix="mlops-autolog-") as tmp:
        path = Path(tmp) / filename
        write(path)
        size_mb = os.path.getsize(path) / _MB
        if size_mb > limit_mb:
            logger.warning(
                "prefect-mlops autolog: the model (%.1f MB) is larger than max_artifact_mb "
                "(%g MB); it is not logged.",
                size_mb,
                limit_mb,
            )
            return False
        fluent.get_client().log_artifact(run_id, path, "model")
    return True


# -- scikit-learn --------------------------------------------------------------------------------

_METHODS = ("fit", "fit_transform", "fit_predict")
_SEARCH_SCORE_PREFIXES = ("mean_test_", "std_test_", "rank_test_")

#: (class, method name, the class's own attribute before patching or _MISSING), in patch order
_patches: list[tuple[type, str, Any]] = []
_MISSING = object()
_hook_installed = False
_prev_init_subclass: Any = _MISSING
_patch_lock = threading.RLock()
_active = False
_signatures: dict[Callable[..., Any], inspect.Signature] = {}


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
        while _patches:
            cls, name, previous = _patches.pop()
            if previous is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, previous)
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
        own = cls.__dict__.get(name, _MISSING)
        if own is not _MISSING and getattr(own, _ORIGINAL, None) is not None:
            continue  # already patched
        _patches.append((cls, name, own))
        setattr(cls, name, _patched(original))


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
    from prefect_mlops.tracking import fluent
    from prefect_mlops.tracking.entities import Param, RunTag

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
    from prefect_mlops.tracking import fluent

    score = float(estimator.score(x, y))
    fluent.get_client().log_metric(run_id, "training_score", score)


def _log_search(run_id: str, estimator: Any) -> None:
    results = getattr(estimator, "cv_results_", None)
    if not isinstance(results, Mapping):
        return
    from prefect_mlops.tracking import fluent
    from prefect_mlops.tracking.entities import Param

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
    from prefect_mlops.core.ids import now_ms
    from prefect_mlops.tracking import fluent
    from prefect_mlops.tracking.entities import Metric, Param, RunStatus

    client = fluent.get_client()
    experiment_id = client.store.get_run_info(run_id).experiment_id
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
