"""`RestTrackingStore`: the tracking store over a prefect-mlops tracking server's native API.

``PREFECT_MLOPS_TRACKING_URI=http://host:5000`` makes `TrackingClient` use it: every store
operation is one request to ``/api/mlops/v1/...`` (a buffered writer's batch included), our
errors come back with the server's message, and artifacts stream through the server.

Ids are made here, so nothing waits on the server to name a run or an experiment: while the
server is away, writes are spooled (see ``spool.py``) and the calls return what they would
have; reads of runs and experiments this process made, or saw, are answered from memory, and
other reads raise a clear `StorageError`. An experiment looked up by name while offline and
unknown is created in the spool with a client-made id (``spool.py`` says how replay joins it
to the server's experiment of that name).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from prefect_mlops.core.ids import new_id, now_ms
from prefect_mlops.core.settings import Settings
from prefect_mlops.core.storage import ArtifactLocation
from prefect_mlops.tracking.entities import (
    DatasetInput,
    Experiment,
    FileInfo,
    Histogram,
    Metric,
    MetricHistory,
    MetricRow,
    MetricSummary,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from prefect_mlops.tracking.store import wire
from prefect_mlops.tracking.store.base import ArtifactFiles
from prefect_mlops.tracking.store.http_artifacts import HttpArtifactFiles
from prefect_mlops.tracking.store.rest_search import RestSearch
from prefect_mlops.tracking.store.spool import SyncReport, Unreachable
from prefect_mlops.tracking.store.transport import SPOOLED, Transport

T = TypeVar("T")


class RestTrackingStore(RestSearch):
    """Every `TrackingStore` operation as a request to the server at ``url``."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url.rstrip("/")
        self.direct_artifacts = settings.artifacts_direct
        self.transport = Transport(self.url, settings)
        self.spool = self.transport.spool
        self._runs: dict[str, RunInfo] = {}  # made or seen here: answers reads offline
        self._experiments: dict[str, Experiment] = {}

    def sync(self) -> SyncReport:
        """Replay the offline spool now."""
        return self.transport.replay()

    def _offline(self, read: Callable[[], T], local: Callable[[], T | None]) -> T:
        """``read()`` from the server, or what ``local()`` knows when it is away."""
        try:
            return read()
        except Unreachable:
            found = local()
            if found is None:
                raise
            return found

    # -- experiments ------------------------------------------------------------------------

    def _remember(self, experiment: Experiment) -> Experiment:
        self._experiments[experiment.experiment_id] = experiment
        return experiment

    def _local_experiments(self) -> list[Experiment]:
        made = [wire.experiment(r["experiment"]) for r in self.spool.experiments().values()]
        return [*self._experiments.values(), *made]

    def create_experiment(
        self,
        name: str,
        artifact_root: str,
        tags: Mapping[str, str] | None = None,
        experiment_id: str | None = None,
    ) -> str:
        experiment_id = experiment_id or new_id()
        body = {
            "name": name,
            "artifact_root": artifact_root,
            "tags": dict(tags or {}),
            "experiment_id": experiment_id,
        }
        now = now_ms()
        made = Experiment(experiment_id, name, "", "active", now, now, dict(tags or {}))
        record = {"experiment": wire.encode(made), "server_id": None}
        # Spooled: the record is saved (under the spool's lock) before the journal entry
        # that refers to it, so a replay always finds it.
        result = self.transport.write(
            "create_experiment",
            "POST",
            "/experiments",
            body,
            offline_experiment=(experiment_id, record),
        )
        if result is not SPOOLED:
            return str(result)
        self._remember(made)
        return experiment_id

    def get_experiment(self, experiment_id: str) -> Experiment:
        experiment_id = self.spool.server_ids().get(experiment_id, experiment_id)
        return self._offline(
            lambda: self._remember(wire.experiment(self._get(f"/experiments/{experiment_id}"))),
            lambda: next(
                (e for e in self._local_experiments() if e.experiment_id == experiment_id), None
            ),
        )

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        try:
            found = self._get("/experiment-by-name", name=name)
        except Unreachable:
            return next((e for e in self._local_experiments() if e.name == name), None)
        return None if found is None else self._remember(wire.experiment(found))

    def search_experiments(
        self,
        view: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        filter_string: str | None = None,
    ) -> list[Experiment]:
        body = {"view": view, "max_results": max_results, "filter_string": filter_string}
        return [wire.experiment(e) for e in self._post("/experiments/search", body)]

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
        run_id = run_id or new_id()
        start_time = now_ms() if start_time is None else start_time
        location: str | None = artifact_location or None
        server_id = self.spool.server_ids().get(experiment_id)
        if server_id is not None:  # made offline, since replayed under the server's id
            experiment_id, location = server_id, None
        body = {
            "experiment_id": experiment_id,
            "run_name": run_name,
            "run_id": run_id,
            "artifact_location": location,
            "start_time": start_time,
            "user_id": user_id,
            "tags": dict(tags or {}),
            "parent_run_id": parent_run_id,
            "prefect_flow_run_id": prefect_flow_run_id,
            "status": status,
            "params": [list(p) for p in params],
        }
        result = self.transport.write("create_run", "POST", "/runs", body)
        if result is not SPOOLED:
            run = wire.run(result)
        else:
            uri = f"{location.rstrip('/')}/{run_id}/artifacts" if location else ""
            info = RunInfo(
                run_id,
                experiment_id,
                run_name,
                status,
                start_time,
                None,
                "active",
                user_id,
                uri,
                parent_run_id,
                prefect_flow_run_id,
            )
            run = Run(info, RunData(params=dict(params), tags=dict(tags or {})))
        self._runs[run_id] = run.info
        return run

    def get_run_info(self, run_id: str) -> RunInfo:
        def read() -> RunInfo:
            info = self._runs[run_id] = wire.run_info(self._get(f"/runs/{run_id}/info"))
            return info

        return self._offline(read, lambda: self._runs.get(run_id))

    def get_run(self, run_id: str) -> Run:
        run = wire.run(self._get(f"/runs/{run_id}"))
        self._runs[run_id] = run.info
        return run

    def run_id_for_flow_run(self, flow_run_id: str) -> str | None:
        def local() -> str | None:
            return next(
                (i.run_id for i in self._runs.values() if i.prefect_flow_run_id == flow_run_id),
                None,
            )

        try:
            found = self._get(f"/flow-runs/{flow_run_id}/run-id")
        except Unreachable:
            if local() is None:
                raise
            return local()
        return None if found is None else str(found)

    def list_running_bound_runs(self) -> list[RunInfo]:
        return [wire.run_info(i) for i in self._get("/running-bound-runs")]

    def _update_local(self, run_id: str, **changes: Any) -> None:
        info = self._runs.get(run_id)
        if info is not None:
            self._runs[run_id] = replace(
                info, **{k: v for k, v in changes.items() if v is not None}
            )

    def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
        only_if_status: RunStatus | None = None,
    ) -> bool:
        body = {
            "status": status,
            "end_time": end_time,
            "run_name": run_name,
            "only_if_status": only_if_status,
        }
        result = self.transport.write("update_run", "PATCH", f"/runs/{run_id}", body)
        self._update_local(run_id, status=status, end_time=end_time, run_name=run_name)
        return True if result is SPOOLED else bool(result)

    def set_lifecycle(self, run_id: str, stage: str) -> None:
        self.transport.write("set_lifecycle", "POST", f"/runs/{run_id}/lifecycle", {"stage": stage})
        self._update_local(run_id, lifecycle_stage=stage)

    def end_run(
        self,
        run_id: str,
        status: RunStatus,
        end_time: int,
        *,
        tags: Mapping[str, str] | None = None,
        artifacts: Sequence[FileInfo] = (),
    ) -> None:
        body = {
            "status": status,
            "end_time": end_time,
            "tags": dict(tags or {}),
            "artifacts": list(artifacts),
        }
        self.transport.write("end_run", "POST", f"/runs/{run_id}/end", body)
        self._update_local(run_id, status=status, end_time=end_time)

    def create_runs_bulk(
        self,
        runs: Sequence[RunInfo],
        params: Sequence[tuple[str, str, str]],
        tags: Sequence[tuple[str, str, str]],
        metrics: Sequence[MetricRow],
    ) -> None:
        body = {"runs": list(runs), "params": params, "tags": tags, "metrics": metrics}
        self.transport.write("create_runs_bulk", "POST", "/runs-bulk", body, runs=len(runs))

    # -- params and tags --------------------------------------------------------------------

    def log_params(self, run_id: str, params: Sequence[Param]) -> None:
        if params:
            body = {"items": [list(p) for p in params]}
            self.transport.write("log_params", "POST", f"/runs/{run_id}/params", body)

    def set_tags(self, run_id: str, tags: Sequence[RunTag]) -> None:
        if tags:
            body = {"items": [list(t) for t in tags]}
            self.transport.write("set_tags", "POST", f"/runs/{run_id}/tags", body)

    def delete_tag(self, run_id: str, key: str) -> bool:
        path = f"/runs/{run_id}/tags/delete"
        result = self.transport.write("delete_tag", "POST", path, {"key": key})
        return True if result is SPOOLED else bool(result)

    # -- metrics and histograms -------------------------------------------------------------

    def log_metric_rows(self, rows: Sequence[MetricRow]) -> None:
        """One request per batch (the buffered writer's batches included)."""
        if rows:
            body = {"rows": list(rows)}
            self.transport.write("log_metrics", "POST", "/metrics", body, points=len(rows))

    def get_metric_history(self, run_id: str, key: str) -> MetricHistory:
        return wire.history(self._get(f"/runs/{run_id}/metrics/history", key=key))

    def get_metric_histories(self, run_id: str, keys: Sequence[str]) -> dict[str, list[Metric]]:
        found = self._post(f"/runs/{run_id}/metrics/histories", {"keys": list(keys)})
        return {k: [wire.metric(k, p) for p in points] for k, points in found.items()}

    def get_metric_summaries(self, run_id: str) -> list[MetricSummary]:
        return [wire.summary(s) for s in self._get(f"/runs/{run_id}/metrics/summaries")]

    def log_histogram(self, run_id: str, hist: Histogram) -> None:
        path = f"/runs/{run_id}/histograms"
        self.transport.write("log_histogram", "POST", path, {"histogram": hist})

    def get_histograms(self, run_id: str, key: str) -> list[Histogram]:
        return [wire.histogram(h) for h in self._get(f"/runs/{run_id}/histograms", key=key)]

    def list_histogram_keys(self, run_id: str) -> list[str]:
        return list(self._get(f"/runs/{run_id}/histogram-keys"))

    # -- artifacts and dataset inputs -------------------------------------------------------

    def artifact_location(self, info: RunInfo) -> ArtifactFiles:
        """The run's files through the server; or, with ``artifacts_direct`` and a run stored
        at a cloud URL the server gave, straight there (the client records each file)."""
        scheme = info.artifact_uri.partition("://")[0] if "://" in info.artifact_uri else ""
        if self.direct_artifacts and scheme not in ("", "file", "block"):
            return ArtifactLocation(info.artifact_uri)
        return HttpArtifactFiles(self.transport, info.run_id)

    def record_artifact(self, run_id: str, path: str, size: int, sha256: str) -> None:
        body = {"path": path, "size": size, "sha256": sha256}
        self.transport.write("record_artifact", "POST", f"/runs/{run_id}/artifact-records", body)

    def list_artifacts(self, run_id: str, path: str = "") -> list[FileInfo]:
        return [wire.file_info(f) for f in self._get(f"/runs/{run_id}/artifacts", path=path)]

    def list_artifact_files(self, run_id: str, path: str = "") -> list[FileInfo]:
        found = self._get(f"/runs/{run_id}/artifact-files", path=path)
        return [wire.file_info(f) for f in found]

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None:
        if inputs:
            body = {"inputs": list(inputs)}
            self.transport.write("log_inputs", "POST", f"/runs/{run_id}/inputs", body)

    def get_inputs(self, run_id: str) -> list[DatasetInput]:
        return [wire.dataset_input(d) for d in self._get(f"/runs/{run_id}/inputs")]
