"""Search, count, aggregate and save searches of runs: the `TrackingClient` methods.

Filters are parsed (grammar.py), compiled to SQL (sql.py) and run by the store; pages are
walked with keyset tokens, so inserting runs while paging neither repeats nor skips any.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from prefect_mlops.core.errors import InvalidInput, NotFound
from prefect_mlops.core.ids import now_ms
from prefect_mlops.tracking import tables as t
from prefect_mlops.tracking.entities import (
    PagedList,
    Run,
    SavedSearch,
    ViewType,
)
from prefect_mlops.tracking.search import sql
from prefect_mlops.tracking.search.grammar import (
    Identifier,
    InvalidFilter,
    parse_filter,
    parse_order_by,
    tokenize,
)
from prefect_mlops.tracking.validation import MAX_KEY_LENGTH, validate_name

if TYPE_CHECKING:
    from prefect_mlops.tracking.store import SqlTrackingStore

MAX_RESULTS = 50_000
AGGREGATES = ("mean", "min", "max", "sum", "count", "std")


def _view(value: ViewType | str) -> ViewType:
    try:
        return ViewType(value)
    except ValueError:
        raise InvalidInput(
            f"run_view_type {value!r} is not one of {[v.value for v in ViewType]}."
        ) from None


def runs_to_pandas(runs: Sequence[Run]) -> Any:
    """MLflow's layout: one row per run, ``params.x``, ``metrics.y`` and ``tags.z`` columns."""
    try:
        import pandas as pd
    except ImportError:
        raise InvalidInput("output='pandas' needs pandas: pip install pandas.") from None
    records = []
    for run in runs:
        info = run.info
        record: dict[str, Any] = {
            "run_id": info.run_id,
            "experiment_id": info.experiment_id,
            "run_name": info.run_name,
            "status": info.status.value,
            "start_time": pd.to_datetime(info.start_time, unit="ms", utc=True),
            "end_time": pd.to_datetime(info.end_time, unit="ms", utc=True)
            if info.end_time is not None
            else pd.NaT,
            "artifact_uri": info.artifact_uri,
        }
        record.update({f"metrics.{k}": v for k, v in run.data.metrics.items()})
        record.update({f"params.{k}": v for k, v in run.data.params.items()})
        record.update({f"tags.{k}": v for k, v in run.data.tags.items()})
        records.append(record)
    return pd.DataFrame.from_records(records)


