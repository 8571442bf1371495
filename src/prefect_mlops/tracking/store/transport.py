"""How the remote store talks to the tracking server: one kept-alive HTTP client, our errors
from the server's answers, and the spool for writes the server cannot take now.

Every write gets a client-made idempotency key. It is sent at once when the spool is empty;
otherwise the spool is replayed first (at most once a second while the server stays away),
so writes reach the server in the order they were made. A write that finds the server
unreachable, timing out or failing with a 5xx goes to the spool and the call returns; reads
need the server and raise `Unreachable` with what to do.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

import httpx

from prefect_mlops.core import errors
from prefect_mlops.core.errors import MlopsError, StorageError
from prefect_mlops.core.ids import new_id
from prefect_mlops.core.settings import Settings
from prefect_mlops.core.storage import CHUNK
from prefect_mlops.tracking.store.spool import Rejected, Spool, SyncReport, Unreachable
from prefect_mlops.tracking.store.wire import dumps

API_PREFIX = "/api/mlops/v1"
RETRY_SECONDS = 1.0
_ERRORS: dict[str, type[MlopsError]] = {
    name: getattr(errors, name)
    for name in ("InvalidInput", "NotFound", "AlreadyExists", "Conflict", "StorageError")
}


class Spooled:
    """The result of a write that went to the spool instead of the server."""


SPOOLED = Spooled()


#: Statuses that say "not now" (timeout, too large for a proxy, rate limit): keep and retry.
_RETRY_LATER = frozenset({408, 413, 429})


def _server_refusal(response: httpx.Response) -> tuple[str, str] | None:
    """(error class, message) when ``response`` is the tracking server's own 4xx refusal:
    it names our error in ``X-Mlops-Error`` and has a JSON body with an ``error_code``. A
    proxy's or another server's 4xx has neither, and says nothing about the request."""
    kind = response.headers.get("X-Mlops-Error", "")
    if not 400 <= response.status_code < 500 or kind not in _ERRORS:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or not body.get("error_code"):
        return None
    return kind, str(body.get("message") or response.text)


def _refusal(response: httpx.Response) -> MlopsError:
    """Our error for the tracking server's own refusal, with its message."""
    found = _server_refusal(response)
    assert found is not None
    kind, message = found
    return _ERRORS[kind](message)


