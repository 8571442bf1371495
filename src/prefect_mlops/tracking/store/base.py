"""The tracking store interface: what `TrackingClient` asks of persistence.

Plain values cross it: ids, names, numbers, entities, filter and order-by strings, page
tokens, and our own errors (`NotFound`, `AlreadyExists`, `Conflict`, `InvalidInput`). So the
SQL store and a store speaking to our server over HTTP implement the same methods.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar, runtime_checkable

from prefect_mlops.tracking.entities import (
    DatasetInput,
    Experiment,
    FileInfo,
    Histogram,
    LoggedModel,
    LoggedModelStatus,
    Metric,
    MetricHistory,
    MetricRow,
    MetricSummary,
    ModelOutput,
    Param,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
    SavedSearch,
    ViewType,
)

__all__ = [
    "ArtifactFiles",
    "AtomicWrites",
    "BulkRunReads",
    "ExperimentEditStore",
    "KeyedWrites",
    "LoggedModelStore",
    "MetricRow",
    "TrackingStore",
]

T = TypeVar("T")


class ArtifactFiles(Protocol):
    """A run's artifact files by relative path: in artifact storage itself (embedded), or
    through the tracking server (remote). Streams in chunks; sizes and sha256 come back."""

    def write_stream(self, rel: str, source: IO[bytes]) -> tuple[int, str]: ...

    def write_file(self, rel: str, local_path: str | os.PathLike[str]) -> tuple[int, str]: ...

    def open_read(self, rel: str) -> IO[bytes]: ...

    def download(self, rel: str, destination: str | os.PathLike[str]) -> Path: ...


class KeyedWrites(Protocol):
    """What a store that serves remote clients adds: writes applied once per request key."""

    def apply_once(self, key: str, write: Callable[[], T]) -> tuple[bool, T | None]:
        """Run ``write`` with ``key`` claimed in its transaction: ``(True, result)``, or
        ``(False, None)`` (nothing stored) when the key was applied before."""
        ...


class TrackingStore(Protocol):
    """Experiments, runs, params, tags, metrics, histograms, artifact records and searches."""

    # -- experiments ------------------------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        artifact_root: str,
        tags: Mapping[str, str] | None = None,
        experiment_id: str | None = None,
    ) -> str:
        """Create an experiment whose artifacts go under ``artifact_root`` (with a
        client-made ``experiment_id``, or a new one); AlreadyExists if the name is taken."""
        ...

    def get_experiment(self, experiment_id: str) -> Experiment:
        """The experiment with that id; NotFound if there is none."""
        ...

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """The experiment with that name, or None."""
        ...

    def search_experiments(
        self,
        view: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        filter_string: str | None = None,
    ) -> list[Experiment]:
        """Experiments matching ``filter_string``, most recently updated first."""
        ...

    # -- runs -------------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        run_name: str,
        artifact_location: str,
        *,
        start_time: int | None = None,
        user_id: str = "",
        tags: Mapping[str, str] | None = None,
        parent_run_id: str | None = None,
        prefect_flow_run_id: str | None = None,
        status: RunStatus = RunStatus.RUNNING,
        params: Sequence[Param] = (),
        run_id: str | None = None,
    ) -> Run:
        """A new run with its tags and params (``run_id``: a client-made id, or a new one);
        AlreadyExists if ``prefect_flow_run_id`` is already bound to a run."""
        ...

    def get_run_info(self, run_id: str) -> RunInfo:
        """The run's info without its data; NotFound if there is no such run."""
        ...

    def get_run(self, run_id: str) -> Run:
        """The run with its params, tags and latest metrics; NotFound if missing."""
        ...

    def run_id_for_flow_run(self, flow_run_id: str) -> str | None:
        """The id of the run bound to a Prefect flow run, if any."""
        ...

    def list_running_bound_runs(self) -> list[RunInfo]:
        """Runs still RUNNING that belong to a Prefect flow run."""
        ...

    def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
        only_if_status: RunStatus | None = None,
    ) -> bool:
        """Change the given fields (only while the run has ``only_if_status``, if given);
        True if the run changed."""
        ...

    def set_lifecycle(self, run_id: str, stage: str) -> None:
        """Mark the run ``"active"`` or ``"deleted"``."""
        ...

    def end_run(
        self,
        run_id: str,
        status: RunStatus,
        end_time: int,
        *,
        tags: Mapping[str, str] | None = None,
        artifacts: Sequence[FileInfo] = (),
    ) -> None:
        """Set final tags, record already stored artifacts and the final status at once;
        NotFound if there is no such run."""
        ...

    def create_runs_bulk(
        self,
        runs: Sequence[RunInfo],
        params: Sequence[tuple[str, str, str]],
        tags: Sequence[tuple[str, str, str]],
        metrics: Sequence[MetricRow],
    ) -> None:
        """Insert new runs with their (run_id, key, value) params and tags and their points."""
        ...

    # -- params and tags --------------------------------------------------------------------

    def log_params(self, run_id: str, params: Sequence[Param]) -> None:
        """Add params; Conflict if one is already logged with another value."""
        ...

    def set_tags(self, run_id: str, tags: Sequence[RunTag]) -> None:
        """Set tags, replacing the values of existing keys."""
        ...

    def delete_tag(self, run_id: str, key: str) -> bool:
        """Remove a tag; True if the run had it."""
        ...

    # -- metrics and histograms -------------------------------------------------------------

    def log_metric_rows(self, rows: Sequence[MetricRow]) -> None:
        """Persist metric points and update the latest/min/max/count summaries."""
        ...

    def get_metric_history(self, run_id: str, key: str) -> MetricHistory:
        """Every point of one metric, by step then timestamp."""
        ...

    def get_metric_histories(self, run_id: str, keys: Sequence[str]) -> dict[str, list[Metric]]:
        """The histories of several metrics of one run, by key."""
        ...

    def get_metric_summaries(self, run_id: str) -> list[MetricSummary]:
        """Per metric key: last value, min, max and count, sorted by key."""
        ...

    def log_histogram(self, run_id: str, hist: Histogram) -> None:
        """Store one histogram (bucket edges and counts)."""
        ...

    def get_histograms(self, run_id: str, key: str) -> list[Histogram]:
        """The histograms of one key, by step."""
        ...

    def list_histogram_keys(self, run_id: str) -> list[str]:
        """The keys the run has histograms for, sorted."""
        ...

    # -- artifacts and dataset inputs -------------------------------------------------------

    def artifact_location(self, info: RunInfo) -> ArtifactFiles:
        """Where the files of the run ``info`` are read and written."""
        ...

    def record_artifact(self, run_id: str, path: str, size: int, sha256: str) -> None:
        """Record (or replace) the record of a stored artifact file."""
        ...

    def list_artifacts(self, run_id: str, path: str = "") -> list[FileInfo]:
        """Files and folders directly under ``path``."""
        ...

    def list_artifact_files(self, run_id: str, path: str = "") -> list[FileInfo]:
        """Every artifact file at or under ``path``, sorted by path."""
        ...

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None:
        """Record datasets the run read (duplicates are ignored)."""
        ...

    def get_inputs(self, run_id: str) -> list[DatasetInput]:
        """The datasets the run read, by name."""
        ...

    # -- search -----------------------------------------------------------------------------

    def search_runs(
        self,
        experiment_ids: Sequence[str] | None,
        filter_string: str = "",
        view: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
        query: str | None = None,
    ) -> tuple[list[Run], str | None]:
        """A page of runs matching the filter and full-text ``query`` (None ids: every
        experiment) and the next page's token; InvalidInput for a bad filter or token."""
        ...

    def count_runs(
        self,
        experiment_ids: Sequence[str] | None,
        filter_string: str = "",
        view: ViewType = ViewType.ACTIVE_ONLY,
        query: str | None = None,
    ) -> int:
        """How many runs match."""
        ...

    def aggregate_runs(
        self,
        experiment_ids: Sequence[str] | None,
        filter_string: str = "",
        view: ViewType = ViewType.ACTIVE_ONLY,
        query: str | None = None,
        group_by: Sequence[str] = (),
        metrics: Sequence[tuple[str, str]] = (),
    ) -> list[dict[str, Any]]:
        """Matching runs grouped by ``group_by``, with ``runs`` and ``<metric>.<function>``
        columns for each (metric key, function)."""
        ...

    def save_search(self, search: SavedSearch, overwrite: bool = False) -> None:
        """Store a search after checking its filter and order; AlreadyExists if the name is
        taken and ``overwrite`` is False."""
        ...

    def get_saved_search(self, name: str) -> SavedSearch | None:
        """The saved search with that name, or None."""
        ...

    def list_saved_searches(self) -> list[SavedSearch]:
        """Every saved search, by name."""
        ...

    def delete_saved_search(self, name: str) -> bool:
        """Remove a saved search; True if it existed."""
        ...


