"""The tracking server as an ASGI application: MLflow's REST API, our native API beside it.

The server keeps no state of its own between requests beyond caches that any process can
rebuild: every answer comes from the metadata database and the artifact storage, so several
server processes (``--workers N``, or several hosts) can serve one PostgreSQL database.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prefect_mlops import __version__
from prefect_mlops.core.errors import MlopsError
from prefect_mlops.core.settings import Settings, get_settings
from prefect_mlops.server import mlflow, native
from prefect_mlops.server.errors import (
    BAD_REQUEST,
    ENDPOINT_NOT_FOUND,
    REQUEST_LIMIT_EXCEEDED,
    ApiError,
    error_response,
    handle_error,
)
from prefect_mlops.tracking.client import TrackingClient


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with a 413 that names the limit (checked
    on Content-Length and while streaming, so a lying or chunked request cannot pass)."""

    def __init__(self, app: ASGIApp, limit: int, exempt: Callable[[str], bool]) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise ApiError(self._message(), REQUEST_LIMIT_EXCEEDED, 413)
            return message

        await self.app(scope, limited, send)

    def _message(self) -> str:
        return (
            f"The request body is over the server's limit of {self.limit:,} bytes "
            "(PREFECT_MLOPS_SERVER_MAX_REQUEST_MB); send fewer points per batch, or upload "
            "files through the artifact routes."
        )

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(self._message(), REQUEST_LIMIT_EXCEEDED, 413)
        await response(scope, receive, send)


ARTIFACT_UPLOADS = (
    "/api/2.0/mlflow-artifacts/",
    "/ajax-api/2.0/mlflow-artifacts/",
    "/api/mlops/v1/artifacts/",
)


def _is_artifact_upload(path: str) -> bool:
    """Artifact uploads stream to storage and may be any size; every other body is bounded."""
    return path.startswith(ARTIFACT_UPLOADS)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(f"Malformed request: {exc}", BAD_REQUEST, 400, "InvalidInput")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return error_response(
        f"{request.method} is not allowed on {request.url.path}.", BAD_REQUEST, 405
    )


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(
        f"No endpoint {request.method} {request.url.path} on this server "
        f"(prefect-mlops {__version__}).",
        ENDPOINT_NOT_FOUND,
        404,
    )  # no X-Mlops-Error: an endpoint this server lacks is no verdict on the request


def create_app(settings: Settings | None = None, client: TrackingClient | None = None) -> Any:
    """The server application over the store and artifact storage that ``settings`` name."""
    settings = settings or get_settings()
    app = FastAPI(
        title="prefect-mlops tracking server",
        version=__version__,
        description="MLflow's REST API (/api/2.0/mlflow) and the native API (/api/mlops/v1).",
        docs_url="/api/mlops/v1/docs",
        openapi_url="/api/mlops/v1/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    # The server serves its database even where the environment names a tracking server.
    app.state.client = client or TrackingClient(
        database_url=settings.resolved_database_url, settings=settings
    )
    # Other server processes share the database: what this one cached about a run or an
    # experiment (writable, active) may be stale, so every write checks the store.
    app.state.client.recheck_writes = True
    prune = getattr(app.state.client.store, "prune_request_keys", None)
    if prune is not None:
        prune()  # idempotency keys older than a spool may wait to be synced
    handlers: dict[Any, Callable[[Request, Any], Awaitable[Response]]] = {
        MlopsError: handle_error,
        ApiError: handle_error,
        OverflowError: handle_error,
        RequestValidationError: _validation_error,
        404: _not_found,
        405: _not_allowed,
    }
    for key, handler in handlers.items():
        app.add_exception_handler(key, handler)

    @app.get("/health", include_in_schema=False)
    async def health() -> PlainTextResponse:
        return PlainTextResponse("OK")

    @app.get("/version", include_in_schema=False)
    async def version() -> PlainTextResponse:
        return PlainTextResponse(__version__)

    mlflow.mount(app)
    app.include_router(native.router)
    limit = int(settings.server_max_request_mb * 1024 * 1024)
    app.add_middleware(BodyLimit, limit=limit, exempt=_is_artifact_upload)
    return app
