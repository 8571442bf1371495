"""The explicit tracking API: ids in, entities out, every value checked before it is stored."""

from __future__ import annotations

import getpass
import io
import json
import logging
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect_mlops.core.errors import AlreadyExists, InvalidInput, NotFound
from prefect_mlops.core.ids import new_id, now_ms
from prefect_mlops.core.settings import Settings, get_settings
from prefect_mlops.core.storage import ArtifactLocation, artifact_root_uri
from prefect_mlops.tracking import pending
from prefect_mlops.tracking import validation as v
from prefect_mlops.tracking.entities import (
    BulkRun,
    DatasetInput,
    Experiment,
    FileInfo,
    Histogram,
    Metric,
    MetricHistory,
    MetricSummary,
    Param,
    Run,
    RunStatus,
    RunTag,
    ViewType,
)
from prefect_mlops.tracking.search.compare import RunComparison
from prefect_mlops.tracking.search.runs import RunSearchMixin
from prefect_mlops.tracking.store import MetricRow, SqlTrackingStore
from prefect_mlops.tracking.writer import MetricWriter

logger = logging.getLogger("prefect_mlops.client")

DEFAULT_EXPERIMENT = "Default"

_stores: dict[str, tuple[SqlTrackingStore, MetricWriter]] = {}
_stores_lock = threading.Lock()


def _store_and_writer(url: str, settings: Settings) -> tuple[SqlTrackingStore, MetricWriter]:
    pair = _stores.get(url)
    if pair is None:
        with _stores_lock:
            pair = _stores.get(url)
            if pair is None:
                store = SqlTrackingStore(url)
                writer = MetricWriter(
                    store.log_metric_rows, settings.flush_interval, settings.max_buffered_points
                )
                pair = _stores[url] = (store, writer)
    return pair


def close_all_clients() -> None:
    """Flush and forget every cached store (tests switch databases with this)."""
    with _stores_lock:
        for _, writer in _stores.values():
            writer.close()
        _stores.clear()


def _as_view(view: ViewType | str) -> ViewType:
    try:
        return ViewType(view)
    except ValueError:
        raise InvalidInput(
            f"run_view_type {view!r} is not one of {[x.value for x in ViewType]}."
        ) from None


def _as_status(status: RunStatus | str) -> RunStatus:
    try:
        return RunStatus(str(status).upper())
    except ValueError:
        raise InvalidInput(
            f"Run status {status!r} is not one of {[s.value for s in RunStatus]}."
        ) from None


