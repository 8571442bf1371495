"""The offline spool: writes the tracking server could not take, kept on disk in order.

When the server is unreachable, times out or answers 5xx (or ``PREFECT_MLOPS_OFFLINE=true``),
the remote store appends each write request it would have sent, with its idempotency key,
to ``<spool>/journal.jsonl`` (one JSON line per request, fsynced before the call returns, so
an accepted write survives a crash). Artifact bytes go to ``<spool>/blobs/<key>``. Replay
sends the entries in order with their keys (the server applies a key once, so an entry sent
twice after a lost acknowledgement stores nothing twice), remembers how far it got in
``<spool>/offset``, and empties the journal once everything is sent. One spool serves every
process of a ``PREFECT_MLOPS_HOME``: appends and replays take an exclusive ``flock``.

Experiments created offline get client-made ids, kept in ``<spool>/experiments.json`` so
that every process (and every later lookup by name) finds the same one. On replay the server
answers with the experiment that holds the name (the one replayed, or one that existed
already); when its id differs, later entries are re-pointed at the server's id.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from prefect_mlops.core.errors import InvalidInput, MlopsError, StorageError
from prefect_mlops.core.storage import CHUNK

_MB = 1024 * 1024


class Unreachable(StorageError):
    """The tracking server did not answer (refused, timed out, or failed with a 5xx)."""


@dataclass
class SyncReport:
    """What one replay sent."""

    requests: int = 0
    batches: int = 0
    points: int = 0
    runs: int = 0
    experiments: int = 0
    artifacts: int = 0
    rejected: list[str] = field(default_factory=list)
    complete: bool = True
    reason: str = ""


#: Sends one entry (re-pointed at server ids) and returns the server's result.
Send = Callable[[dict[str, Any], "Spool"], Any]


class Spool:
    """The journal, its replay offset, spooled artifact bytes and offline experiments."""

    def __init__(self, folder: Path, max_bytes: int, server: str = "") -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.server = server
        self.journal = folder / "journal.jsonl"
        self.blobs = folder / "blobs"
        self._offset = folder / "offset"
        self._experiments = folder / "experiments.json"
        self._rejected = folder / "rejected.jsonl"

    # -- state ------------------------------------------------------------------------------

    def pending(self) -> bool:
        """Whether entries wait to be sent (one ``stat``: cheap enough for every request)."""
        try:
            return self.journal.stat().st_size > 0
        except FileNotFoundError:
            return False

    def size(self) -> int:
        total = self.journal.stat().st_size if self.journal.exists() else 0
        if self.blobs.is_dir():
            total += sum(p.stat().st_size for p in self.blobs.iterdir())
        return total

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive use of the spool across threads and processes."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- appending --------------------------------------------------------------------------

    def _full(self, adding: int) -> InvalidInput:
        return InvalidInput(
            f"The offline spool {self.folder} holds {self.size() / _MB:.2f} MB and this write "
            f"needs {adding / _MB:.2f} MB more, over its limit of {self.max_bytes / _MB:.2f} MB "
            "(PREFECT_MLOPS_SPOOL_MAX_MB). Nothing already accepted is lost: run "
            f"`prefect-mlops sync` once the tracking server {self.server} is reachable, or "
            "raise the limit."
        )

    def append(self, entry: dict[str, Any], blob: IO[bytes] | None = None) -> dict[str, Any]:
        """Add ``entry`` (and the bytes of ``blob``, for an artifact) durably; InvalidInput,
        storing nothing, when the spool would pass its size limit."""
        with self.locked():
            if blob is not None:
                entry = {**entry, **self._store_blob(entry["key"], blob)}
            line = (json.dumps(entry, separators=(",", ":"), allow_nan=True) + "\n").encode()
            if self.size() + len(line) > self.max_bytes:
                if blob is not None:
                    (self.blobs / entry["key"]).unlink(missing_ok=True)
                raise self._full(len(line) + int(entry.get("size", 0)))
            fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        return entry

    def _store_blob(self, key: str, source: IO[bytes]) -> dict[str, Any]:
        self.blobs.mkdir(parents=True, exist_ok=True)
        digest, size, held = hashlib.sha256(), 0, self.size()
        target = self.blobs / key
        with open(target, "wb") as out:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if held + size > self.max_bytes:
                    out.close()
                    target.unlink(missing_ok=True)
                    raise self._full(size)
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        return {"blob": key, "size": size, "sha256": digest.hexdigest()}

    # -- offline experiments ----------------------------------------------------------------

    def experiments(self) -> dict[str, dict[str, Any]]:
        """Experiments made offline by id: ``{"experiment": {...}, "server_id": ...}``."""
        try:
            found: dict[str, dict[str, Any]] = json.loads(self._experiments.read_text())
        except FileNotFoundError:
            return {}
        return found

    def save_experiments(self, records: dict[str, dict[str, Any]]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self._experiments.with_suffix(".tmp")
        tmp.write_text(json.dumps(records))
        os.replace(tmp, self._experiments)

    def server_ids(self) -> dict[str, str]:
        """Client-made experiment ids replayed under another id, mapped to the server's."""
        return {k: r["server_id"] for k, r in self.experiments().items() if r.get("server_id")}

    # -- replaying --------------------------------------------------------------------------

    def _read_offset(self) -> int:
        try:
            return int(self._offset.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _write_offset(self, offset: int) -> None:
        tmp = self._offset.with_suffix(".tmp")
        tmp.write_text(str(offset))
        os.replace(tmp, self._offset)

    def replay(self, send: Send) -> SyncReport:
        """Send every entry in order; stops (keeping the rest) at the first `Unreachable`.
        An entry the server refuses (4xx) is set aside in ``rejected.jsonl`` with the reason."""
        report = SyncReport()
        with self.locked():
            if not self.pending():
                return report
            offset = self._read_offset()
            with open(self.journal, "rb") as journal:
                journal.seek(offset)
                for line in journal:
                    if not line.endswith(b"\n"):
                        break  # a torn last line: its write never returned
                    entry = json.loads(line)
                    try:
                        result = send(self._repoint(entry), self)
                    except Unreachable as exc:
                        report.complete, report.reason = False, str(exc)
                        return report
                    except MlopsError as exc:
                        report.rejected.append(f"{entry['op']}: {exc}")
                        with open(self._rejected, "a") as out:
                            out.write(json.dumps({**entry, "error": str(exc)}) + "\n")
                    else:
                        self._count(entry, result, report)
                    if entry.get("blob"):
                        (self.blobs / entry["blob"]).unlink(missing_ok=True)
                    offset += len(line)
                    self._write_offset(offset)
            self.journal.write_bytes(b"")
            self._write_offset(0)
            shutil.rmtree(self.blobs, ignore_errors=True)
        return report

    def _repoint(self, entry: dict[str, Any]) -> dict[str, Any]:
        """``entry`` with client-made experiment ids replaced by the server's."""
        body = entry.get("body")
        if not isinstance(body, dict):
            return entry
        if entry["op"] == "create_experiment":  # join the server's experiment of that name
            return {**entry, "body": {**body, "if_exists": "use"}}
        ids = self.server_ids()
        if not ids:
            return entry
        body = dict(body)
        if body.get("experiment_id") in ids:
            body["experiment_id"] = ids[body["experiment_id"]]
            body["artifact_location"] = None  # under the server's experiment
        if entry["op"] == "create_runs_bulk":
            body["runs"] = [
                {**r, "experiment_id": ids.get(r["experiment_id"], r["experiment_id"])}
                for r in body["runs"]
            ]
        return {**entry, "body": body}

    def _count(self, entry: dict[str, Any], result: Any, report: SyncReport) -> None:
        report.requests += 1
        op = entry["op"]
        if op == "log_metrics":
            report.batches += 1
            report.points += int(entry.get("points", 0))
        elif op == "create_run":
            report.runs += 1
        elif op == "upload_artifact":
            report.artifacts += 1
        elif op == "create_experiment":
            report.experiments += 1
            local = entry["body"]["experiment_id"]
            records = self.experiments()
            if local in records and result != local:
                records[local]["server_id"] = result
                self.save_experiments(records)
