"""Logged models (MLflow 3), their tags and params, and the models each run produced.

Searches take MLflow's logged-model filters as the stock client sends them: comparisons of
an attribute, ``tags.<key>`` or ``params.<key>`` with a quoted value (``=``, ``!=``, ``LIKE``),
joined by AND. Pages are offsets carried in an opaque token.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from prefect_mlops.core.errors import InvalidInput, NotFound
from prefect_mlops.core.ids import new_id, now_ms
from prefect_mlops.tracking import tables as t
from prefect_mlops.tracking.entities import LoggedModel, LoggedModelStatus, ModelOutput
from prefect_mlops.tracking.store.sql.engine import SqlStoreBase, chunks
from prefect_mlops.tracking.store.sql.filters import string_condition

_ATTRIBUTES = {
    "name": t.logged_models.c.name,
    "model_id": t.logged_models.c.model_id,
    "model_type": t.logged_models.c.model_type,
    "status": t.logged_models.c.status,
    "source_run_id": t.logged_models.c.source_run_id,
    "creation_timestamp": t.logged_models.c.creation_time,
    "creation_time": t.logged_models.c.creation_time,
    "last_updated_timestamp": t.logged_models.c.last_update_time,
}
_COMPARISON = re.compile(
    r"""\s*(?P<field>[A-Za-z_][\w.]*|`[^`]+`|(?:tags|params)\.`[^`]+`)\s*
    (?P<op>!=|=|LIKE|ILIKE)\s*
    (?:'(?P<sq>[^']*)'|"(?P<dq>[^"]*)"|(?P<num>-?\d+))\s*(?:AND\s+|$)""",
    re.IGNORECASE | re.VERBOSE,
)


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (ValueError, KeyError, TypeError):
        raise InvalidInput(f"Invalid page token {token!r}; pass back a next_page_token.") from None
    if not isinstance(offset, int) or offset < 0:
        raise InvalidInput(f"Invalid page token {token!r}; pass back a next_page_token.")
    return offset


def _conditions(filter_string: str) -> list[Any]:
    """SQL conditions for a logged-model filter; InvalidInput names what does not parse."""
    text, pos, out = filter_string.strip(), 0, []
    m = t.logged_models
    while pos < len(text):
        match = _COMPARISON.match(text, pos)
        if match is None:
            raise InvalidInput(
                f"Cannot parse logged-model filter {filter_string!r} at {text[pos:]!r}; use "
                "comparisons like name = 'model' AND tags.stage = 'prod' joined by AND."
            )
        pos = match.end()
        field, op = match["field"].replace("`", ""), match["op"]
        value: Any = match["sq"] if match["sq"] is not None else match["dq"]
        if value is None:
            value = int(match["num"])
        if field == "status" and isinstance(value, str):
            value = value.removeprefix("LOGGED_MODEL_")
        prefix, _, key = field.partition(".")
        if prefix in ("tags", "params") and key:
            table = t.logged_model_tags if prefix == "tags" else t.logged_model_params
            out.append(
                sa.exists().where(
                    table.c.model_id == m.c.model_id,
                    table.c.key == key,
                    string_condition(table.c.value, op.upper(), value),
                )
            )
            continue
        column = _ATTRIBUTES.get(field.removeprefix("attributes."))
        if column is None:
            raise InvalidInput(
                f"Logged models cannot be filtered by {field!r}; use one of "
                f"{sorted(_ATTRIBUTES)}, tags.<key> or params.<key>."
            )
        out.append(string_condition(column, op.upper(), value))
    return out


