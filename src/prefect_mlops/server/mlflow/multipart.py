"""Multipart uploads through the artifacts proxy, as MLflow's client makes them for large files.

``mpu/create`` hands the client one URL per part, on this server; the client PUTs the parts in
parallel (each answered with its sha256 as the ETag), then ``mpu/complete`` joins them, in part
order and streamed, into the artifact, and ``mpu/abort`` drops them. Parts are kept in the
artifact storage itself (``.mpu/<upload id>/``), so every server process sharing that storage
can take any part; a half-finished upload is never visible as the artifact.
"""

from __future__ import annotations

import io
import posixpath
import re
from typing import IO, Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from prefect_mlops.core.errors import NotFound
from prefect_mlops.core.ids import new_id
from prefect_mlops.server.mlflow.artifacts import ArtifactRoot, BodyReader, root_of
from prefect_mlops.server.mlflow.requests import from_body, invalid, json_response
from prefect_mlops.server.paths import safe_relative

router = APIRouter()

MAX_PARTS = 10_000
STAGING = ".mpu"
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")

CREATE = {"path": str, "num_parts": int}
COMPLETE = {"path": str, "upload_id": str, "parts": [{"part_number": int, "etag": str, "url": str}]}
ABORT = {"path": str, "upload_id": str}


def _target(request: Request, local_file: str) -> str:
    """Where the file lands: the folder in the URL, and the client's file name."""
    folder = safe_relative(request.path_params.get("path", ""))
    name = posixpath.basename(local_file.replace("\\", "/"))
    if not name:
        raise invalid(f"path={local_file!r} names no file.")
    return safe_relative(f"{folder}/{name}" if folder else name)


def _staged(upload_id: str, part: int | None = None) -> str:
    if not _UPLOAD_ID.match(upload_id):
        raise invalid(f"upload_id {upload_id!r} is not one this server handed out.")
    return f"{STAGING}/{upload_id}" + ("" if part is None else f"/{part:05d}")


class _Joined(io.RawIOBase):
    """The staged parts read one after another as one stream."""

    def __init__(self, root: ArtifactRoot, parts: list[str]) -> None:
        self._root = root
        self._parts = list(parts)
        self._current: IO[bytes] | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        while True:
            if self._current is None:
                if not self._parts:
                    return b""
                self._current = self._root.open(self._parts.pop(0))
            chunk = self._current.read(size if size and size > 0 else -1)
            if chunk:
                return chunk
            self._current.close()
            self._current = None


async def create(request: Request) -> Response:
    args = await from_body(request, CREATE)
    rel = _target(request, str(args.get("path", "")))
    parts = args.get("num_parts", 1)
    if not 1 <= parts <= MAX_PARTS:
        raise invalid(f"num_parts={parts} is out of range 1..{MAX_PARTS}.")
    root_of(request).check(rel)
    upload_id = new_id()
    base = str(request.url).split("/mpu/create/", 1)[0].split("/mpu/create", 1)[0]
    credentials = [
        {"url": f"{base}/mpu/parts/{upload_id}/{n}", "part_number": n, "headers": {}}
        for n in range(1, parts + 1)
    ]
    return json_response({"upload_id": upload_id, "credentials": credentials})


async def upload_part(request: Request) -> Response:
    root = root_of(request)
    upload_id, number = request.path_params["upload_id"], request.path_params["part"]
    if not 1 <= number <= MAX_PARTS:
        raise invalid(f"Part number {number} is out of range 1..{MAX_PARTS}.")
    staged = _staged(upload_id, number)
    reader: Any = BodyReader(request)
    _, digest = await run_in_threadpool(root.write, staged, reader)
    return Response(status_code=200, headers={"ETag": f'"{digest}"'})


async def complete(request: Request) -> Response:
    args = await from_body(request, COMPLETE)
    rel = _target(request, str(args.get("path", "")))
    upload_id = str(args.get("upload_id", ""))
    parts = sorted(args.get("parts", []), key=lambda p: p.get("part_number", 0))
    if not parts:
        raise invalid("Completing a multipart upload needs its parts.")
    numbers = [p.get("part_number") for p in parts]
    if numbers != list(range(1, len(parts) + 1)):
        raise invalid(f"Parts must be numbered 1..{len(parts)} without gaps; got {numbers}.")
    root = root_of(request)

    def join() -> None:  # blocking: reads and writes storage
        staged = [_staged(upload_id, n) for n in range(1, len(parts) + 1)]
        for part, name in zip(parts, staged, strict=True):
            try:
                with root.open(name) as handle:
                    digest = _sha256(handle)
            except NotFound:
                raise invalid(
                    f"Part {part['part_number']} of upload {upload_id} never arrived."
                ) from None
            if part.get("etag", "").strip('"') != digest:
                raise invalid(
                    f"Part {part['part_number']} does not match its ETag; upload it again."
                )
        size, digest = root.write(rel, _Joined(root, staged))  # type: ignore[arg-type]
        root.record(rel, size, digest)
        root.delete(_staged(upload_id))

    await run_in_threadpool(join)
    return json_response({})


async def abort(request: Request) -> Response:
    args = await from_body(request, ABORT)
    _target(request, str(args.get("path", "")))
    root = root_of(request)

    def drop() -> None:
        try:
            root.delete(_staged(str(args.get("upload_id", ""))))
        except NotFound:
            pass  # nothing staged yet

    await run_in_threadpool(drop)
    return json_response({})


def _sha256(handle: IO[bytes]) -> str:
    import hashlib

    digest = hashlib.sha256()
    while chunk := handle.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def _route(path: str, endpoint: Any, method: str) -> None:
    router.add_api_route(path, endpoint, methods=[method], include_in_schema=False)


for _prefix in ("/mpu/create", "/mpu/complete", "/mpu/abort"):
    handler = {"/mpu/create": create, "/mpu/complete": complete, "/mpu/abort": abort}[_prefix]
    _route(_prefix, handler, "POST")
    _route(f"{_prefix}/{{path:path}}", handler, "POST")
_route("/mpu/parts/{upload_id}/{part:int}", upload_part, "PUT")
