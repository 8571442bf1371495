"""Runs, their params and tags, and the full-text documents kept in step with them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from prefect_mlops.core.errors import AlreadyExists, Conflict, NotFound
from prefect_mlops.core.ids import new_id, now_ms
from prefect_mlops.tracking import tables as t
from prefect_mlops.tracking.entities import (
    FileInfo,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
)
from prefect_mlops.tracking.store.sql.engine import SqlStoreBase, info_from_row, numeric_value


class RunsMixin(SqlStoreBase):
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
        """A new run; ``run_id`` is a client-made id (runs started offline keep theirs),
        a new one by default."""
        given = run_id is not None
        run_id = run_id or new_id()
        values = {
            "run_id": run_id,
            "experiment_id": experiment_id,
            "run_name": run_name,
            "status": status.value,
            "start_time": start_time if start_time is not None else now_ms(),
            "end_time": None,
            "lifecycle_stage": "active",
            "user_id": user_id,
            "artifact_uri": f"{artifact_location.rstrip('/')}/{run_id}/artifacts",
            "parent_run_id": parent_run_id,
            "prefect_flow_run_id": prefect_flow_run_id,
            "deleted_time": None,
        }
        tag_rows = [{"run_id": run_id, "key": k, "value": v} for k, v in (tags or {}).items()]

        param_rows = [
            {"run_id": run_id, "key": k, "value": v, "num_value": numeric_value(v)}
            for k, v in params
        ]

        def do(conn: Connection) -> None:
            conn.execute(t.runs.insert().values(**values))
            if tag_rows:
                conn.execute(t.tags.insert(), tag_rows)
            if param_rows:
                conn.execute(t.params.insert(), param_rows)
            self._refresh_search_docs(conn, [run_id])

        try:
            self._write(do)
        except IntegrityError:
            if given and self._run_exists(run_id):
                raise AlreadyExists(f"A run with id {run_id!r} already exists.") from None
            if prefect_flow_run_id is None or self.run_id_for_flow_run(prefect_flow_run_id) is None:
                raise
            raise AlreadyExists(
                f"Flow run {prefect_flow_run_id} already has a run; find it with "
                f"run_id_for_flow_run({prefect_flow_run_id!r})."
            ) from None
        info = info_from_row(values)
        return Run(
            info=info,
            data=RunData(
                params={p.key: p.value for p in params},
                tags={r["key"]: r["value"] for r in tag_rows},
            ),
        )

    def get_run_info(self, run_id: str) -> RunInfo:
        row = self._read(
            lambda conn: conn.execute(sa.select(t.runs).where(t.runs.c.run_id == run_id)).first()
        )
        if row is None:
            raise NotFound(f"No run with id {run_id!r}.")
        return info_from_row(row)

    def _run_exists(self, run_id: str) -> bool:
        query = sa.select(t.runs.c.run_id).where(t.runs.c.run_id == run_id)
        return self._read(lambda conn: conn.execute(query).first()) is not None

    def run_id_for_flow_run(self, flow_run_id: str) -> str | None:
        """The id of the run bound to a Prefect flow run, if any."""
        return self._read(
            lambda conn: conn.execute(
                sa.select(t.runs.c.run_id).where(t.runs.c.prefect_flow_run_id == flow_run_id)
            ).scalar()
        )

    def get_run(self, run_id: str) -> Run:
        def do(conn: Connection) -> list[Run]:
            rows = conn.execute(sa.select(t.runs).where(t.runs.c.run_id == run_id)).all()
            return self._load_runs(conn, rows)

        found = self._read(do)
        if not found:
            raise NotFound(f"No run with id {run_id!r}.")
        return found[0]

    def list_running_bound_runs(self) -> list[RunInfo]:
        """Runs still RUNNING that belong to a Prefect flow run (candidates for reconcile)."""
        rows = self._read(
            lambda conn: conn.execute(
                sa.select(t.runs).where(
                    t.runs.c.status == RunStatus.RUNNING.value,
                    t.runs.c.prefect_flow_run_id.is_not(None),
                )
            ).all()
        )
        return [info_from_row(r) for r in rows]

    def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
        only_if_status: RunStatus | None = None,
    ) -> bool:
        """Update a run's info; with ``only_if_status`` only when it still has that status."""
        values: dict[str, Any] = {}
        if status is not None:
            values["status"] = status.value
        if end_time is not None:
            values["end_time"] = end_time
        if run_name is not None:
            values["run_name"] = run_name
        if not values:
            return False
        query = t.runs.update().where(t.runs.c.run_id == run_id).values(**values)
        if only_if_status is not None:
            query = query.where(t.runs.c.status == only_if_status.value)

        def do(conn: Connection) -> bool:
            changed = bool(conn.execute(query).rowcount)
            if changed and run_name is not None:
                self._refresh_search_docs(conn, [run_id])
            return changed

        return self._write(do)

    def set_lifecycle(self, run_id: str, stage: str) -> None:
        deleted_time = now_ms() if stage == "deleted" else None
        self._write(
            lambda conn: conn.execute(
                t.runs.update()
                .where(t.runs.c.run_id == run_id)
                .values(lifecycle_stage=stage, deleted_time=deleted_time)
            )
        )

    def end_run(
        self,
        run_id: str,
        status: RunStatus,
        end_time: int,
        *,
        tags: Mapping[str, str] | None = None,
        artifacts: Sequence[FileInfo] = (),
    ) -> None:
        """Set final ``tags``, record ``artifacts`` (already stored) and end the run with
        ``status``: one transaction, so a run is never seen ended without them."""
        tag_rows = [{"run_id": run_id, "key": k, "value": v} for k, v in (tags or {}).items()]
        created = now_ms()
        artifact_rows = [
            {
                "run_id": run_id,
                "path": f.path,
                "size": f.file_size,
                "sha256": f.sha256,
                "created_time": created,
            }
            for f in artifacts
        ]
        update = (
            t.runs.update()
            .where(t.runs.c.run_id == run_id)
            .values(status=status.value, end_time=end_time)
        )

        def do(conn: Connection) -> None:
            if tag_rows:
                conn.execute(self._tag_upsert(), tag_rows)
            if artifact_rows:
                conn.execute(self._artifact_upsert(), artifact_rows)
            if not conn.execute(update).rowcount:
                raise NotFound(f"No run with id {run_id!r}.")
            if tag_rows:
                self._refresh_search_docs(conn, [run_id])

        self._write(do)

    # -- params and tags --------------------------------------------------------------------

    def log_params(self, run_id: str, params: Sequence[Param]) -> None:
        if not params:
            return
        wanted = {p.key: p.value for p in params}

        def do(conn: Connection) -> None:
            existing = dict(
                conn.execute(
                    sa.select(t.params.c.key, t.params.c.value).where(
                        t.params.c.run_id == run_id, t.params.c.key.in_(list(wanted))
                    )
                ).all()
            )
            for key, value in wanted.items():
                if key in existing and existing[key] != value:
                    raise Conflict(
                        f"Param {key!r} of run {run_id} is already {existing[key]!r}; it cannot "
                        f"change to {value!r}. Params are immutable: log the new value under "
                        "another key, or start a new run."
                    )
            new = [
                {"run_id": run_id, "key": k, "value": v, "num_value": numeric_value(v)}
                for k, v in wanted.items()
                if k not in existing
            ]
            if new:
                conn.execute(t.params.insert(), new)

        self._write(do)

    def set_tags(self, run_id: str, tags: Sequence[RunTag]) -> None:
        if not tags:
            return
        rows = [{"run_id": run_id, "key": k, "value": v} for k, v in dict(tags).items()]
        stmt = self._tag_upsert()

        def do(conn: Connection) -> None:
            conn.execute(stmt, rows)
            self._refresh_search_docs(conn, [run_id])

        self._write(do)

    def delete_tag(self, run_id: str, key: str) -> bool:
        def do(conn: Connection) -> bool:
            query = t.tags.delete().where(t.tags.c.run_id == run_id, t.tags.c.key == key)
            deleted = bool(conn.execute(query).rowcount)
            self._refresh_search_docs(conn, [run_id])
            return deleted

        return self._write(do)
