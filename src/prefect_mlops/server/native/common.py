"""What every native route shares: the store behind the server, keyed writes, and JSON
answers that keep NaN and ±Infinity (so metric values arrive exactly)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Header
from starlette.requests import Request
from starlette.responses import JSONResponse

from prefect_mlops.tracking.store import TrackingStore
from prefect_mlops.tracking.store.base import KeyedWrites
from prefect_mlops.tracking.store.wire import dumps

T = TypeVar("T")

#: Every write request names itself: the server applies a key once.
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=64,
        description="A client-made key; a request replayed with the same key stores nothing.",
    ),
]


class WireResponse(JSONResponse):
    """JSON with NaN and ±Infinity kept (Python's ``json`` reads them back)."""

    def render(self, content: Any) -> bytes:
        return dumps(content)


def answer(content: Any) -> WireResponse:
    return WireResponse(content)


def store_of(request: Request) -> TrackingStore:
    store: TrackingStore = request.app.state.client.store
    return store


def apply_once(request: Request, key: str, write: Callable[[], T]) -> tuple[bool, T | None]:
    """Run ``write`` once per ``key``: ``(True, result)``, or ``(False, None)`` on a replay."""
    store: KeyedWrites = request.app.state.client.store
    return store.apply_once(key, write)
