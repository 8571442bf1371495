"""The dataset store on SQLite and PostgreSQL, in the tracking database."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from prefect_mlops.core.db import get_engine, with_lock_retry, write_transaction
from prefect_mlops.core.errors import InvalidInput, NotFound
from prefect_mlops.core.ids import now_ms
from prefect_mlops.core.migrate import ensure_schema
from prefect_mlops.datasets import tables as t
from prefect_mlops.datasets.entities import Dataset, RunLink, VersionInfo
from prefect_mlops.datasets.store.base import NewVersion, StoredVersion

T = TypeVar("T")
_NUMBER = re.compile(r"^v?(\d+)$")
_HEX = re.compile(r"^[0-9a-f]{8,64}$")
LATEST = "latest"


class SqlDatasetStore:
    """`DatasetStore` over the metadata database."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.engine = get_engine(database_url)
        ensure_schema(self.engine)
        self._pg = self.engine.dialect.name == "postgresql"

    def _insert(self, table: sa.Table) -> Any:
        return (postgresql if self._pg else sqlite).insert(table)

    def _write(self, fn: Callable[[Connection], T]) -> T:
        def attempt() -> T:
            with write_transaction(self.engine) as conn:
                return fn(conn)

        return with_lock_retry(attempt)

    def _read(self, fn: Callable[[Connection], T]) -> T:
        def attempt() -> T:
            with self.engine.connect() as conn:
                return fn(conn)

        return with_lock_retry(attempt)

    # -- versions ---------------------------------------------------------------------------

    def record_version(self, new: NewVersion) -> tuple[StoredVersion, bool]:
        v = t.dataset_versions

        def write(conn: Connection) -> bool:
            exists = conn.execute(
                sa.select(v.c.number).where(
                    v.c.dataset == new.dataset, v.c.version_id == new.version_id
                )
            ).first()
            if exists is not None:
                return False
            now = now_ms()
            conn.execute(
                self._insert(t.datasets).on_conflict_do_nothing(),
                [{"name": new.dataset, "created_time": now}],
            )
            number = (
                conn.execute(
                    sa.select(sa.func.coalesce(sa.func.max(v.c.number), 0)).where(
                        v.c.dataset == new.dataset
                    )
                ).scalar_one()
                + 1
            )
            conn.execute(
                v.insert(),
                [
                    {
                        "dataset": new.dataset,
                        "version_id": new.version_id,
                        "number": number,
                        "message": new.message,
                        "metadata": json.dumps(dict(new.metadata), default=str),
                        "file_count": new.file_count,
                        "total_size": new.total_size,
                        "created_time": now,
                        "created_by_run": new.created_by_run,
                        "splits": json.dumps(dict(new.splits)),
                        "stats": json.dumps(dict(new.stats), default=str),
                        "storage": new.storage,
                        "storage_ref": new.storage_ref,
                        "chunk_threshold": new.chunk_threshold,
                    }
                ],
            )
            if new.parents:
                conn.execute(
                    t.dataset_version_parents.insert(),
                    [
                        {
                            "dataset": new.dataset,
                            "version_id": new.version_id,
                            "position": i,
                            "parent_id": p,
                        }
                        for i, p in enumerate(new.parents)
                    ],
                )
            if new.tags:
                conn.execute(
                    t.dataset_version_tags.insert(),
                    [
                        {"dataset": new.dataset, "version_id": new.version_id, "key": k, "value": x}
                        for k, x in new.tags.items()
                    ],
                )
            self._upsert_alias(conn, new.dataset, LATEST, new.version_id)
            return True

        created = self._write(write)
        return self.get_version(new.dataset, new.version_id), created

    def _upsert_alias(self, conn: Connection, dataset: str, alias: str, version_id: str) -> None:
        stmt = self._insert(t.dataset_aliases)
        stmt = stmt.on_conflict_do_update(
            index_elements=["dataset", "alias"], set_={"version_id": stmt.excluded.version_id}
        )
        conn.execute(stmt, [{"dataset": dataset, "alias": alias, "version_id": version_id}])

    def _versions(self, conn: Connection, where: Any) -> list[StoredVersion]:
        v = t.dataset_versions
        rows = conn.execute(sa.select(v).where(where).order_by(v.c.number.desc())).all()
        if not rows:
            return []
        keys = {(r.dataset, r.version_id) for r in rows}
        datasets_ = {r.dataset for r in rows}
        parents: dict[tuple[str, str], list[str]] = {}
        p = t.dataset_version_parents
        for r in conn.execute(
            sa.select(p).where(p.c.dataset.in_(datasets_)).order_by(p.c.position)
        ):
            if (r.dataset, r.version_id) in keys:
                parents.setdefault((r.dataset, r.version_id), []).append(r.parent_id)
        tags: dict[tuple[str, str], dict[str, str]] = {}
        tg = t.dataset_version_tags
        for r in conn.execute(sa.select(tg).where(tg.c.dataset.in_(datasets_))):
            if (r.dataset, r.version_id) in keys:
                tags.setdefault((r.dataset, r.version_id), {})[r.key] = r.value
        aliases: dict[tuple[str, str], list[str]] = {}
        a = t.dataset_aliases
        for r in conn.execute(sa.select(a).where(a.c.dataset.in_(datasets_)).order_by(a.c.alias)):
            aliases.setdefault((r.dataset, r.version_id), []).append(r.alias)
        out = []
        for r in rows:
            key = (r.dataset, r.version_id)
            info = VersionInfo(
                dataset=r.dataset,
                version_id=r.version_id,
                number=r.number,
                parents=tuple(parents.get(key, ())),
                message=r.message,
                metadata=json.loads(r.metadata),
                file_count=r.file_count,
                total_size=r.total_size,
                created_time=r.created_time,
                created_by_run=r.created_by_run,
                splits=json.loads(r.splits),
                stats=json.loads(r.stats),
                tags=tags.get(key, {}),
                aliases=tuple(aliases.get(key, ())),
            )
            out.append(StoredVersion(info, r.storage, r.storage_ref, r.chunk_threshold))
        return out

    def get_version(self, dataset: str, version_id: str) -> StoredVersion:
        v = t.dataset_versions
        found = self._read(
            lambda c: self._versions(c, (v.c.dataset == dataset) & (v.c.version_id == version_id))
        )
        if not found:
            self._missing_dataset(dataset)
            raise NotFound(
                f"Dataset {dataset!r} has no version {version_id!r}; "
                f"`prefect-mlops datasets list {dataset}` shows its versions."
            )
        return found[0]

    def _missing_dataset(self, dataset: str) -> None:
        names = [d.name for d in self.list_datasets()]
        if dataset not in names:
            known = ", ".join(repr(n) for n in names[:20]) or "none yet"
            raise NotFound(f"No dataset named {dataset!r} (datasets: {known}).")

    def resolve(self, dataset: str, ref: str) -> str:
        ref = str(ref).strip()
        if not ref:
            raise InvalidInput("A version reference must not be empty; use 'latest' or an id.")
        v, a, tg = t.dataset_versions, t.dataset_aliases, t.dataset_version_tags

        def find(conn: Connection) -> list[str]:
            alias = conn.execute(
                sa.select(a.c.version_id).where(a.c.dataset == dataset, a.c.alias == ref)
            ).scalar()
            if alias is not None:
                return [alias]
            if m := _NUMBER.match(ref):
                hit = conn.execute(
                    sa.select(v.c.version_id).where(
                        v.c.dataset == dataset, v.c.number == int(m.group(1))
                    )
                ).scalar()
                if hit is not None and (ref.startswith("v") or len(ref) < 8):
                    return [hit]
            if _HEX.match(ref):
                return list(
                    conn.execute(
                        sa.select(v.c.version_id)
                        .where(v.c.dataset == dataset, v.c.version_id.startswith(ref))
                        .limit(2)
                    ).scalars()
                )
            if "=" in ref:
                key, _, value = ref.partition("=")
                return list(
                    conn.execute(
                        sa.select(tg.c.version_id)
                        .join(
                            v,
                            (v.c.dataset == tg.c.dataset) & (v.c.version_id == tg.c.version_id),
                        )
                        .where(tg.c.dataset == dataset, tg.c.key == key, tg.c.value == value)
                        .order_by(v.c.number.desc())
                        .limit(1)
                    ).scalars()
                )
            return []

        hits = self._read(find)
        if len(hits) == 1:
            return hits[0]
        self._missing_dataset(dataset)
        if len(hits) > 1:
            raise InvalidInput(
                f"Version prefix {ref!r} of dataset {dataset!r} matches several versions; "
                "give more characters of the id."
            )
        aliases = self._read(
            lambda c: list(c.execute(sa.select(a.c.alias).where(a.c.dataset == dataset)).scalars())
        )
        raise NotFound(
            f"Dataset {dataset!r} has no version {ref!r}. A version is named by its id (or "
            f"8+ of its first characters), 'v<number>', a tag 'key=value' or an alias "
            f"({', '.join(sorted(aliases)) or 'none'})."
        )

    def list_datasets(self) -> list[Dataset]:
        d, v, a = t.datasets, t.dataset_versions, t.dataset_aliases

        def read(conn: Connection) -> list[Dataset]:
            counts: dict[str, int] = {
                r[0]: r[1]
                for r in conn.execute(sa.select(v.c.dataset, sa.func.count()).group_by(v.c.dataset))
            }
            latest: dict[str, str] = {
                r[0]: r[1]
                for r in conn.execute(
                    sa.select(a.c.dataset, a.c.version_id).where(a.c.alias == LATEST)
                )
            }
            return [
                Dataset(r.name, r.created_time, counts.get(r.name, 0), latest.get(r.name))
                for r in conn.execute(sa.select(d).order_by(d.c.name))
            ]

        return self._read(read)

    def list_versions(self, dataset: str) -> list[VersionInfo]:
        v = t.dataset_versions
        found = self._read(lambda c: self._versions(c, v.c.dataset == dataset))
        if not found:
            self._missing_dataset(dataset)
        return [s.info for s in found]

    def all_versions(self) -> list[StoredVersion]:
        return self._read(lambda c: self._versions(c, sa.true()))

    # -- aliases, tags, links ---------------------------------------------------------------

    def set_alias(self, dataset: str, alias: str, version_id: str) -> None:
        self.get_version(dataset, version_id)
        self._write(lambda c: self._upsert_alias(c, dataset, alias, version_id))

    def delete_alias(self, dataset: str, alias: str) -> None:
        a = t.dataset_aliases
        gone = self._write(
            lambda c: (
                c.execute(a.delete().where(a.c.dataset == dataset, a.c.alias == alias)).rowcount
            )
        )
        if not gone:
            raise NotFound(f"Dataset {dataset!r} has no alias {alias!r}.")

    def set_tag(self, dataset: str, version_id: str, key: str, value: str) -> None:
        self.get_version(dataset, version_id)
        stmt = self._insert(t.dataset_version_tags)
        stmt = stmt.on_conflict_do_update(
            index_elements=["dataset", "version_id", "key"], set_={"value": stmt.excluded.value}
        )
        row = {"dataset": dataset, "version_id": version_id, "key": key, "value": value}
        self._write(lambda c: c.execute(stmt, [row]))

    def delete_tag(self, dataset: str, version_id: str, key: str) -> None:
        tg = t.dataset_version_tags
        self._write(
            lambda c: c.execute(
                tg.delete().where(
                    tg.c.dataset == dataset, tg.c.version_id == version_id, tg.c.key == key
                )
            )
        )

    def link_run(self, dataset: str, version_id: str, run_id: str, direction: str) -> None:
        row = {
            "dataset": dataset,
            "version_id": version_id,
            "run_id": run_id,
            "direction": direction,
            "created_time": now_ms(),
        }
        stmt = self._insert(t.dataset_run_links).on_conflict_do_nothing()
        self._write(lambda c: c.execute(stmt, [row]))

    def _links(self, where: Any) -> list[RunLink]:
        r = t.dataset_run_links
        return self._read(
            lambda c: [
                RunLink(x.dataset, x.version_id, x.run_id, x.direction, x.created_time)
                for x in c.execute(sa.select(r).where(where).order_by(r.c.created_time))
            ]
        )

    def run_links(self, dataset: str, version_id: str) -> list[RunLink]:
        r = t.dataset_run_links
        return self._links((r.c.dataset == dataset) & (r.c.version_id == version_id))

    def runs_datasets(self, run_id: str) -> list[RunLink]:
        return self._links(t.dataset_run_links.c.run_id == run_id)
