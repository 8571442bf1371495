"""Search, counts, aggregates and saved searches of the remote store, and the read helpers
every part of it uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect_mlops.tracking.entities import Run, SavedSearch, ViewType
from prefect_mlops.tracking.store import wire
from prefect_mlops.tracking.store.transport import SPOOLED, Transport


class RestSearch:
    transport: Transport

    def _get(self, route: str, **params: Any) -> Any:
        return self.transport.read("GET", route, params=params or None)

    def _post(self, path: str, body: Any) -> Any:
        return self.transport.read("POST", path, body)

    # -- search -----------------------------------------------------------------------------

    def _query(
        self,
        experiment_ids: Sequence[str] | None,
        filter_string: str,
        view: ViewType,
        query: str | None,
    ) -> dict[str, Any]:
        ids = None if experiment_ids is None else list(experiment_ids)
        return {"experiment_ids": ids, "filter_string": filter_string, "view": view, "query": query}

    def search_runs(
        self,
        experiment_ids: Sequence[str] | None,
        filter_string: str = "",
        view: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
        query: str | None = None,
    ) -> tuple[list[Run], str | None]:
        body = self._query(experiment_ids, filter_string, view, query)
        body.update(
            max_results=max_results,
            order_by=None if order_by is None else list(order_by),
            page_token=page_token,
        )
        page = self._post("/runs/search", body)
        return [wire.run(r) for r in page["runs"]], page["next_page_token"]

    def count_runs(
        self,
        experiment_ids: Sequence[str] | None,
        filter_string: str = "",
        view: ViewType = ViewType.ACTIVE_ONLY,
        query: str | None = None,
    ) -> int:
        return int(
            self._post("/runs/count", self._query(experiment_ids, filter_string, view, query))
        )

    def aggregate_runs(
        self,
        experiment_ids: Sequence[str] | None,
        filter_string: str = "",
        view: ViewType = ViewType.ACTIVE_ONLY,
        query: str | None = None,
        group_by: Sequence[str] = (),
        metrics: Sequence[tuple[str, str]] = (),
    ) -> list[dict[str, Any]]:
        body = self._query(experiment_ids, filter_string, view, query)
        body.update(group_by=list(group_by), metrics=[list(m) for m in metrics])
        return list(self._post("/runs/aggregate", body))

    def save_search(self, search: SavedSearch, overwrite: bool = False) -> None:
        body = {"search": search, "overwrite": overwrite}
        self.transport.write("save_search", "PUT", "/saved-searches", body)

    def get_saved_search(self, name: str) -> SavedSearch | None:
        found = self._get("/saved-search", name=name)
        return None if found is None else wire.saved_search(found)

    def list_saved_searches(self) -> list[SavedSearch]:
        return [wire.saved_search(s) for s in self._get("/saved-searches")]

    def delete_saved_search(self, name: str) -> bool:
        path = "/saved-searches/delete"
        result = self.transport.write("delete_saved_search", "POST", path, {"name": name})
        return True if result is SPOOLED else bool(result)
