"""Artifact records (the files live in artifact storage) and the datasets runs read."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from prefect_mlops.core.ids import now_ms
from prefect_mlops.core.storage import ArtifactLocation
from prefect_mlops.tracking import tables as t
from prefect_mlops.tracking.entities import DatasetInput, FileInfo, RunInfo
from prefect_mlops.tracking.store.sql.engine import SqlStoreBase, chunks


class ArtifactsMixin(SqlStoreBase):
    def artifact_location(self, info: RunInfo) -> ArtifactLocation:
        """The run's artifact files, read and written straight in artifact storage."""
        return ArtifactLocation(info.artifact_uri)

    def record_artifact(self, run_id: str, path: str, size: int, sha256: str) -> None:
        stmt = self._artifact_upsert()
        row = {
            "run_id": run_id,
            "path": path,
            "size": size,
            "sha256": sha256,
            "created_time": now_ms(),
        }
        self._write(lambda conn: conn.execute(stmt, [row]))

    def delete_artifact_records(self, run_id: str, path: str = "") -> int:
        """Forget the records of the run's artifact files at or under ``path`` (the files
        themselves were removed from storage); returns how many."""
        a = t.artifacts
        where = [a.c.run_id == run_id]
        if path:
            where.append(sa.or_(a.c.path == path, a.c.path.startswith(f"{path}/", autoescape=True)))
        return int(self._write(lambda conn: conn.execute(a.delete().where(*where)).rowcount))

    def list_artifacts(self, run_id: str, path: str = "") -> list[FileInfo]:
        """Direct children of ``path``: files with size and sha256, and sub-folders."""
        a = t.artifacts
        prefix = f"{path}/" if path else ""
        query = sa.select(a.c.path, a.c.size, a.c.sha256).where(a.c.run_id == run_id)
        if prefix:
            query = query.where(a.c.path.startswith(prefix, autoescape=True))
        rows = self._read(lambda conn: conn.execute(query.order_by(a.c.path)).all())
        entries: dict[str, FileInfo] = {}
        for full, size, digest in rows:
            rest = full[len(prefix) :]
            head, sep, _ = rest.partition("/")
            if sep:
                entries.setdefault(prefix + head, FileInfo(prefix + head, True))
            else:
                entries[full] = FileInfo(full, False, size, digest)
        return sorted(entries.values(), key=lambda f: f.path)

    def list_artifact_files(self, run_id: str, path: str = "") -> list[FileInfo]:
        """Every artifact file at or under ``path``, with size and sha256, sorted by path."""
        a = t.artifacts
        query = sa.select(a.c.path, a.c.size, a.c.sha256).where(a.c.run_id == run_id)
        if path:
            query = query.where(
                sa.or_(a.c.path == path, a.c.path.startswith(f"{path}/", autoescape=True))
            )
        rows = self._read(lambda conn: conn.execute(query.order_by(a.c.path)).all())
        return [FileInfo(p, False, size, digest) for p, size, digest in rows]

    # -- dataset inputs ---------------------------------------------------------------------

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None:
        rows = [
            {"run_id": run_id, "name": n, "digest": d, "context": c}
            for n, d, c in {(i.name, i.digest, i.context) for i in inputs}
        ]
        if not rows:
            return
        stmt = self._insert(t.run_datasets).on_conflict_do_nothing()
        self._write(lambda conn: conn.execute(stmt, rows))

    def get_inputs(self, run_id: str) -> list[DatasetInput]:
        return self.get_inputs_many([run_id])[run_id]

    def get_inputs_many(self, run_ids: Sequence[str]) -> dict[str, list[DatasetInput]]:
        d = t.run_datasets
        found: dict[str, list[DatasetInput]] = {run_id: [] for run_id in run_ids}

        def do(conn: Connection) -> None:
            for chunk in chunks(list(found)):
                query = (
                    sa.select(d.c.run_id, d.c.name, d.c.digest, d.c.context)
                    .where(d.c.run_id.in_(chunk))
                    .order_by(d.c.run_id, d.c.name)
                )
                for run_id, name, digest, context in conn.execute(query):
                    found[run_id].append(DatasetInput(name, digest, context))

        self._read(do)
        return found
