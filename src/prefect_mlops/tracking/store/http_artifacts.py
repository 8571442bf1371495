"""A remote run's artifact files, streamed through the tracking server in 1 MiB chunks.

Uploads are hashed on the way out and checked against the digest the server computed;
downloads are hashed on the way in and checked against the digest the server recorded. While
the server is away, uploads go to the spool (bytes included) and are sent on replay.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx

from prefect_mlops.core.errors import StorageError
from prefect_mlops.core.storage import CHUNK, save_stream
from prefect_mlops.tracking.store.transport import Transport


class _CheckedDownload(io.RawIOBase):
    """A streaming answer read as a file; a sha256 mismatch at the end raises StorageError."""

    def __init__(self, response: httpx.Response, rel: str) -> None:
        self._response = response
        self._chunks: Iterator[bytes] = response.iter_bytes(CHUNK)
        self._pending = b""
        self._digest = hashlib.sha256()
        self._expected = response.headers.get("X-Content-SHA256", "")
        self._rel = rel
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        while not self._pending:
            if self._done:
                return 0
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                self._done = True
                self._check()
                return 0
            except httpx.HTTPError as exc:  # the stream was cut midway
                raise StorageError(
                    f"Downloading artifact {self._rel!r} from the tracking server broke off: "
                    f"{exc!r}. Download it again."
                ) from exc
            self._digest.update(self._pending)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _check(self) -> None:
        got = self._digest.hexdigest()
        if self._expected and got != self._expected:
            raise StorageError(
                f"Artifact {self._rel!r} arrived with sha256 {got}; the server recorded "
                f"{self._expected}. Download it again."
            )

    def close(self) -> None:
        self._response.close()
        super().close()


class HttpArtifactFiles:
    """`ArtifactFiles` of one run, through the server's ``/artifacts/{run_id}/...`` routes."""

    def __init__(self, transport: Transport, run_id: str) -> None:
        self._transport = transport
        self.run_id = run_id

    def write_stream(self, rel: str, source: IO[bytes]) -> tuple[int, str]:
        size, digest, _ = self._transport.upload(self.run_id, rel, source)
        return size, digest

    def write_file(self, rel: str, local_path: str | os.PathLike[str]) -> tuple[int, str]:
        with open(local_path, "rb") as source:
            return self.write_stream(rel, source)

    def write_bytes(self, rel: str, data: bytes) -> tuple[int, str]:
        return self.write_stream(rel, io.BytesIO(data))

    def open_read(self, rel: str) -> IO[bytes]:
        raw = _CheckedDownload(self._transport.download(self.run_id, rel), rel)
        return io.BufferedReader(raw, CHUNK)

    def download(self, rel: str, destination: str | os.PathLike[str]) -> Path:
        return save_stream(self.open_read(rel), destination)
