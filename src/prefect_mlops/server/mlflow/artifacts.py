"""MLflow's artifacts proxy (``/api/2.0/mlflow-artifacts/artifacts/<path>``): uploads and
downloads streamed through the server to its artifact root, listing and deletion.

Paths are relative to the server's artifact root. ``..``, absolute paths, backslashes, NUL
bytes and encoded dots are refused (400), and on a local root a path that a symlink leads out
of the root is refused (403) before anything is read or written. A file uploaded into a run's
artifact folder is recorded in the store, so our API lists it.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import shutil
from collections.abc import Iterator
from typing import IO, Any

import anyio.from_thread
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from prefect_mlops.core.errors import NotFound, StorageError
from prefect_mlops.core.storage import CHUNK, ArtifactLocation
from prefect_mlops.server.mlflow.protos import Translator, translator
from prefect_mlops.server.mlflow.requests import from_query, invalid, json_response
from prefect_mlops.server.paths import real_path_under, safe_relative

router = APIRouter()

_RUN_FILE = re.compile(r"^(?P<folder>[^/]+/(?P<run_id>[0-9a-f]{32})/artifacts)/(?P<rest>.+)$")
_RUN_PATH = re.compile(r"^(?P<folder>[^/]+/(?P<run_id>[0-9a-f]{32})/artifacts)(?:/(?P<rest>.+))?$")


class ArtifactRoot:
    """The server's artifact root: local folders checked against symlinks, other roots
    (S3, fsspec URLs, Prefect blocks) through `ArtifactLocation` and fsspec."""

    def __init__(self, t: Translator) -> None:
        self.t = t
        self.uri = t.root
        self.local = "://" not in self.uri

    def local_path(self, rel: str) -> str:
        """The real path of ``rel``; 403 if symlinks lead it out of the root."""
        return real_path_under(self.uri, os.path.join(self.uri, rel), rel)

    def check(self, rel: str) -> None:
        if self.local:
            self.local_path(rel)

    def write(self, rel: str, source: IO[bytes]) -> tuple[int, str]:
        self.check(rel)
        if not rel:
            raise invalid("An upload needs a file path under the artifact root.")
        if self.local and os.path.isdir(self.local_path(rel)):
            raise invalid(f"Artifact path {rel!r} is a folder; upload to a file path.")
        return ArtifactLocation(self.uri).write_stream(rel, source)

    def open(self, rel: str) -> IO[bytes]:
        if self.local and not os.path.isfile(self.local_path(rel)):
            raise NotFound(f"No artifact file at {rel!r}.")
        try:
            return ArtifactLocation(self.uri).open_read(rel)
        except StorageError:
            raise NotFound(f"No artifact file at {rel!r}.") from None

    def list(self, rel: str) -> list[dict[str, Any]]:
        if self.local:
            folder = self.local_path(rel)
            if not os.path.isdir(folder):
                return []
            entries = []
            with os.scandir(folder) as it:
                for entry in it:
                    if entry.name.startswith((".upload-", ".mpu")):
                        continue  # an upload in progress, or parts of a multipart one
                    is_dir = entry.is_dir()
                    size = {} if is_dir else {"file_size": entry.stat().st_size}
                    entries.append({"path": entry.name, "is_dir": is_dir, **size})
            return sorted(entries, key=lambda e: e["path"])
        from fsspec.core import url_to_fs

        fs, base = url_to_fs(self.uri)
        target = posixpath.join(base, rel) if rel else base
        if not fs.isdir(target):
            return []
        out = []
        for item in fs.ls(target, detail=True):
            is_dir = item["type"] == "directory"
            size = {} if is_dir else {"file_size": int(item.get("size") or 0)}
            name = posixpath.basename(item["name"].rstrip("/"))
            out.append({"path": name, "is_dir": is_dir, **size})
        return sorted(out, key=lambda e: e["path"])

    def delete(self, rel: str) -> None:
        if not rel:
            raise invalid("Refusing to delete the whole artifact root.")
        if not self.local:
            from fsspec.core import url_to_fs

            fs, base = url_to_fs(self.uri)
            target = posixpath.join(base, rel)
            if not fs.exists(target):
                raise NotFound(f"No artifact at {rel!r}.")
            fs.rm(target, recursive=True)
            return
        path = self.local_path(rel)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.isfile(path):
            os.unlink(path)
        else:
            raise NotFound(f"No artifact at {rel!r}.")

    def forget(self, rel: str) -> None:
        """After a delete inside a run's artifact folder, drop the store's records of the
        deleted files too, so our API stops listing them."""
        match = _RUN_PATH.match(rel)
        forget = getattr(self.t.client.store, "delete_artifact_records", None)
        if match is None or forget is None:
            return
        try:
            info = self.t.client.get_run_info(match["run_id"])
        except NotFound:
            return
        if info.artifact_uri == f"{self.uri}/{match['folder']}":
            forget(info.run_id, match["rest"] or "")

    def record(self, rel: str, size: int, digest: str) -> None:
        """Record a file uploaded into a run's artifact folder in the store."""
        match = _RUN_FILE.match(rel)
        if match is None:
            return
        client = self.t.client
        try:
            info = client.get_run_info(match["run_id"])
        except NotFound:
            return
        if info.artifact_uri == f"{self.uri}/{match['folder']}":
            client.store.record_artifact(info.run_id, match["rest"], size, digest)


class BodyReader(io.RawIOBase):
    """A blocking reader over a request body streamed by the event loop (used from a worker
    thread, so a large upload never sits in memory whole)."""

    def __init__(self, request: Request) -> None:
        self._chunks = request.stream()
        self._left = b""
        self._done = False

    def readable(self) -> bool:
        return True

    async def _next(self) -> bytes:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            return b""

    def read(self, size: int | None = -1) -> bytes:
        while not self._left and not self._done:
            self._left = anyio.from_thread.run(self._next)
            self._done = not self._left
        if size is None or size < 0:
            size = len(self._left)
        out, self._left = self._left[:size], self._left[size:]
        return out


def root_of(request: Request) -> ArtifactRoot:
    return ArtifactRoot(translator(request))


async def upload(request: Request) -> Response:
    root, rel = root_of(request), safe_relative(request.path_params["path"])
    root.check(rel)

    def store() -> None:
        size, digest = root.write(rel, BodyReader(request))  # type: ignore[arg-type]
        root.record(rel, size, digest)

    await run_in_threadpool(store)
    return json_response({})


async def download(request: Request) -> Response:
    root, rel = root_of(request), safe_relative(request.path_params["path"])
    handle = await run_in_threadpool(root.open, rel)

    def chunks() -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    return StreamingResponse(chunks(), media_type="application/octet-stream")


async def list_artifacts(request: Request) -> Response:
    args = from_query(request, {"path": str})
    root, rel = root_of(request), safe_relative(args.get("path", ""))
    files = await run_in_threadpool(root.list, rel)
    return json_response({"files": files} if files else {})


async def delete(request: Request) -> Response:
    root, rel = root_of(request), safe_relative(request.path_params["path"])
    await run_in_threadpool(root.delete, rel)
    await run_in_threadpool(root.forget, rel)
    return json_response({})


router.add_api_route("/artifacts", list_artifacts, methods=["GET"], include_in_schema=False)
router.add_api_route("/artifacts/{path:path}", upload, methods=["PUT"], include_in_schema=False)
router.add_api_route("/artifacts/{path:path}", download, methods=["GET"], include_in_schema=False)
router.add_api_route("/artifacts/{path:path}", delete, methods=["DELETE"], include_in_schema=False)