@runtime_checkable
class AtomicWrites(Protocol):
    """A store that can run several of its writes as one transaction."""

    def atomically(self, work: Callable[[], T]) -> T:
        """Run ``work`` (calls to the store's write methods): all stored, or none."""
        ...


@runtime_checkable
class BulkRunReads(Protocol):
    """Per-run details of many runs in a few queries (a server answering a search page)."""

    def get_metric_summaries_many(self, run_ids: Sequence[str]) -> dict[str, list[MetricSummary]]:
        """`get_metric_summaries` of each of ``run_ids`` (every id is a key)."""
        ...

    def get_inputs_many(self, run_ids: Sequence[str]) -> dict[str, list[DatasetInput]]:
        """`get_inputs` of each of ``run_ids`` (every id is a key)."""
        ...


@runtime_checkable
class ExperimentEditStore(Protocol):
    """Renaming, deleting, restoring and tagging experiments after they were created."""

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        """NotFound if there is no such experiment; AlreadyExists if the name is taken."""
        ...

    def set_experiment_lifecycle(self, experiment_id: str, stage: str) -> None:
        """Mark the experiment ``"active"`` or ``"deleted"``; NotFound if missing."""
        ...

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        """Set (or replace) one tag; NotFound if there is no such experiment."""
        ...

    def delete_experiment_tag(self, experiment_id: str, key: str) -> bool:
        """Remove one tag; True if the experiment had it."""
        ...