class Transport:
    """Requests to one server; writes keyed and spooled when it is away."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url.rstrip("/")
        self.offline = settings.offline
        self.spool = Spool(
            settings.resolved_spool_dir, int(settings.spool_max_mb * 1024 * 1024), self.url
        )
        self._http = httpx.Client(
            base_url=self.url + API_PREFIX,
            timeout=httpx.Timeout(30.0, connect=5.0),
            limits=httpx.Limits(max_keepalive_connections=4, keepalive_expiry=30.0),
        )
        self._lock = threading.RLock()
        self._retry_at = 0.0

    def close(self) -> None:
        self._http.close()

    # -- sending ----------------------------------------------------------------------------

    def _answer(self, response: httpx.Response, *, rejecting: bool = False) -> Any:
        """The answer's JSON; our error for the server's own refusal (`Rejected` instead when
        ``rejecting``, for replay); `Unreachable` for anything else: a 5xx, a redirect, a
        proxy's or another server's 4xx, a 408/413/429, or a 2xx that is not our JSON."""
        status = response.status_code
        if status >= 500:
            raise Unreachable(
                f"The tracking server {self.url} failed ({status}): {response.text[:500]}",
                status=status,
            )
        if 400 <= status < 500 and status not in _RETRY_LATER:
            refused = _server_refusal(response)
            if refused is not None:
                if rejecting:
                    raise Rejected(f"{refused[0]}: {refused[1]}")
                raise _refusal(response)
        if not 200 <= status < 300:
            where = response.headers.get("Location")
            raise Unreachable(
                f"{self.url} answered {status} {response.reason_phrase}"
                + (f" (redirecting to {where})" if where else "")
                + f", which is not an answer of a prefect-mlops tracking server: "
                f"{response.text[:300]!r}. Check PREFECT_MLOPS_TRACKING_URI (and any proxy in "
                "front of the server).",
                status=status,
            )
        if not response.content:
            return None
        try:
            return json.loads(response.content)
        except ValueError:
            raise Unreachable(
                f"{self.url} answered {status} with a body that is not JSON "
                f"({response.headers.get('Content-Type', 'no Content-Type')}): "
                f"{response.text[:300]!r}. Check PREFECT_MLOPS_TRACKING_URI.",
                status=status,
            ) from None

    def _result(self, answer: Any) -> Any:
        """The result of a keyed write's answer (``{"applied": ..., "result": ...}``, the
        result left out where the write has none)."""
        if not isinstance(answer, dict) or "applied" not in answer:
            raise Unreachable(
                f"{self.url} answered a write with {str(answer)[:300]!r}, which is not an answer "
                "of a prefect-mlops tracking server. Check PREFECT_MLOPS_TRACKING_URI."
            )
        return answer.get("result")

    def _unreachable(self, exc: httpx.HTTPError) -> Unreachable:
        return Unreachable(f"The tracking server {self.url} is unreachable: {exc!r}.")

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
        params: dict[str, Any] | None = None,
        rejecting: bool = False,
    ) -> Any:
        """One request; the answer's JSON, our error for the server's refusal, `Unreachable`
        otherwise (see `_answer`)."""
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        content = None if body is None else dumps(body)
        try:
            response = self._http.request(
                method, path, content=content, params=params, headers=headers
            )
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        return self._answer(response, rejecting=rejecting)

    def _send_entry(self, entry: dict[str, Any], spool: Spool) -> Any:
        if entry.get("blob"):
            with open(spool.blobs / entry["blob"], "rb") as blob:
                return self._upload_now(entry["path"], blob, entry["sha256"], rejecting=True)
        answer = self.send(
            entry["method"], entry["path"], entry["body"], key=entry["key"], rejecting=True
        )
        return self._result(answer)

    # -- the spool --------------------------------------------------------------------------

    def replay(self) -> SyncReport:
        """Send what the spool holds, in order (``prefect-mlops sync`` calls this too)."""
        with self._lock:
            report = self.spool.replay(self._send_entry)
            self._retry_at = 0.0 if report.complete else time.monotonic() + RETRY_SECONDS
            return report

    def _drained(self) -> bool:
        """Whether the spool is empty, replaying it first if the server may be back."""
        if not self.spool.pending():
            return True
        if self.offline or time.monotonic() < self._retry_at:
            return False
        return self.replay().complete

    def offline_error(self, reason: str = "") -> Unreachable:
        why = "PREFECT_MLOPS_OFFLINE is set" if self.offline else reason or "it does not answer"
        return Unreachable(
            f"Cannot read from the tracking server {self.url}: {why}. Writes are kept in the "
            f"spool {self.spool.folder} and sent when it answers again (or by `prefect-mlops "
            "sync`); reads need the server."
        )

    def read(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        with self._lock:
            if self.offline:
                raise self.offline_error()
            self._drained()
            try:
                return self.send(method, path, body, params=params)
            except Unreachable as exc:
                raise self.offline_error(str(exc)) from None

    def write(
        self,
        op: str,
        method: str,
        path: str,
        body: Any,
        *,
        offline_experiment: tuple[str, dict[str, Any]] | None = None,
        **extra: Any,
    ) -> Any:
        """Send a keyed write, or spool it; `SPOOLED` when it was spooled. When spooled, an
        ``offline_experiment`` (id, record) is saved with the spool's records first."""
        entry = {"key": new_id(), "op": op, "method": method, "path": path, "body": body}
        entry.update(extra)
        with self._lock:
            if self._drained() and not self.offline:
                try:
                    answer = self.send(method, path, body, key=entry["key"])
                    return self._result(answer)
                except Unreachable:
                    self._retry_at = time.monotonic() + RETRY_SECONDS
            self.spool.append(json.loads(dumps(entry)), experiment=offline_experiment)
            return SPOOLED

    # -- artifact bytes ---------------------------------------------------------------------

    def _upload_now(
        self,
        path: str,
        source: IO[bytes],
        expected: str | None = None,
        *,
        rejecting: bool = False,
    ) -> Any:
        digest = hashlib.sha256()

        def chunks() -> Iterator[bytes]:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                yield chunk

        try:
            response = self._http.put(
                path, content=chunks(), headers={"Content-Type": "application/octet-stream"}
            )
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        stored = self._answer(response, rejecting=rejecting)
        if not isinstance(stored, dict) or not {"sha256", "file_size"} <= stored.keys():
            raise Unreachable(
                f"{self.url} answered an upload with {str(stored)[:300]!r}, which is not an "
                "answer of a prefect-mlops tracking server. Check PREFECT_MLOPS_TRACKING_URI."
            )
        local = expected or digest.hexdigest()
        if stored["sha256"] != local:
            raise StorageError(
                f"Artifact {path!r} reached the server with sha256 {stored['sha256']}, but "
                f"{local} was sent; upload it again."
            )
        return stored

    def upload(self, run_id: str, rel: str, source: IO[bytes]) -> tuple[int, str, bool]:
        """Stream ``source`` to the run's artifact ``rel``: (size, sha256, sent now)."""
        path = f"/artifacts/{run_id}/{rel}"
        with self._lock:
            if self._drained() and not self.offline:
                start = source.tell() if source.seekable() else None
                try:
                    stored = self._upload_now(path, source)
                    return int(stored["file_size"]), str(stored["sha256"]), True
                except Unreachable:
                    self._retry_at = time.monotonic() + RETRY_SECONDS
                    if start is None:
                        raise
                    source.seek(start)
            entry = {"key": new_id(), "op": "upload_artifact", "method": "PUT", "path": path}
            stored = self.spool.append(entry, blob=source)
            return int(stored["size"]), str(stored["sha256"]), False

    def download(self, run_id: str, rel: str) -> httpx.Response:
        """The streaming answer for one artifact file (the caller closes it)."""
        with self._lock:
            if self.offline:
                raise self.offline_error()
            self._drained()
            request = self._http.build_request("GET", f"/artifacts/{run_id}/{rel}")
            try:
                response = self._http.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise self.offline_error(str(self._unreachable(exc))) from None
        if not 200 <= response.status_code < 300:
            response.read()
            response.close()
            try:
                self._answer(response)
            except Unreachable as exc:
                raise self.offline_error(str(exc)) from None
            raise self.offline_error(f"it answered {response.status_code}")
        return response
