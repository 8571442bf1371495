"""Experiments and their tags."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from prefect_mlops.core.errors import AlreadyExists, NotFound
from prefect_mlops.core.ids import new_id, now_ms
from prefect_mlops.tracking import tables as t
from prefect_mlops.tracking.entities import Experiment, ViewType
from prefect_mlops.tracking.search.grammar import parse_filter
from prefect_mlops.tracking.store.sql.engine import SqlStoreBase, chunks, lifecycle_filter
from prefect_mlops.tracking.store.sql.filters import (
    EXPERIMENT_ATTRIBUTES,
    ExperimentFilterCompiler,
)


class ExperimentsMixin(SqlStoreBase):
    def create_experiment(
        self,
        name: str,
        artifact_root: str,
        tags: Mapping[str, str] | None = None,
        experiment_id: str | None = None,
    ) -> str:
        experiment_id = experiment_id or new_id()
        now = now_ms()

        def do(conn: Connection) -> None:
            conn.execute(
                t.experiments.insert().values(
                    experiment_id=experiment_id,
                    name=name,
                    artifact_location=f"{artifact_root.rstrip('/')}/{experiment_id}",
                    lifecycle_stage="active",
                    creation_time=now,
                    last_update_time=now,
                )
            )
            if tags:
                conn.execute(
                    t.experiment_tags.insert(),
                    [
                        {"experiment_id": experiment_id, "key": k, "value": v}
                        for k, v in tags.items()
                    ],
                )

        try:
            self._write(do)
        except IntegrityError:
            raise AlreadyExists(
                f"Experiment {name!r} already exists; use get_experiment_by_name({name!r}) "
                "or choose another name."
            ) from None
        return experiment_id

    def _experiment_from_rows(self, conn: Connection, rows: Sequence[Any]) -> list[Experiment]:
        ids = [r.experiment_id for r in rows]
        tags: dict[str, dict[str, str]] = {i: {} for i in ids}
        for chunk in chunks(ids):
            for tag in conn.execute(
                sa.select(t.experiment_tags).where(t.experiment_tags.c.experiment_id.in_(chunk))
            ):
                tags[tag.experiment_id][tag.key] = tag.value
        return [
            Experiment(
                experiment_id=r.experiment_id,
                name=r.name,
                artifact_location=r.artifact_location,
                lifecycle_stage=r.lifecycle_stage,
                creation_time=r.creation_time,
                last_update_time=r.last_update_time,
                tags=tags[r.experiment_id],
            )
            for r in rows
        ]

    def get_experiment(self, experiment_id: str) -> Experiment:
        def do(conn: Connection) -> list[Experiment]:
            rows = conn.execute(
                sa.select(t.experiments).where(t.experiments.c.experiment_id == experiment_id)
            ).all()
            return self._experiment_from_rows(conn, rows)

        found = self._read(do)
        if not found:
            raise NotFound(f"No experiment with id {experiment_id!r}.")
        return found[0]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        def do(conn: Connection) -> list[Experiment]:
            rows = conn.execute(sa.select(t.experiments).where(t.experiments.c.name == name)).all()
            return self._experiment_from_rows(conn, rows)

        found = self._read(do)
        return found[0] if found else None

    def search_experiments(
        self,
        view: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        filter_string: str | None = None,
    ) -> list[Experiment]:
        node = parse_filter(filter_string, frozenset(EXPERIMENT_ATTRIBUTES))
        conditions = (
            [] if node is None else [ExperimentFilterCompiler(filter_string or "").compile(node)]
        )

        def do(conn: Connection) -> list[Experiment]:
            rows = conn.execute(
                sa.select(t.experiments)
                .where(lifecycle_filter(t.experiments.c.lifecycle_stage, view), *conditions)
                .order_by(t.experiments.c.last_update_time.desc(), t.experiments.c.name)
                .limit(max_results)
            ).all()
            return self._experiment_from_rows(conn, rows)

        return self._read(do)

    # -- edits after creation (ExperimentEditStore) -----------------------------------------

    def _touch_experiment(self, conn: Connection, experiment_id: str, **values: Any) -> None:
        e = t.experiments
        updated = conn.execute(
            e.update()
            .where(e.c.experiment_id == experiment_id)
            .values(last_update_time=now_ms(), **values)
        ).rowcount
        if not updated:
            raise NotFound(f"No experiment with id {experiment_id!r}.")

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        try:
            self._write(lambda conn: self._touch_experiment(conn, experiment_id, name=new_name))
        except IntegrityError:
            raise AlreadyExists(
                f"Experiment {new_name!r} already exists; choose another name."
            ) from None

    def set_experiment_lifecycle(self, experiment_id: str, stage: str) -> None:
        """Delete or restore an experiment and, as MLflow's store does, all of its runs with it
        (in one transaction)."""
        runs = t.runs.update().where(t.runs.c.experiment_id == experiment_id)
        runs = runs.values(
            lifecycle_stage=stage, deleted_time=now_ms() if stage == "deleted" else None
        )

        def do(conn: Connection) -> None:
            self._touch_experiment(conn, experiment_id, lifecycle_stage=stage)
            conn.execute(runs)

        self._write(do)

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        stmt = self._insert(t.experiment_tags)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.experiment_tags.c.experiment_id, t.experiment_tags.c.key],
            set_={"value": stmt.excluded.value},
        )

        def do(conn: Connection) -> None:
            self._touch_experiment(conn, experiment_id)
            conn.execute(stmt, [{"experiment_id": experiment_id, "key": key, "value": value}])

        self._write(do)

    def delete_experiment_tag(self, experiment_id: str, key: str) -> bool:
        et = t.experiment_tags

        def do(conn: Connection) -> bool:
            self._touch_experiment(conn, experiment_id)
            deleted = conn.execute(
                et.delete().where(et.c.experiment_id == experiment_id, et.c.key == key)
            ).rowcount
            return bool(deleted)

        return self._write(do)
