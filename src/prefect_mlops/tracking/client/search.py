"""Search, count, aggregate, compare and save searches of runs.

The store parses and runs the filter; pages are walked with keyset tokens, so inserting runs
while paging neither repeats nor skips any.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from prefect_mlops.core.errors import InvalidInput, NotFound
from prefect_mlops.core.ids import now_ms
from prefect_mlops.tracking.client.base import ClientBase, as_view
from prefect_mlops.tracking.entities import (
    DatasetInput,
    MetricSummary,
    PagedList,
    Run,
    SavedSearch,
    ViewType,
)
from prefect_mlops.tracking.search.compare import RunComparison, compare, compared_ids
from prefect_mlops.tracking.store.base import BulkRunReads
from prefect_mlops.tracking.validation import MAX_KEY_LENGTH, validate_name

MAX_RESULTS = 50_000


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


class SearchClient(ClientBase):
    if TYPE_CHECKING:  # from the runs and metrics parts of TrackingClient

        def get_run(self, run_id: str) -> Run: ...

        def get_metric_summaries(self, run_id: str) -> list[MetricSummary]: ...

    def _experiment_scope(
        self, experiment_ids: Sequence[str] | None, experiment_names: Sequence[str] | None
    ) -> list[str] | None:
        if experiment_ids is None and experiment_names is None:
            return None
        if isinstance(experiment_ids, str):
            experiment_ids = [self._one_experiment_id(experiment_ids)]
        if isinstance(experiment_names, str):
            experiment_names = [experiment_names]
        ids = list(experiment_ids or [])
        for name in experiment_names or []:
            found = self.store.get_experiment_by_name(name)
            if found is not None:
                ids.append(found.experiment_id)
        return ids

    def run_details_many(
        self, run_ids: Sequence[str]
    ) -> dict[str, tuple[list[MetricSummary], list[DatasetInput]]]:
        """Each run's metric summaries and dataset inputs, in a few queries where the store can
        (a page of search results shown with details), one run at a time elsewhere."""
        self.flush()
        if isinstance(self.store, BulkRunReads):
            summaries = self.store.get_metric_summaries_many(run_ids)
            inputs = self.store.get_inputs_many(run_ids)
            return {r: (summaries[r], inputs[r]) for r in run_ids}
        return {r: (self.store.get_metric_summaries(r), self.store.get_inputs(r)) for r in run_ids}

    def _one_experiment_id(self, text: str) -> str:
        """A string passed where a list of experiment ids goes: one id that must exist, or
        (a common slip from ``mlflow.search_runs("metrics.acc > 0.9")``) a filter."""
        if re.search(r"[\s=<>!]", text.strip()) or "." in text:
            raise InvalidInput(
                f"experiment_ids={text!r} looks like a filter, not a list of experiment ids; "
                f"pass it as filter_string={text!r} (e.g. search_runs(filter_string=...))."
            )
        try:
            return self.store.get_experiment(text).experiment_id
        except NotFound:
            raise NotFound(
                f"experiment_ids={text!r} is a string, read as one experiment id, and no "
                "experiment has it; pass a list of ids, or filter_string= for a filter."
            ) from None

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
        max_results: int | None = 1000,
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
        ``max_results=None`` means every match (as in MLflow), read page by page.
        """
        if max_results is not None and (
            not isinstance(max_results, int) or not 0 < max_results <= MAX_RESULTS
        ):
            raise InvalidInput(
                f"max_results={max_results} is out of range; use 1..{MAX_RESULTS} and "
                "page_token to read further."
            )
        if output not in ("list", "pandas"):
            raise InvalidInput(f"output={output!r}; use 'list' or 'pandas'.")
        filter_string, order_by, experiment_ids, query = self._apply_saved(
            saved, filter_string, order_by, experiment_ids, query
        )
        view = as_view(run_view_type)
        scope = self._experiment_scope(experiment_ids, experiment_names)
        self.flush()

        def page(token: str | None) -> tuple[list[Run], str | None]:
            size = MAX_RESULTS if max_results is None else max_results
            runs, following = self.store.search_runs(
                scope, filter_string, view, size, order_by, token, query
            )
            if self._reconcile(runs):
                runs, following = self.store.search_runs(
                    scope, filter_string, view, size, order_by, token, query
                )
            return runs, following

        runs, token = page(page_token)
        while max_results is None and token is not None:
            more, token = page(token)
            runs += more
        if output == "pandas":
            frame = runs_to_pandas(runs)
            frame.attrs["token"] = token
            return frame
        return PagedList(runs, token)

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
        return self.store.count_runs(scope, filter_string, as_view(run_view_type), query)

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
        wanted: list[tuple[str, str]] = []
        for key, functions in (metrics or {}).items():
            if isinstance(functions, str):
                functions = [functions]
            wanted.extend((key, fn) for fn in functions)
        scope = self._experiment_scope(experiment_ids, experiment_names)
        self.flush()
        rows = self.store.aggregate_runs(
            scope, filter_string, as_view(run_view_type), query, group_by, wanted
        )
        if output == "pandas":
            import pandas as pd

            return pd.DataFrame.from_records(rows)
        return rows

    def compare_runs(self, run_ids: Sequence[str]) -> RunComparison:
        """Params side by side (differing ones marked) and metrics' last/min/max per run."""
        ids = compared_ids(run_ids)
        return compare(
            [self.get_run(run_id) for run_id in ids],
            [self.get_metric_summaries(run_id) for run_id in ids],
        )

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
        search = SavedSearch(
            name=name,
            filter_string=filter_string,
            order_by=list(order_by or []),
            experiment_ids=None if experiment_ids is None else list(experiment_ids),
            query=query,
            created_time=now_ms(),
        )
        self.store.save_search(search, overwrite)
        return self.get_saved_search(name)

    def get_saved_search(self, name: str) -> SavedSearch:
        found = self.store.get_saved_search(name)
        if found is None:
            known = [s.name for s in self.list_saved_searches()]
            raise NotFound(f"No saved search named {name!r}; saved searches: {known}.")
        return found

    def list_saved_searches(self) -> list[SavedSearch]:
        return self.store.list_saved_searches()

    def delete_saved_search(self, name: str) -> None:
        if not self.store.delete_saved_search(name):
            raise NotFound(f"No saved search named {name!r}.")
