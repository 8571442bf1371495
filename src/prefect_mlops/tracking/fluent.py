"""The module-level API: MLflow's names, aware of the active run and of Prefect.

Which run a call logs to, in order:

1. a run opened with `start_run` in this flow run (or outside any flow) — the innermost one;
2. inside a Prefect flow or task, the run bound to that flow run (created on first use);
3. otherwise a run started on the spot, as MLflow does, ended at interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from prefect_mlops.core.errors import InvalidInput, NotFound
from prefect_mlops.core.lazy import Lazy
from prefect_mlops.core.settings import get_settings
from prefect_mlops.tracking import runtime
from prefect_mlops.tracking.client import DEFAULT_EXPERIMENT, TrackingClient
from prefect_mlops.tracking.entities import (
    Experiment,
    FileInfo,
    Histogram,
    MetricHistory,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
    SavedSearch,
    ViewType,
)
from prefect_mlops.tracking.search.compare import RunComparison

_client: Lazy[TrackingClient] = Lazy(TrackingClient)
_experiment_name: str | None = None
_auto_run_exit_hook = False


@dataclass
class _Frame:
    run_id: str
    flow_run_id: str | None


_stack: list[_Frame] = []
_stack_lock = threading.RLock()


def get_client() -> TrackingClient:
    """The client the fluent API uses (built from settings on first use)."""
    return _client.get()


def reset() -> None:
    """End open runs and forget the client, experiment and bindings (used by tests)."""
    global _experiment_name
    _end_all_runs()
    client = _client.reset()
    if client is not None:
        client.flush()
    _experiment_name = None
    runtime.reset()


def current_experiment_name() -> str | None:
    """The experiment chosen with `set_experiment`, or None."""
    return _experiment_name


def _in_flow_run() -> str | None:
    return runtime.hooks.current_flow_run_id()


def _bound_run_id(flow_run_id: str, experiment: str | None) -> str:
    bind = runtime.hooks.bound_run_id
    if bind is None:
        raise InvalidInput(
            f"Flow run {flow_run_id} has no tracking integration registered; "
            "import prefect_mlops to register it."
        )
    return bind(get_client(), flow_run_id, experiment)


class ActiveRun:
    """The run opened by `start_run`; ends it (FINISHED, or FAILED on an exception) on exit."""

    def __init__(self, run: Run) -> None:
        self._run = run

    @property
    def info(self) -> RunInfo:
        return self._run.info

    @property
    def data(self) -> RunData:
        return self._run.data

    @property
    def run_id(self) -> str:
        return self._run.info.run_id

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with _stack_lock:
            active = any(f.run_id == self.run_id for f in _stack)
        if active:
            end_run(RunStatus.after(exc), run_id=self.run_id)

    def __repr__(self) -> str:
        return f"<ActiveRun {self.info.run_name!r} {self.run_id}>"


def set_experiment(
    experiment_name: str | None = None, experiment_id: str | None = None
) -> Experiment:
    """Use (and create if needed) this experiment for runs started from now on."""
    global _experiment_name
    client = get_client()
    if experiment_id is not None:
        experiment = client.get_experiment(experiment_id)
    elif experiment_name is not None:
        experiment = client.get_or_create_experiment(experiment_name)
    else:
        raise InvalidInput("set_experiment needs experiment_name or experiment_id.")
    _experiment_name = experiment.name
    return experiment


def _resolve_experiment(experiment: str | None) -> Experiment:
    client = get_client()
    name = experiment or _experiment_name or get_settings().experiment
    return client.get_or_create_experiment(name or DEFAULT_EXPERIMENT)


def start_run(
    run_id: str | None = None,
    run_name: str | None = None,
    experiment: str | None = None,
    tags: Mapping[str, Any] | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
    description: str | None = None,
) -> ActiveRun:
    """Start (or resume, with ``run_id``) a run and make it active.

    Inside a Prefect flow the new run is nested under the flow's run. Outside one, starting a
    run while another is active needs ``nested=True``, as in MLflow.
    """
    client = get_client()
    flow_run_id = _in_flow_run()
    runtime.run_starting()
    with _stack_lock:
        if run_id is not None:
            resumed = client.resume_run(run_id)
            _stack.append(_Frame(run_id, flow_run_id))
            return ActiveRun(resumed)
        parent = parent_run_id
        if parent is None:
            top = _stack[-1] if _stack else None
            if top is not None and top.flow_run_id == flow_run_id:
                if not nested:
                    raise InvalidInput(
                        f"Run {top.run_id} is already active. End it with end_run() first, or "
                        "pass nested=True to start a child run."
                    )
                parent = top.run_id
            elif flow_run_id is not None:
                parent = _bound_run_id(flow_run_id, experiment or _experiment_name)
        exp = _resolve_experiment(experiment)
        all_tags = dict(tags or {})
        if description is not None:
            all_tags["mlflow.note.content"] = description
        run = client.create_run(
            exp.experiment_id, run_name=run_name, tags=all_tags, parent_run_id=parent
        )
        _stack.append(_Frame(run.info.run_id, flow_run_id))
        return ActiveRun(run)


def end_run(status: RunStatus | str = RunStatus.FINISHED, run_id: str | None = None) -> None:
    """End the innermost active run (or ``run_id``) and everything nested inside it."""
    client = get_client()
    with _stack_lock:
        if not _stack:
            return
        target = run_id or _stack[-1].run_id
        if not any(f.run_id == target for f in _stack):
            raise NotFound(f"Run {target} is not active in this process.")
        while _stack:
            frame = _stack.pop()
            client.set_terminated(frame.run_id, status)
            if frame.run_id == target:
                break


def active_run() -> ActiveRun | None:
    """The run `log_*` calls go to right now, if there is one (never starts a run)."""
    run_id = current_run_id(create=False)
    return ActiveRun(get_client().get_run(run_id)) if run_id else None


def current_run_id(create: bool = True) -> str:
    """The id of the run `log_*` calls go to right now; with ``create`` (the default) a run is
    started when there is none, ended at interpreter exit. Without, "" when there is none."""
    global _auto_run_exit_hook
    flow_run_id = _in_flow_run()
    with _stack_lock:
        top = _stack[-1] if _stack else None
    if top is not None and top.flow_run_id == flow_run_id:
        return top.run_id
    if flow_run_id is not None:
        return _bound_run_id(flow_run_id, _experiment_name)
    if not create:
        return ""  # no active run
    with _stack_lock:
        started = start_run().run_id
        if not _auto_run_exit_hook:
            atexit.register(_end_all_runs)
            _auto_run_exit_hook = True
    return started


def _end_all_runs() -> None:
    while True:
        with _stack_lock:
            if not _stack:
                return
        end_run()


# -- logging ---------------------------------------------------------------------------------


def log_metric(
    key: str,
    value: float,
    step: int | None = None,
    timestamp: int | None = None,
    run_id: str | None = None,
) -> None:
    """Log one point; buffered, persisted within ``flush_interval`` seconds."""
    get_client().log_metric(run_id or current_run_id(), key, value, timestamp, step)


def log_metrics(
    metrics: Mapping[str, float],
    step: int | None = None,
    timestamp: int | None = None,
    run_id: str | None = None,
) -> None:
    client = get_client()
    rid = run_id or current_run_id()
    for key, value in metrics.items():
        client.log_metric(rid, key, value, timestamp, step)


def log_param(key: str, value: Any) -> Any:
    get_client().log_param(current_run_id(), key, value)
    return value


def log_params(params: Mapping[str, Any]) -> None:
    get_client().log_batch(current_run_id(), params=[Param(k, v) for k, v in params.items()])


def set_tag(key: str, value: Any) -> None:
    get_client().set_tag(current_run_id(), key, value)


def set_tags(tags: Mapping[str, Any]) -> None:
    get_client().log_batch(current_run_id(), tags=[RunTag(k, v) for k, v in tags.items()])


def log_histogram(
    key: str, values: Any, step: int | None = None, bins: int | Sequence[float] = 30
) -> Histogram:
    """Store the bucket counts of ``values`` at ``step`` (ClearML-style histograms)."""
    return get_client().log_histogram(current_run_id(), key, values, step=step, bins=bins)


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None) -> FileInfo:
    return get_client().log_artifact(current_run_id(), local_path, artifact_path)


def log_artifacts(
    local_dir: str | os.PathLike[str], artifact_path: str | None = None
) -> list[FileInfo]:
    return get_client().log_artifacts(current_run_id(), local_dir, artifact_path)


def log_text(text: str, artifact_file: str) -> FileInfo:
    return get_client().log_text(current_run_id(), text, artifact_file)


def log_dict(dictionary: Any, artifact_file: str) -> FileInfo:
    return get_client().log_dict(current_run_id(), dictionary, artifact_file)


def log_table(data: Any, artifact_file: str) -> FileInfo:
    return get_client().log_table(current_run_id(), data, artifact_file)


def log_image(image: Any, artifact_file: str) -> FileInfo:
    return get_client().log_image(current_run_id(), image, artifact_file)


def log_figure(figure: Any, artifact_file: str) -> FileInfo:
    return get_client().log_figure(current_run_id(), figure, artifact_file)


def flush() -> None:
    """Write every buffered metric now."""
    get_client().flush()


def get_metric_history(run_id: str, key: str) -> MetricHistory:
    return get_client().get_metric_history(run_id, key)


def get_run(run_id: str) -> Run:
    return get_client().get_run(run_id)


def search_runs(
    experiment_ids: Sequence[str] | None = None,
    filter_string: str = "",
    run_view_type: ViewType | str = ViewType.ACTIVE_ONLY,
    max_results: int | None = 1000,
    order_by: Sequence[str] | None = None,
    page_token: str | None = None,
    *,
    experiment_names: Sequence[str] | None = None,
    query: str | None = None,
    saved: str | None = None,
    output: Literal["list", "pandas"] = "list",
) -> Any:
    """Find runs: see `TrackingClient.search_runs`."""
    return get_client().search_runs(
        experiment_ids,
        filter_string,
        run_view_type,
        max_results,
        order_by,
        page_token,
        experiment_names=experiment_names,
        query=query,
        saved=saved,
        output=output,
    )


def count_runs(
    filter_string: str = "",
    experiment_ids: Sequence[str] | None = None,
    *,
    experiment_names: Sequence[str] | None = None,
    query: str | None = None,
) -> int:
    return get_client().count_runs(
        experiment_ids, filter_string, experiment_names=experiment_names, query=query
    )


def aggregate_runs(
    filter_string: str = "",
    experiment_ids: Sequence[str] | None = None,
    group_by: Sequence[str] = (),
    metrics: Mapping[str, Sequence[str]] | None = None,
    *,
    experiment_names: Sequence[str] | None = None,
    query: str | None = None,
    output: Literal["list", "pandas"] = "list",
) -> Any:
    """Aggregate latest metric values of matching runs per group, in SQL."""
    return get_client().aggregate_runs(
        filter_string,
        experiment_ids,
        group_by,
        metrics,
        experiment_names=experiment_names,
        query=query,
        output=output,
    )


def save_search(
    name: str,
    filter_string: str = "",
    order_by: Sequence[str] | None = None,
    experiment_ids: Sequence[str] | None = None,
    query: str | None = None,
    *,
    overwrite: bool = False,
) -> SavedSearch:
    return get_client().save_search(
        name, filter_string, order_by, experiment_ids, query, overwrite=overwrite
    )


def list_saved_searches() -> list[SavedSearch]:
    return get_client().list_saved_searches()


def compare_runs(run_ids: Sequence[str], publish: bool = False) -> RunComparison:
    """Runs side by side; ``publish=True`` inside a flow or task adds the report, with an
    overlaid chart per metric, to the flow run's Artifacts tab (outside one it refuses)."""
    client = get_client()
    comparison = client.compare_runs(run_ids)
    if publish:
        comparison.publish(client)
    return comparison


def download_artifacts(
    run_id: str, artifact_path: str = "", dst_path: str | os.PathLike[str] | None = None
) -> Path:
    return get_client().download_artifacts(run_id, artifact_path, dst_path)
