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
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from prefect_mlops.core.errors import InvalidInput, StorageError
from prefect_mlops.core.storage import CHUNK

_MB = 1024 * 1024


class Unreachable(StorageError):
    """The tracking server did not answer as itself (refused, timed out, failed with a 5xx,
    or something else answered): the write is kept and sent later. ``status`` is the HTTP
    status when there was an answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Rejected(Exception):
    """The tracking server's own refusal of a replayed entry: it is set aside, replay goes on."""


#: A plain 500 for the same entry this many times sets it aside (502/503/504 never do).
MAX_ATTEMPTS = 5


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
        self._rejected_blobs = folder / "rejected-blobs"
        self._attempts = folder / "attempts.json"

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

    def append(
        self,
        entry: dict[str, Any],
        blob: IO[bytes] | None = None,
        experiment: tuple[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Add ``entry`` (and the bytes of ``blob``, for an artifact) durably; InvalidInput,
        storing nothing, when the spool would pass its size limit. ``experiment`` (id, record)
        is saved with the offline experiments first, so the entry never lacks its record."""
        with self.locked():
            if blob is not None:
                entry = {**entry, **self._store_blob(entry["key"], blob)}
            line = (json.dumps(entry, separators=(",", ":"), allow_nan=True) + "\n").encode()
            if self.size() + len(line) > self.max_bytes:
                if blob is not None:
                    (self.blobs / entry["key"]).unlink(missing_ok=True)
                raise self._full(len(line) + int(entry.get("size", 0)))
            if experiment is not None:
                records = self.experiments()
                records[experiment[0]] = experiment[1]
                self._save_experiments(records)
            fd = os.open(self.journal, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                self._cut_torn_tail(fd)
                view = memoryview(line)
                while view:  # os.write may write less than it was given
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        return entry

    @staticmethod
    def _cut_torn_tail(fd: int) -> None:
        """Cut a last line that does not end in a newline (an append a crash interrupted)."""
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return
        end = size
        while end > 0:
            start = max(0, end - CHUNK)
            found = os.pread(fd, end - start, start).rfind(b"\n")
            if found >= 0:
                os.ftruncate(fd, start + found + 1)
                return
            end = start
        os.ftruncate(fd, 0)

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
        """Replace the offline experiment records (under the spool's lock)."""
        with self.locked():
            self._save_experiments(records)

    def add_experiment(self, experiment_id: str, record: dict[str, Any]) -> None:
        """Add (or replace) one offline experiment record, read-modify-written under the lock."""
        with self.locked():
            records = self.experiments()
            records[experiment_id] = record
            self._save_experiments(records)

    def _save_experiments(self, records: dict[str, dict[str, Any]]) -> None:
        """Write the records atomically through a temp file of its own (the caller holds the
        lock)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".experiments.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(json.dumps(records))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self._experiments)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

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

    def _attempt(self, key: str) -> int:
        """Count one more plain 500 for the entry ``key``; how many it has had."""
        try:
            held = json.loads(self._attempts.read_text())
            count = int(held["count"]) if held.get("key") == key else 0
        except (FileNotFoundError, ValueError, TypeError, KeyError, AttributeError):
            count = 0
        tmp = self._attempts.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": key, "count": count + 1}))
        os.replace(tmp, self._attempts)
        return count + 1

    def _set_aside(self, entry: Any, reason: str, report: SyncReport) -> None:
        """Move ``entry`` (and its blob) to ``rejected.jsonl`` with ``reason``."""
        record = dict(entry) if isinstance(entry, dict) else {"line": entry}
        op = record.get("op", "entry")
        blob = record.get("blob")
        if isinstance(blob, str) and (self.blobs / blob).is_file():
            self._rejected_blobs.mkdir(parents=True, exist_ok=True)
            kept = self._rejected_blobs / blob
            os.replace(self.blobs / blob, kept)
            record["blob_path"] = str(kept)
        report.rejected.append(f"{op}: {reason}")
        with open(self._rejected, "a") as out:
            out.write(json.dumps({**record, "error": reason}) + "\n")
            out.flush()
            os.fsync(out.fileno())

    def _stop(self, report: SyncReport, reason: str) -> SyncReport:
        report.complete, report.reason = False, reason
        return report

    def replay(self, send: Send) -> SyncReport:
        """Send every entry in order. Stops, keeping the entry and the rest, when the server
        does not answer as itself (`Unreachable`) or anything unexpected goes wrong. An entry
        the server refuses (`Rejected`), one that failed with a plain 500 `MAX_ATTEMPTS`
        times, and a line that does not decode are set aside in ``rejected.jsonl`` with the
        reason (with a blob moved to ``rejected-blobs/``), and replay goes on."""
        report = SyncReport()
        with self.locked():
            if not self.pending():
                return report
            offset = self._read_offset()
            with open(self.journal, "rb") as journal:
                if offset and not self._at_line_start(journal, offset):
                    offset = 0  # stale: everything is sent again, keyed, so stored once
                journal.seek(offset)
                for line in journal:
                    if not line.endswith(b"\n"):
                        break  # a torn last line: its write never returned
                    if not self._replay_line(line, send, report):
                        return report
                    offset += len(line)
                    self._write_offset(offset)
            self._write_offset(0)  # first: a crash after it only sends entries again
            self.journal.write_bytes(b"")
            self._attempts.unlink(missing_ok=True)
            shutil.rmtree(self.blobs, ignore_errors=True)
        return report

    @staticmethod
    def _at_line_start(journal: IO[bytes], offset: int) -> bool:
        """Whether ``offset`` is where a line of the journal starts."""
        journal.seek(offset - 1)
        return journal.read(1) == b"\n"

    def _replay_line(self, line: bytes, send: Send, report: SyncReport) -> bool:
        """Send one journal line; False (with the report saying why) to stop here."""
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
                raise ValueError("not a spooled request")
        except ValueError as exc:
            text = line.decode("utf-8", "replace").rstrip("\n")
            self._set_aside(text, f"unreadable spool line ({exc})", report)
            return True
        blob = entry.get("blob")
        if blob and not (self.blobs / str(blob)).is_file():
            return True  # its bytes were sent and removed before a crash kept the offset
        try:
            self._count(entry, send(self._repoint(entry), self), report)
        except Rejected as exc:
            self._set_aside(entry, str(exc), report)
        except Unreachable as exc:
            if exc.status != 500 or self._attempt(entry["key"]) < MAX_ATTEMPTS:
                self._stop(report, str(exc))
                return False
            self._set_aside(entry, f"failed {MAX_ATTEMPTS} times: {exc}", report)
        except Exception as exc:  # one broken entry must not break every write: retry later
            self._stop(report, f"Sending {entry.get('op', 'an entry')} failed: {exc!r}.")
            return False
        else:
            if blob:
                (self.blobs / str(blob)).unlink(missing_ok=True)
        self._attempts.unlink(missing_ok=True)
        return True

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
                self._save_experiments(records)  # replay holds the lock