class RunSearchMixin:
    """Search methods of `TrackingClient` (needs ``store`` and ``flush``)."""

    store: SqlTrackingStore

    if TYPE_CHECKING:  # provided by TrackingClient

        def flush(self) -> None: ...

        def _reconcile(self, runs: Sequence[Run]) -> bool: ...

    def _experiment_scope(
        self, experiment_ids: Sequence[str] | None, experiment_names: Sequence[str] | None
    ) -> list[str] | None:
        if experiment_ids is None and experiment_names is None:
            return None
        ids = list(experiment_ids or [])
        for name in experiment_names or []:
            found = self.store.get_experiment_by_name(name)
            if found is not None:
                ids.append(found.experiment_id)
        return ids

    def _conditions(self, filter_string: str | None, query: str | None) -> sql.RunFilter:
        node = parse_filter(filter_string)
        run_filter = sql.FilterCompiler(filter_string or "").compile_runs(node)
        if query is not None and query.strip():
            run_filter.conditions.append(self.store.full_text_condition(query))
        return run_filter

    def _apply_saved(
        self,
        saved: str | None,
        filter_string: str,
        order_by: Sequence[str] | None,
        experiment_ids: Sequence[str] | None,
        query: str | None,
    ) -> tuple[str, Sequence[str] | None, Sequence[str] | None, str | None]:
        if saved is None:
            return filter_string, order_by, experiment_ids, query
        found = self.get_saved_search(saved)
        combined = " AND ".join(f"({f})" for f in (found.filter_string, filter_string) if f.strip())
        words = " ".join(q for q in (found.query, query) if q)
        return (
            combined,
            order_by if order_by is not None else found.order_by,
            experiment_ids if experiment_ids is not None else found.experiment_ids,
            words or None,
        )

    def search_runs(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter_string: str = "",
        run_view_type: ViewType | str = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
        *,
        experiment_names: Sequence[str] | None = None,
        query: str | None = None,
        saved: str | None = None,
        output: Literal["list", "pandas"] = "list",
    ) -> Any:
        """Runs matching ``filter_string`` (MLflow's grammar plus OR, NOT and parentheses) and
        the full-text ``query``, ordered by ``order_by`` (newest first by default).

        Returns a `PagedList` of runs whose ``token`` fetches the next page, or a pandas
        DataFrame with ``output="pandas"``. ``saved`` starts from a saved search.
        """
        if not isinstance(max_results, int) or not 0 < max_results <= MAX_RESULTS:
            raise InvalidInput(
                f"max_results={max_results} is out of range; use 1..{MAX_RESULTS} and "
                "page_token to read further."
            )
        if output not in ("list", "pandas"):
            raise InvalidInput(f"output={output!r}; use 'list' or 'pandas'.")
        filter_string, order_by, experiment_ids, query = self._apply_saved(
            saved, filter_string, order_by, experiment_ids, query
        )
        view = _view(run_view_type)
        scope = self._experiment_scope(experiment_ids, experiment_names)
        run_filter = self._conditions(filter_string, query)
        order_text = ", ".join(order_by or [])
        ordering = sql.build_ordering(order_text, parse_order_by(list(order_by or [])), run_filter)
        fingerprint = sql.fingerprint(filter_string, list(order_by or []), scope, view.value, query)
        after = (
            sql.decode_token(page_token, fingerprint, len(ordering.exprs)) if page_token else None
        )
        self.flush()
        if scope == []:
            page: list[Run] = []
            last = None
        else:
            page, last = self.store.search_page(
                scope, view, run_filter, ordering, max_results, after
            )
            if self._reconcile(page):
                page, last = self.store.search_page(
                    scope, view, run_filter, ordering, max_results, after
                )
        token = sql.encode_token(last, fingerprint) if last is not None else None
        if output == "pandas":
            frame = runs_to_pandas(page)
            frame.attrs["token"] = token
            return frame
        return PagedList(page, token)

    def count_runs(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter_string: str = "",
        run_view_type: ViewType | str = ViewType.ACTIVE_ONLY,
        *,
        experiment_names: Sequence[str] | None = None,
        query: str | None = None,
    ) -> int:
        """How many runs match, without loading them."""
        scope = self._experiment_scope(experiment_ids, experiment_names)
        if scope == []:
            return 0
        self.flush()
        return self.store.count_runs(
            scope, _view(run_view_type), self._conditions(filter_string, query)
        )

    def aggregate_runs(
        self,
        filter_string: str = "",
        experiment_ids: Sequence[str] | None = None,
        group_by: Sequence[str] = (),
        metrics: Mapping[str, Sequence[str]] | None = None,
        *,
        experiment_names: Sequence[str] | None = None,
        query: str | None = None,
        run_view_type: ViewType | str = ViewType.ACTIVE_ONLY,
        output: Literal["list", "pandas"] = "list",
    ) -> Any:
        """Group matching runs by params, tags or attributes and aggregate their latest metric
        values in SQL: ``metrics={"val/acc": ["mean", "max", "count"]}``. Each row holds the
        group values, ``runs`` (the group's size) and ``<metric>.<function>`` columns."""
        groups = [self._group_expr(g, n) for n, g in enumerate(group_by)]
        wanted: list[tuple[str, str]] = []
        for key, functions in (metrics or {}).items():
            if isinstance(functions, str):
                functions = [functions]
            for fn in functions:
                if fn not in AGGREGATES:
                    raise InvalidInput(
                        f"Aggregate {fn!r} for metric {key!r} is not one of {list(AGGREGATES)}."
                    )
                wanted.append((key, fn))
        scope = self._experiment_scope(experiment_ids, experiment_names)
        self.flush()
        rows = (
            []
            if scope == []
            else self.store.aggregate(
                scope,
                _view(run_view_type),
                self._conditions(filter_string, query),
                groups,
                wanted,
            )
        )
        if output == "pandas":
            import pandas as pd

            return pd.DataFrame.from_records(rows)
        return rows

    @staticmethod
    def _group_expr(text: str, n: int) -> tuple[str, Any, Any]:
        tokens = tokenize(text)
        ident = tokens[0].value
        if len(tokens) != 2 or not isinstance(ident, Identifier):
            raise InvalidFilter(text, 0, "group_by entries are identifiers like params.optimizer")
        if ident.entity in ("params", "tags"):
            table = t.params if ident.entity == "params" else t.tags
            alias = table.alias(f"g{n}")
            on = sa.and_(alias.c.run_id == t.runs.c.run_id, alias.c.key == ident.key)
            return text.strip(), (alias, on), alias.c.value
        if ident.entity == "attributes":
            return text.strip(), None, sql.attribute_column(text, ident)[0]
        raise InvalidFilter(text, 0, "runs can be grouped by params, tags or attributes")

    # -- saved searches ---------------------------------------------------------------------

    def save_search(
        self,
        name: str,
        filter_string: str = "",
        order_by: Sequence[str] | None = None,
        experiment_ids: Sequence[str] | None = None,
        query: str | None = None,
        *,
        overwrite: bool = False,
    ) -> SavedSearch:
        """Keep a search under ``name`` (checked now, so a broken filter is never saved)."""
        validate_name(name, "Saved search", MAX_KEY_LENGTH)
        self._conditions(filter_string, None)
        sql.build_ordering(", ".join(order_by or []), parse_order_by(list(order_by or [])))
        row = {
            "name": name,
            "filter_string": filter_string,
            "order_by": json.dumps(list(order_by or [])),
            "experiment_ids": None if experiment_ids is None else json.dumps(list(experiment_ids)),
            "query": query,
            "created_time": now_ms(),
        }
        self.store.save_search(row, overwrite)
        return self.get_saved_search(name)

    @staticmethod
    def _saved(row: Mapping[str, Any]) -> SavedSearch:
        return SavedSearch(
            name=row["name"],
            filter_string=row["filter_string"],
            order_by=json.loads(row["order_by"]),
            experiment_ids=json.loads(row["experiment_ids"]) if row["experiment_ids"] else None,
            query=row["query"],
            created_time=row["created_time"],
        )

    def get_saved_search(self, name: str) -> SavedSearch:
        row = self.store.get_saved_search(name)
        if row is None:
            known = [s.name for s in self.list_saved_searches()]
            raise NotFound(f"No saved search named {name!r}; saved searches: {known}.")
        return self._saved(row)

    def list_saved_searches(self) -> list[SavedSearch]:
        return [self._saved(r) for r in self.store.list_saved_searches()]

    def delete_saved_search(self, name: str) -> None:
        if not self.store.delete_saved_search(name):
            raise NotFound(f"No saved search named {name!r}.")