class LoggedModelsMixin(SqlStoreBase):
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
        model_id = f"m-{new_id()}"
        now = now_ms()
        row = {
            "model_id": model_id,
            "experiment_id": experiment_id,
            "name": name,
            "artifact_location": f"{artifact_root.rstrip('/')}/models/{model_id}/artifacts",
            "creation_time": now,
            "last_update_time": now,
            "status": LoggedModelStatus.PENDING.value,
            "lifecycle_stage": "active",
            "model_type": model_type,
            "source_run_id": source_run_id,
            "status_message": "",
        }

        def do(conn: Connection) -> None:
            conn.execute(t.logged_models.insert().values(**row))
            self._put_pairs(conn, t.logged_model_tags, model_id, tags or {}, replace=True)
            self._put_pairs(conn, t.logged_model_params, model_id, params or {}, replace=False)

        self._write(do)
        return self.get_logged_model(model_id)

    def _put_pairs(
        self,
        conn: Connection,
        table: sa.Table,
        model_id: str,
        pairs: Mapping[str, str],
        *,
        replace: bool,
    ) -> None:
        if not pairs:
            return
        stmt = self._insert(table)
        if replace:
            stmt = stmt.on_conflict_do_update(
                index_elements=[table.c.model_id, table.c.key], set_={"value": stmt.excluded.value}
            )
        else:
            stmt = stmt.on_conflict_do_nothing()
        conn.execute(stmt, [{"model_id": model_id, "key": k, "value": v} for k, v in pairs.items()])

    def _models_from_rows(self, conn: Connection, rows: Sequence[Any]) -> list[LoggedModel]:
        ids = [r.model_id for r in rows]
        tags: dict[str, dict[str, str]] = {i: {} for i in ids}
        params: dict[str, dict[str, str]] = {i: {} for i in ids}
        for chunk in chunks(ids):
            for table, into in ((t.logged_model_tags, tags), (t.logged_model_params, params)):
                query = sa.select(table).where(table.c.model_id.in_(chunk))
                for pair in conn.execute(query):
                    into[pair.model_id][pair.key] = pair.value
        return [
            LoggedModel(
                model_id=r.model_id,
                experiment_id=r.experiment_id,
                name=r.name,
                artifact_location=r.artifact_location,
                creation_time=r.creation_time,
                last_update_time=r.last_update_time,
                status=LoggedModelStatus(r.status),
                lifecycle_stage=r.lifecycle_stage,
                model_type=r.model_type,
                source_run_id=r.source_run_id,
                status_message=r.status_message,
                tags=tags[r.model_id],
                params=params[r.model_id],
            )
            for r in rows
        ]

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        m = t.logged_models

        def do(conn: Connection) -> list[LoggedModel]:
            rows = conn.execute(sa.select(m).where(m.c.model_id == model_id)).all()
            return self._models_from_rows(conn, rows)

        found = self._read(do)
        if not found or (found[0].lifecycle_stage != "active" and not allow_deleted):
            raise NotFound(f"No logged model with id {model_id!r}.")
        return found[0]

    def _touch_model(self, conn: Connection, model_id: str, **values: Any) -> None:
        m = t.logged_models
        updated = conn.execute(
            m.update()
            .where(m.c.model_id == model_id, m.c.lifecycle_stage == "active")
            .values(last_update_time=now_ms(), **values)
        ).rowcount
        if not updated:
            raise NotFound(f"No logged model with id {model_id!r}.")

    def set_logged_model_status(
        self, model_id: str, status: LoggedModelStatus, message: str = ""
    ) -> LoggedModel:
        self._write(
            lambda conn: self._touch_model(
                conn, model_id, status=status.value, status_message=message
            )
        )
        return self.get_logged_model(model_id)

    def delete_logged_model(self, model_id: str) -> None:
        self._write(lambda conn: self._touch_model(conn, model_id, lifecycle_stage="deleted"))

    def search_logged_models(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        max_results: int = 100,
        order_by: Sequence[tuple[str, bool]] = (),
        page_token: str | None = None,
    ) -> tuple[list[LoggedModel], str | None]:
        m = t.logged_models
        offset = _offset(page_token)
        orders = []
        for field, ascending in order_by:
            column = _ATTRIBUTES.get(field.removeprefix("attributes."))
            if column is None:
                raise InvalidInput(
                    f"Logged models cannot be ordered by {field!r}; "
                    f"use one of {sorted(_ATTRIBUTES)}."
                )
            orders.append(column.asc() if ascending else column.desc())
        query = (
            sa.select(m)
            .where(
                m.c.experiment_id.in_(list(experiment_ids)),
                m.c.lifecycle_stage == "active",
                *_conditions(filter_string or ""),
            )
            .order_by(*orders, m.c.creation_time.desc(), m.c.model_id)
            .offset(offset)
            .limit(max_results + 1)
        )

        def do(conn: Connection) -> list[LoggedModel]:
            return self._models_from_rows(conn, conn.execute(query).all())

        found = self._read(do)
        more = len(found) > max_results
        return found[:max_results], _page_token(offset + max_results) if more else None

    def set_logged_model_tags(self, model_id: str, tags: Mapping[str, str]) -> None:
        def do(conn: Connection) -> None:
            self._touch_model(conn, model_id)
            self._put_pairs(conn, t.logged_model_tags, model_id, tags, replace=True)

        self._write(do)

    def delete_logged_model_tag(self, model_id: str, key: str) -> bool:
        mt = t.logged_model_tags

        def do(conn: Connection) -> bool:
            self._touch_model(conn, model_id)
            query = mt.delete().where(mt.c.model_id == model_id, mt.c.key == key)
            return bool(conn.execute(query).rowcount)

        return self._write(do)

    def log_logged_model_params(self, model_id: str, params: Mapping[str, str]) -> None:
        def do(conn: Connection) -> None:
            self._touch_model(conn, model_id)
            self._put_pairs(conn, t.logged_model_params, model_id, params, replace=False)

        self._write(do)

    def log_model_outputs(self, run_id: str, outputs: Sequence[ModelOutput]) -> None:
        if not outputs:
            return
        o = t.run_model_outputs
        stmt = self._insert(o)
        stmt = stmt.on_conflict_do_update(
            index_elements=[o.c.run_id, o.c.model_id], set_={"step": stmt.excluded.step}
        )
        rows = [{"run_id": run_id, "model_id": x.model_id, "step": x.step} for x in outputs]
        self._write(lambda conn: conn.execute(stmt, rows))

    def get_model_outputs(self, run_id: str) -> list[ModelOutput]:
        return self.get_model_outputs_many([run_id])[run_id]

    def get_model_outputs_many(self, run_ids: Sequence[str]) -> dict[str, list[ModelOutput]]:
        o = t.run_model_outputs
        found: dict[str, list[ModelOutput]] = {run_id: [] for run_id in run_ids}

        def do(conn: Connection) -> None:
            for chunk in chunks(list(found)):
                query = (
                    sa.select(o.c.run_id, o.c.model_id, o.c.step)
                    .where(o.c.run_id.in_(chunk))
                    .order_by(o.c.run_id, o.c.step, o.c.model_id)
                )
                for run_id, model_id, step in conn.execute(query):
                    found[run_id].append(ModelOutput(model_id, step))

        self._read(do)
        return found
