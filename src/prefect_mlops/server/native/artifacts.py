"""Artifact files streamed through the server to its storage, and their records.

Uploads go straight from the request body into artifact storage in 1 MiB chunks (no
temporary copy, memory bounded whatever the size) and answer the size and sha256 the server
computed; the client checks that digest against its own. Downloads stream back with the
recorded sha256 in ``X-Content-SHA256``.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator

import anyio.from_thread
from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse

from prefect_mlops.core.errors import InvalidInput, NotFound
from prefect_mlops.core.storage import CHUNK
from prefect_mlops.server.native.common import (
    IdempotencyKey,
    WireResponse,
    answer,
    apply_once,
    store_of,
)
from prefect_mlops.server.native.models import ArtifactRecord, Written
from prefect_mlops.server.paths import checked_file
from prefect_mlops.tracking import validation as v
from prefect_mlops.tracking.entities import FileInfo

router = APIRouter(tags=["artifacts"])
DIGEST_HEADER = "X-Content-SHA256"


class _BodyReader(io.RawIOBase):
    """The request body as a blocking stream, read from a worker thread."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    async def _next(self) -> bytes:
        return await self._chunks.__anext__()

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = anyio.from_thread.run(self._next)
            except StopAsyncIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _file_path(path: str) -> str:
    rel = v.safe_artifact_path(path)
    if not rel:
        raise InvalidInput("An artifact route needs a file path, e.g. 'models/model.pkl'.")
    return rel


@router.put("/artifacts/{run_id}/{path:path}", response_model=FileInfo)
async def upload_artifact(request: Request, run_id: str, path: str) -> WireResponse:
    """Store the body as the run's artifact ``path``; answers its size and sha256 (the client
    records it after checking the digest)."""
    rel = _file_path(path)
    store = store_of(request)
    info = await run_in_threadpool(store.get_run_info, run_id)
    checked_file(request.app.state.client.artifact_root, info.artifact_uri, rel)
    location = store.artifact_location(info)
    reader = io.BufferedReader(_BodyReader(request.stream().__aiter__()), CHUNK)
    size, digest = await run_in_threadpool(location.write_stream, rel, reader)
    return answer(FileInfo(rel, False, size, digest))


@router.get("/artifacts/{run_id}/{path:path}", response_class=StreamingResponse)
def download_artifact(request: Request, run_id: str, path: str) -> StreamingResponse:
    rel = _file_path(path)
    store = store_of(request)
    record = next((f for f in store.list_artifact_files(run_id, rel) if f.path == rel), None)
    if record is None:
        raise NotFound(f"Run {run_id} has no artifact file {path!r}.")
    info = store.get_run_info(run_id)
    checked_file(request.app.state.client.artifact_root, info.artifact_uri, rel)
    source = store.artifact_location(info).open_read(rel)

    def chunks() -> Iterator[bytes]:
        with source:
            while chunk := source.read(CHUNK):
                yield chunk

    headers = {DIGEST_HEADER: record.sha256 or ""}
    if record.file_size is not None:
        headers["Content-Length"] = str(record.file_size)
    return StreamingResponse(chunks(), media_type="application/octet-stream", headers=headers)


@router.post("/runs/{run_id}/artifact-records", response_model=Written)
def record_artifact(
    request: Request, run_id: str, body: ArtifactRecord, key: IdempotencyKey
) -> WireResponse:
    store = store_of(request)
    rel = _file_path(body.path)
    applied, _ = apply_once(
        request, key, lambda: store.record_artifact(run_id, rel, body.size, body.sha256)
    )
    return answer({"applied": applied})


@router.get("/runs/{run_id}/artifacts", response_model=list[FileInfo])
def list_artifacts(request: Request, run_id: str, path: str = Query("")) -> WireResponse:
    return answer(store_of(request).list_artifacts(run_id, v.safe_artifact_path(path)))


@router.get("/runs/{run_id}/artifact-files", response_model=list[FileInfo])
def list_artifact_files(request: Request, run_id: str, path: str = Query("")) -> WireResponse:
    return answer(store_of(request).list_artifact_files(run_id, v.safe_artifact_path(path)))