class TrackingClient(RunSearchMixin):
    """Experiments, runs, params, metrics, tags and artifacts by explicit id.

    Metrics logged with `log_metric` are buffered and written in the background; every read
    flushes first, so a process always sees what it logged.
    """

    def __init__(
        self,
        database_url: str | None = None,
        artifact_storage: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.database_url = database_url or self.settings.resolved_database_url
        self.artifact_root = artifact_root_uri(
            artifact_storage or self.settings.resolved_artifact_storage
        )
        self.store, self._writer = _store_and_writer(self.database_url, self.settings)
        self._writable: set[str] = set()
        self._experiments: dict[str, Experiment] = {}  # by name and by id, active ones

    # -- experiments ------------------------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> str:
        v.validate_name(name, "Experiment", v.MAX_EXPERIMENT_NAME_LENGTH)
        clean_tags = {
            v.validate_key(k, "tag"): v.validate_tag_value(k, val)
            for k, val in (tags or {}).items()
        }
        root = artifact_root_uri(artifact_location) if artifact_location else self.artifact_root
        return self.store.create_experiment(name, root, clean_tags)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self.store.get_experiment(experiment_id)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return self.store.get_experiment_by_name(name)

    def get_or_create_experiment(self, name: str) -> Experiment:
        """The experiment called ``name``, created if missing (safe under concurrent callers)."""
        found = self._experiments.get(name) or self.store.get_experiment_by_name(name)
        if found is None:
            try:
                found = self.store.get_experiment(self.create_experiment(name))
            except AlreadyExists:
                found = self.store.get_experiment_by_name(name)
                assert found is not None
        if found.lifecycle_stage == "active":  # cached for run creation in this process
            self._experiments[name] = self._experiments[found.experiment_id] = found
        return found

    def search_experiments(
        self,
        view_type: ViewType | str = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        filter_string: str | None = None,
    ) -> list[Experiment]:
        """Experiments, most recently updated first, optionally filtered by name and tags:
        ``"name LIKE 'vision-%' AND tags.team = 'cv'"``."""
        from prefect_mlops.tracking.search.grammar import parse_filter
        from prefect_mlops.tracking.search.sql import (
            EXPERIMENT_ATTRIBUTES,
            ExperimentFilterCompiler,
        )

        node = parse_filter(filter_string, frozenset(EXPERIMENT_ATTRIBUTES))
        conditions = (
            [] if node is None else [ExperimentFilterCompiler(filter_string or "").compile(node)]
        )
        return self.store.search_experiments(_as_view(view_type), max_results, conditions)

    # -- runs -------------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        run_name: str | None = None,
        start_time: int | None = None,
        tags: Mapping[str, Any] | None = None,
        parent_run_id: str | None = None,
        *,
        prefect_flow_run_id: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Run:
        """A new RUNNING run; ``params`` are logged in the same transaction."""
        experiment = self._experiments.get(experiment_id) or self.store.get_experiment(
            experiment_id
        )
        if experiment.lifecycle_stage != "active":
            raise InvalidInput(
                f"Experiment {experiment.name!r} is deleted; restore it or use another one."
            )
        if parent_run_id is not None:
            self.store.get_run_info(parent_run_id)
        name = run_name or _generated_run_name()
        v.validate_name(name, "Run", v.MAX_RUN_NAME_LENGTH)
        clean_tags = {
            v.validate_key(k, "tag"): v.validate_tag_value(k, val)
            for k, val in (tags or {}).items()
        }
        run = self.store.create_run(
            experiment_id,
            name,
            experiment.artifact_location,
            start_time=start_time,
            user_id=_user(),
            tags=clean_tags,
            parent_run_id=parent_run_id,
            prefect_flow_run_id=prefect_flow_run_id,
            params=[
                Param(v.validate_key(k, "param"), v.validate_param_value(k, val))
                for k, val in (params or {}).items()
            ],
        )
        self._writable.add(run.info.run_id)
        return run

    def get_run(self, run_id: str) -> Run:
        """The run with its params, tags and latest metrics."""
        self.flush()
        run = self.store.get_run(run_id)
        if self._reconcile([run]):
            run = self.store.get_run(run_id)
        return run

    def get_run_by_flow_run_id(self, flow_run_id: str) -> Run | None:
        """The run bound to a Prefect flow run, or None (after this process's pending work)."""
        self.flush()
        run_id = self.store.run_id_for_flow_run(str(flow_run_id))
        return self.get_run(run_id) if run_id else None

    # temporary contract shims
    def get_run_info(self, run_id: str) -> Any:
        return self.store.get_run_info(run_id)

    def run_id_for_flow_run(self, flow_run_id: str) -> str | None:
        return self.store.run_id_for_flow_run(flow_run_id)

    def claim_run(self, run_id: str) -> None:
        self._writable.add(run_id)

    def resume_run(self, run_id: str) -> Run:
        info = self.store.get_run_info(run_id)
        if info.lifecycle_stage != "active":
            raise InvalidInput(f"Run {run_id} is deleted; restore_run() it before resuming.")
        if info.status is not RunStatus.RUNNING:
            self.store.update_run(run_id, status=RunStatus.RUNNING)
        self._writable.add(run_id)
        return self.get_run(run_id)

    def require_writable(self, run_id: str, *, tags_only: bool = False) -> None:
        self._require_writable(run_id, tags_only=tags_only)

    def settle_run(self, run_id: str, status: Any, end_time: Any, *, tags: Any) -> bool:
        if self.store.update_run(
            run_id, status=status, end_time=end_time, only_if_status=RunStatus.RUNNING
        ):
            self.store.set_tags(run_id, [RunTag(k, v) for k, v in tags.items()])
            return True
        return False

    def list_running_bound_runs(self) -> Any:
        return self.store.list_running_bound_runs()

    def list_artifact_files(self, run_id: str, path: str = "") -> Any:
        return self.store.artifact_files(run_id, path)

    def list_histogram_keys(self, run_id: str) -> Any:
        return self.store.list_histogram_keys(run_id)

    def get_metric_histories(self, run_id: str, keys: Any) -> Any:
        self.flush()
        return self.store.get_metric_histories(run_id, keys)

    def _reconcile(self, runs: Sequence[Run]) -> bool:
        """Settle runs still RUNNING whose flow runs ended elsewhere; True if any changed."""
        stale = [
            r.info
            for r in runs
            if r.info.status is RunStatus.RUNNING
            and r.info.prefect_flow_run_id
            and r.info.run_id not in self._writable
        ]
        if not stale or not self.settings.reconcile_on_read:
            return False
        from prefect_mlops.tracking import runtime

        settle = runtime.hooks.settle_stale_runs
        return bool(settle and settle(self, stale))

    def set_terminated(
        self,
        run_id: str,
        status: RunStatus | str = RunStatus.FINISHED,
        end_time: int | None = None,
        *,
        tags: Any = None,
        texts: Any = None,
        files: Any = None,
    ) -> None:
        if tags is not None or texts is not None or files is not None:
            self._end_run(run_id, status, tags=tags, texts=texts, files=files, end_time=end_time)
            return
        final = _as_status(status)
        self.store.get_run_info(run_id)
        self.flush()
        self.store.update_run(run_id, status=final, end_time=end_time or now_ms())
        if final.is_terminal:
            self._writable.discard(run_id)

    def _end_run(
        self,
        run_id: str,
        status: RunStatus | str,
        *,
        tags: Mapping[str, Any] | None = None,
        texts: Mapping[str, str] | None = None,
        files: Mapping[str, str | os.PathLike[str]] | None = None,
        end_time: int | None = None,
    ) -> None:
        """Store ``texts`` and ``files`` as artifacts (artifact path -> content / local file),
        then set ``tags`` and end the run with ``status`` in one transaction: how a tracked
        flow run is finalised."""
        final = _as_status(status)
        self._require_writable(run_id)
        clean_tags = {
            v.validate_key(k, "tag"): v.validate_tag_value(k, value)
            for k, value in (tags or {}).items()
        }
        location = ArtifactLocation(self.store.get_run_info(run_id).artifact_uri)
        stored = []
        for name, text in (texts or {}).items():
            rel = v.safe_artifact_path(name)
            size, digest = location.write_stream(rel, io.BytesIO(text.encode("utf-8")))
            stored.append(FileInfo(rel, False, size, digest))
        for name, path in (files or {}).items():
            rel = v.safe_artifact_path(name)
            size, digest = location.write_file(rel, path)
            stored.append(FileInfo(rel, False, size, digest))
        self.flush()
        self.store.end_run(run_id, final, end_time or now_ms(), tags=clean_tags, artifacts=stored)
        if final.is_terminal:
            self._writable.discard(run_id)

    def update_run(self, run_id: str, *, run_name: str | None = None) -> None:
        if run_name is not None:
            v.validate_name(run_name, "Run", v.MAX_RUN_NAME_LENGTH)
        self.store.get_run_info(run_id)
        self.store.update_run(run_id, run_name=run_name)

    def delete_run(self, run_id: str) -> None:
        self.store.get_run_info(run_id)
        self.flush()
        self.store.set_lifecycle(run_id, "deleted")
        self._writable.discard(run_id)

    def restore_run(self, run_id: str) -> None:
        self.store.get_run_info(run_id)
        self.store.set_lifecycle(run_id, "active")

    def _require_writable(self, run_id: str, *, tags_only: bool = False) -> None:
        """Refuse unknown and deleted runs, and finished runs unless only tags change (tags
        annotate a run at any time, as in MLflow's UI)."""
        if run_id in self._writable:
            return
        if not isinstance(run_id, str):
            raise InvalidInput(f"run_id must be a string, got {run_id!r}.")
        info = self.store.get_run_info(run_id)
        if info.lifecycle_stage != "active":
            raise InvalidInput(
                f"Run {run_id} is deleted; restore it with restore_run() before logging to it."
            )
        if info.status.is_terminal:
            if tags_only:
                return
            raise InvalidInput(
                f"Run {run_id} is {info.status.value}; a finished run cannot be logged to. "
                "Start a new run (or set_terminated(run_id, 'RUNNING') to reopen it)."
            )
        self._writable.add(run_id)

    def create_runs_bulk(
        self, experiment_id: str, runs: Iterable[BulkRun], chunk_size: int = 2000
    ) -> list[str]:
        """Create many finished runs at once (imports, seeding, migrations from other
        trackers): every value is validated, then written with batched inserts."""
        experiment = self.store.get_experiment(experiment_id)
        base = experiment.artifact_location.rstrip("/")
        user = _user()
        created: list[str] = []
        run_rows: list[dict[str, Any]] = []
        params: list[tuple[str, str, str]] = []
        tags: list[tuple[str, str, str]] = []
        points: list[MetricRow] = []
        now = now_ms()

        def write() -> None:
            self.store.create_runs_bulk(run_rows, params, tags, points)
            created.extend(r["run_id"] for r in run_rows)
            run_rows.clear()
            params.clear()
            tags.clear()
            points.clear()

        for spec in runs:
            run_id = new_id()
            start = now if spec.start_time is None else int(spec.start_time)
            run_rows.append(
                {
                    "run_id": run_id,
                    "experiment_id": experiment_id,
                    "run_name": v.validate_name(spec.run_name, "Run", v.MAX_RUN_NAME_LENGTH),
                    "status": _as_status(spec.status).value,
                    "start_time": start,
                    "end_time": spec.end_time,
                    "lifecycle_stage": "active",
                    "user_id": user,
                    "artifact_uri": f"{base}/{run_id}/artifacts",
                    "parent_run_id": None,
                    "prefect_flow_run_id": None,
                    "deleted_time": None,
                }
            )
            for key, value in spec.params.items():
                params.append(
                    (run_id, v.validate_key(key, "param"), v.validate_param_value(key, value))
                )
            for key, value in spec.tags.items():
                tags.append((run_id, v.validate_key(key, "tag"), v.validate_tag_value(key, value)))
            for key, series in spec.metrics.items():
                key = v.validate_key(key)
                history = series if isinstance(series, Sequence) else [(0, series)]
                for step, value in history:
                    number = v.metric_value(key, value)
                    points.append(
                        (
                            run_id,
                            key,
                            number if number == number else None,
                            start,
                            v.metric_step(key, step),
                        )
                    )
            if len(run_rows) >= chunk_size:
                write()
        if run_rows:
            write()
        return created

    def log_inputs(self, run_id: str, datasets: Iterable[DatasetInput]) -> None:
        """Record the datasets a run read (searchable as ``datasets.name``, ``.digest``,
        ``.context``)."""
        self._require_writable(run_id)
        rows = []
        for d in datasets:
            if not d.name or not d.digest:
                raise InvalidInput(f"Dataset inputs need a name and a digest; got {d!r}.")
            rows.append((d.name, d.digest, d.context))
        self.store.log_inputs(run_id, rows)

    def get_inputs(self, run_id: str) -> list[DatasetInput]:
        return [DatasetInput(n, d, c) for n, d, c in self.store.get_inputs(run_id)]

    def compare_runs(self, run_ids: Sequence[str]) -> RunComparison:
        """Params side by side (differing ones marked) and metrics' last/min/max per run."""
        from prefect_mlops.tracking.search.compare import compare

        return compare(self, run_ids)

    # -- params, tags, metrics --------------------------------------------------------------

    def log_param(self, run_id: str, key: str, value: Any) -> None:
        self.log_batch(run_id, params=[Param(key, value)])

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self.log_batch(run_id, tags=[RunTag(key, value)])

    def delete_tag(self, run_id: str, key: str) -> None:
        self._require_writable(run_id, tags_only=True)
        if not self.store.delete_tag(run_id, key):
            raise NotFound(f"Run {run_id} has no tag {key!r}.")

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        timestamp: int | None = None,
        step: int | None = None,
    ) -> None:
        """Buffer one point; it is persisted within ``flush_interval`` seconds."""
        if run_id not in self._writable:
            self._require_writable(run_id)
        key = v.validate_key(key)
        number = v.metric_value(key, value)
        self._writer.append(
            (
                run_id,
                key,
                number if number == number else None,  # NaN is stored as NULL
                now_ms() if timestamp is None else int(timestamp),
                0 if step is None else v.metric_step(key, step),
            )
        )

    def log_batch(
        self,
        run_id: str,
        metrics: Iterable[Metric] = (),
        params: Iterable[Param] = (),
        tags: Iterable[RunTag] = (),
    ) -> None:
        """Write metrics, params and tags at once, synchronously."""
        metrics, params = list(metrics), list(params)
        self._require_writable(run_id, tags_only=not metrics and not params)
        rows: list[MetricRow] = []
        now = now_ms()
        for m in metrics:
            key = v.validate_key(m.key)
            number = v.metric_value(key, m.value)
            rows.append(
                (
                    run_id,
                    key,
                    number if number == number else None,
                    now if m.timestamp is None else int(m.timestamp),
                    0 if m.step is None else v.metric_step(key, m.step),
                )
            )
        clean_params = [
            Param(v.validate_key(p.key, "param"), v.validate_param_value(p.key, p.value))
            for p in params
        ]
        seen: dict[str, str] = {}
        for p in clean_params:
            if seen.setdefault(p.key, p.value) != p.value:
                raise InvalidInput(
                    f"Param {p.key!r} appears twice in one batch with values "
                    f"{seen[p.key]!r} and {p.value!r}."
                )
        clean_tags = [
            RunTag(v.validate_key(t.key, "tag"), v.validate_tag_value(t.key, t.value)) for t in tags
        ]
        self.store.log_params(run_id, clean_params)
        self.store.set_tags(run_id, clean_tags)
        if rows:
            self.flush()
            self.store.log_metric_rows(rows)

    def get_metric_history(self, run_id: str, key: str) -> MetricHistory:
        """Every point of ``key``, ordered by step then timestamp."""
        self.flush()
        self.store.get_run_info(run_id)
        return self.store.get_metric_history(run_id, key)

    def get_metric_summaries(self, run_id: str) -> list[MetricSummary]:
        """Per metric: the last value, min, max and the number of points."""
        self.flush()
        return self.store.get_metric_summaries(run_id)

    def flush(self) -> None:
        """Write every buffered metric point now (after this process's pending background
        tracking work, such as auto-tracked flow runs being finalised)."""
        pending.wait()
        self._writer.flush()

    # -- histograms -------------------------------------------------------------------------

    def log_histogram(
        self,
        run_id: str,
        key: str,
        values: Any,
        step: int | None = None,
        bins: int | Sequence[float] = 30,
        timestamp: int | None = None,
    ) -> Histogram:
        """Store the bucket counts of ``values`` (not the values themselves)."""
        import numpy as np

        self._require_writable(run_id)
        key = v.validate_key(key, "histogram")
        try:
            data = np.asarray(values, dtype=float).ravel()
        except (TypeError, ValueError):
            raise InvalidInput(
                f"Histogram {key!r} needs numeric values; got {type(values).__name__}."
            ) from None
        data = data[np.isfinite(data)]
        if data.size == 0:
            raise InvalidInput(f"Histogram {key!r} got no finite values to count.")
        counts, edges = np.histogram(data, bins=bins)
        hist = Histogram(
            key=key,
            step=0 if step is None else v.metric_step(key, step),
            timestamp=now_ms() if timestamp is None else int(timestamp),
            edges=[float(e) for e in edges],
            counts=[int(c) for c in counts],
        )
        self.store.log_histogram(run_id, hist)
        return hist

    def get_histograms(self, run_id: str, key: str) -> list[Histogram]:
        return self.store.get_histograms(run_id, key)

    # -- artifacts --------------------------------------------------------------------------

    def _location(self, run_id: str) -> ArtifactLocation:
        return ArtifactLocation(self.store.get_run_info(run_id).artifact_uri)

    def log_artifact(
        self, run_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> FileInfo:
        """Upload one file under ``artifact_path`` (a folder inside the run's artifacts)."""
        self._require_writable(run_id)
        source = Path(local_path)
        if not source.is_file():
            raise InvalidInput(f"log_artifact needs an existing file; {str(source)!r} is not one.")
        rel = v.safe_artifact_path(
            f"{v.safe_artifact_path(artifact_path)}/{source.name}" if artifact_path else source.name
        )
        size, digest = self._location(run_id).write_file(rel, source)
        self.store.record_artifact(run_id, rel, size, digest)
        return FileInfo(rel, False, size, digest)

    def log_artifacts(
        self, run_id: str, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> list[FileInfo]:
        """Upload every file below ``local_dir``, keeping the folder structure."""
        self._require_writable(run_id)
        root = Path(local_dir)
        if not root.is_dir():
            raise InvalidInput(f"log_artifacts needs an existing folder; {str(root)!r} is not one.")
        base = v.safe_artifact_path(artifact_path)
        location = self._location(run_id)
        stored = []
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            rel_in_dir = file.relative_to(root).as_posix()
            rel = v.safe_artifact_path(f"{base}/{rel_in_dir}" if base else rel_in_dir)
            size, digest = location.write_file(rel, file)
            self.store.record_artifact(run_id, rel, size, digest)
            stored.append(FileInfo(rel, False, size, digest))
        return stored

    def log_bytes(self, run_id: str, data: bytes, artifact_file: str) -> FileInfo:
        """Store ``data`` as the artifact ``artifact_file``."""
        self._require_writable(run_id)
        rel = v.safe_artifact_path(artifact_file)
        if not rel:
            raise InvalidInput("artifact_file must name a file, e.g. 'notes/summary.txt'.")
        size, digest = self._location(run_id).write_stream(rel, io.BytesIO(data))
        self.store.record_artifact(run_id, rel, size, digest)
        return FileInfo(rel, False, size, digest)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> FileInfo:
        return self.log_bytes(run_id, text.encode("utf-8"), artifact_file)

    def log_dict(self, run_id: str, dictionary: Any, artifact_file: str) -> FileInfo:
        """Store ``dictionary`` as YAML for ``.yaml``/``.yml`` files, JSON otherwise."""
        if artifact_file.lower().endswith((".yaml", ".yml")):
            import yaml

            text = yaml.safe_dump(dictionary, sort_keys=False, allow_unicode=True)
        else:
            text = json.dumps(dictionary, indent=2, default=str)
        return self.log_text(run_id, text, artifact_file)

    def log_table(self, run_id: str, data: Any, artifact_file: str) -> FileInfo:
        """Store a table (dict of columns or a pandas DataFrame) as MLflow's JSON table format."""
        from prefect_mlops.tracking.media import table_json

        if not artifact_file.lower().endswith(".json"):
            raise InvalidInput(f"log_table writes JSON; {artifact_file!r} must end with '.json'.")
        return self.log_text(run_id, table_json(data), artifact_file)

    def log_image(self, run_id: str, image: Any, artifact_file: str) -> FileInfo:
        """Store a numpy array or PIL image as an image file (format from the suffix)."""
        from prefect_mlops.tracking.media import image_bytes

        return self.log_bytes(run_id, image_bytes(image, artifact_file), artifact_file)

    def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> FileInfo:
        """Store a matplotlib figure (PNG, SVG, PDF... by suffix)."""
        from prefect_mlops.tracking.media import figure_bytes

        return self.log_bytes(run_id, figure_bytes(figure, artifact_file), artifact_file)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        self.store.get_run_info(run_id)
        return self.store.list_artifacts(run_id, v.safe_artifact_path(path))

    def download_artifacts(
        self, run_id: str, path: str = "", dst_path: str | os.PathLike[str] | None = None
    ) -> Path:
        """Download a file or folder of artifacts; returns the local path."""
        import tempfile

        rel = v.safe_artifact_path(path)
        files = [f.path for f in self.store.artifact_files(run_id, rel)]
        if not files:
            raise NotFound(f"Run {run_id} has no artifact at {path!r}.")
        dest_root = Path(dst_path) if dst_path else Path(tempfile.mkdtemp(prefix="mlops-"))
        location = self._location(run_id)
        for file in files:
            location.download(file, dest_root / file)
        return dest_root / rel if rel else dest_root

    def open_artifact(self, run_id: str, path: str) -> Any:
        """A readable binary stream of one artifact."""
        rel = v.safe_artifact_path(path)
        if rel not in {f.path for f in self.store.artifact_files(run_id, rel)}:
            raise NotFound(f"Run {run_id} has no artifact file {path!r}.")
        return self._location(run_id).open_read(rel)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return ""


_ADJECTIVES = (
    "brave",
    "calm",
    "eager",
    "gentle",
    "keen",
    "lucky",
    "merry",
    "quick",
    "sunny",
    "wise",
)
_NOUNS = ("otter", "falcon", "panda", "lynx", "heron", "koala", "whale", "fox", "owl", "yak")


def _generated_run_name() -> str:
    import secrets

    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(1000)}"