@runtime_checkable
class LoggedModelStore(Protocol):
    """Logged models (MLflow 3): models with their own artifact folder, tags and params, and
    the models each run produced."""

    def create_logged_model(
        self,
        experiment_id: str,
        name: str,
        artifact_root: str,
        *,
        source_run_id: str | None = None,
        model_type: str = "",
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> LoggedModel:
        """A new PENDING model whose files go under ``artifact_root``."""
        ...

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        """The model; NotFound if there is none (or it is deleted and not allowed)."""
        ...

    def set_logged_model_status(
        self, model_id: str, status: LoggedModelStatus, message: str = ""
    ) -> LoggedModel:
        """Record where the model's upload stands; NotFound if missing."""
        ...

    def delete_logged_model(self, model_id: str) -> None:
        """Mark the model deleted; NotFound if missing."""
        ...

    def search_logged_models(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        max_results: int = 100,
        order_by: Sequence[tuple[str, bool]] = (),
        page_token: str | None = None,
    ) -> tuple[list[LoggedModel], str | None]:
        """A page of active models matching ``filter_string`` (``attribute = 'value'``
        comparisons joined by AND), ordered by (field, ascending) pairs, newest first by
        default, and the next page's token; InvalidInput for a bad filter or token."""
        ...

    def set_logged_model_tags(self, model_id: str, tags: Mapping[str, str]) -> None:
        """Set tags, replacing the values of existing keys; NotFound if missing."""
        ...

    def delete_logged_model_tag(self, model_id: str, key: str) -> bool:
        """Remove one tag; True if the model had it."""
        ...

    def log_logged_model_params(self, model_id: str, params: Mapping[str, str]) -> None:
        """Add params (a param logged again keeps its first value); NotFound if missing."""
        ...

    def log_model_outputs(self, run_id: str, outputs: Sequence[ModelOutput]) -> None:
        """Record models the run produced (a model recorded again takes the new step)."""
        ...

    def get_model_outputs(self, run_id: str) -> list[ModelOutput]:
        """The models the run produced, by step."""
        ...

    def get_model_outputs_many(self, run_ids: Sequence[str]) -> dict[str, list[ModelOutput]]:
        """`get_model_outputs` of each of ``run_ids`` (every id is a key)."""
        ...
