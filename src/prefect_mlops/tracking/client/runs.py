"""Runs: create, read, resume, end, settle, rename, delete, bulk import, dataset inputs."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prefect_mlops.core.errors import InvalidInput
from prefect_mlops.core.ids import new_id, now_ms
from prefect_mlops.tracking import validation as v
from prefect_mlops.tracking.client.base import (
    ClientBase,
    as_status,
    clean_tags,
    current_user,
    generated_run_name,
    metric_row,
)
from prefect_mlops.tracking.entities import (
    BulkRun,
    DatasetInput,
    FileInfo,
    MetricRow,
    Param,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
)

RUN_NAME_TAG = "mlflow.runName"  # MLflow's copy of the run name, searched as the name itself


class RunsClient(ClientBase):
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
        user_id: str | None = None,
    ) -> Run:
        """A new RUNNING run; ``params`` are logged in the same transaction. AlreadyExists
        when ``prefect_flow_run_id`` already has a run. ``user_id`` defaults to the user of
        this process (a server passes its caller's)."""
        cached = None if self.recheck_writes else self._experiments.get(experiment_id)
        experiment = cached or self.store.get_experiment(experiment_id)
        if experiment.lifecycle_stage != "active":
            raise InvalidInput(
                f"Experiment {experiment.name!r} is deleted; restore it or use another one."
            )
        if parent_run_id is not None:
            self.store.get_run_info(parent_run_id)
        given_tags = clean_tags(tags)
        name_tag = given_tags.get(RUN_NAME_TAG)
        if run_name and name_tag is not None and name_tag != run_name:
            raise InvalidInput(
                f"run_name={run_name!r} and the {RUN_NAME_TAG} tag {name_tag!r} differ; "
                "give one of them, or the same name in both."
            )
        name = run_name or name_tag or generated_run_name()
        v.validate_name(name, "Run", v.MAX_RUN_NAME_LENGTH)
        run = self.store.create_run(
            experiment_id,
            name,
            experiment.artifact_location,
            start_time=start_time,
            user_id=current_user() if user_id is None else user_id,
            tags=given_tags,
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

    def get_run_info(self, run_id: str) -> RunInfo:
        """The run's info as stored (no flush, no settling); NotFound if there is none."""
        return self.store.get_run_info(run_id)

    def run_id_for_flow_run(self, flow_run_id: str) -> str | None:
        """The id of the run bound to a Prefect flow run, if any (no flush)."""
        return self.store.run_id_for_flow_run(flow_run_id)

    def get_run_by_flow_run_id(self, flow_run_id: str) -> Run | None:
        """The run bound to a Prefect flow run, or None (after this process's pending work)."""
        self.flush()
        run_id = self.store.run_id_for_flow_run(str(flow_run_id))
        return self.get_run(run_id) if run_id else None

    def list_running_bound_runs(self) -> list[RunInfo]:
        """Runs still RUNNING that belong to a Prefect flow run."""
        return self.store.list_running_bound_runs()

    def resume_run(self, run_id: str) -> Run:
        """Reopen the run as RUNNING (if it is not) and claim it for this process."""
        info = self.store.get_run_info(run_id)
        if info.lifecycle_stage != "active":
            raise InvalidInput(f"Run {run_id} is deleted; restore_run() it before resuming.")
        if info.status is not RunStatus.RUNNING:
            self.store.update_run(run_id, status=RunStatus.RUNNING)
        self.claim_run(run_id)
        return self.get_run(run_id)

    def set_terminated(
        self,
        run_id: str,
        status: RunStatus | str = RunStatus.FINISHED,
        end_time: int | None = None,
        *,
        tags: Mapping[str, Any] | None = None,
        texts: Mapping[str, str] | None = None,
        files: Mapping[str, str | os.PathLike[str]] | None = None,
    ) -> None:
        """Set the run's status and end time. With final ``tags``, ``texts`` and ``files``
        (artifact path -> content / local file), the artifacts are stored first, then tags,
        artifact records and status are written in one transaction: how a tracked flow run
        is finalised."""
        final = as_status(status)
        if tags is None and texts is None and files is None:
            self.store.get_run_info(run_id)
            self.flush()
            self.store.update_run(run_id, status=final, end_time=end_time or now_ms())
        else:
            self._end_with_records(run_id, final, end_time, tags, texts or {}, files or {})
        if final.is_terminal:
            self._writable.discard(run_id)

    def _end_with_records(
        self,
        run_id: str,
        final: RunStatus,
        end_time: int | None,
        tags: Mapping[str, Any] | None,
        texts: Mapping[str, str],
        files: Mapping[str, str | os.PathLike[str]],
    ) -> None:
        self.require_writable(run_id)
        final_tags = clean_tags(tags)
        location = self.store.artifact_location(self.store.get_run_info(run_id))
        stored = []
        for name, text in texts.items():
            rel = v.safe_artifact_path(name)
            size, digest = location.write_stream(rel, io.BytesIO(text.encode("utf-8")))
            stored.append(FileInfo(rel, False, size, digest))
        for name, path in files.items():
            rel = v.safe_artifact_path(name)
            size, digest = location.write_file(rel, path)
            stored.append(FileInfo(rel, False, size, digest))
        self.flush()
        self.store.end_run(run_id, final, end_time or now_ms(), tags=final_tags, artifacts=stored)

    def settle_run(
        self, run_id: str, status: RunStatus, end_time: int | None, *, tags: Mapping[str, str]
    ) -> bool:
        """End a run with ``status`` only if it is still RUNNING, then set ``tags`` if it
        changed; True if it changed (how runs whose flow runs ended elsewhere are settled)."""
        if not self.store.update_run(
            run_id, status=status, end_time=end_time, only_if_status=RunStatus.RUNNING
        ):
            return False
        self.store.set_tags(run_id, [RunTag(k, val) for k, val in clean_tags(tags).items()])
        return True

    def update_run(self, run_id: str, *, run_name: str | None = None) -> None:
        """Rename the run; an ``mlflow.runName`` tag (which MLflow's client writes and its UI
        reads) follows the new name."""
        if run_name is not None:
            v.validate_name(run_name, "Run", v.MAX_RUN_NAME_LENGTH)
        self.store.get_run_info(run_id)
        self.store.update_run(run_id, run_name=run_name)
        if run_name is not None and RUN_NAME_TAG in self.store.get_run(run_id).data.tags:
            self.store.set_tags(run_id, [RunTag(RUN_NAME_TAG, run_name)])

    def delete_run(self, run_id: str) -> None:
        self.store.get_run_info(run_id)
        self.flush()
        self.store.set_lifecycle(run_id, "deleted")
        self._writable.discard(run_id)

    def restore_run(self, run_id: str) -> None:
        self.store.get_run_info(run_id)
        self.store.set_lifecycle(run_id, "active")

    def create_runs_bulk(
        self, experiment_id: str, runs: Iterable[BulkRun], chunk_size: int = 2000
    ) -> list[str]:
        """Create many finished runs at once (imports, seeding, migrations from other
        trackers): every value is validated, then written with batched inserts."""
        experiment = self.store.get_experiment(experiment_id)
        base = experiment.artifact_location.rstrip("/")
        user = current_user()
        created: list[str] = []
        infos: list[RunInfo] = []
        params: list[tuple[str, str, str]] = []
        tags: list[tuple[str, str, str]] = []
        points: list[MetricRow] = []
        now = now_ms()

        def write() -> None:
            self.store.create_runs_bulk(infos, params, tags, points)
            created.extend(i.run_id for i in infos)
            infos.clear()
            params.clear()
            tags.clear()
            points.clear()

        for spec in runs:
            run_id = new_id()
            start = now if spec.start_time is None else int(spec.start_time)
            infos.append(
                RunInfo(
                    run_id=run_id,
                    experiment_id=experiment_id,
                    run_name=v.validate_name(spec.run_name, "Run", v.MAX_RUN_NAME_LENGTH),
                    status=as_status(spec.status),
                    start_time=start,
                    end_time=spec.end_time,
                    lifecycle_stage="active",
                    user_id=user,
                    artifact_uri=f"{base}/{run_id}/artifacts",
                )
            )
            for key, value in spec.params.items():
                params.append(
                    (run_id, v.validate_key(key, "param"), v.validate_param_value(key, value))
                )
            tags.extend((run_id, key, value) for key, value in clean_tags(spec.tags).items())
            for key, series in spec.metrics.items():
                key = v.validate_key(key)
                history = series if isinstance(series, Sequence) else [(0, series)]
                points.extend(
                    metric_row(run_id, key, value, start, v.metric_step(key, step))
                    for step, value in history
                )
            if len(infos) >= chunk_size:
                write()
        if infos:
            write()
        return created

    def log_inputs(self, run_id: str, datasets: Iterable[DatasetInput]) -> None:
        """Record the datasets a run read (searchable as ``datasets.name``, ``.digest``,
        ``.context``)."""
        self.require_writable(run_id)
        inputs = []
        for d in datasets:
            if not d.name or not d.digest:
                raise InvalidInput(f"Dataset inputs need a name and a digest; got {d!r}.")
            inputs.append(d)
        self.store.log_inputs(run_id, inputs)

    def get_inputs(self, run_id: str) -> list[DatasetInput]:
        return self.store.get_inputs(run_id)
