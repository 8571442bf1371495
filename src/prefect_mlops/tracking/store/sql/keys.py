"""Idempotency keys: a write sent twice under one key is applied once.

The key is claimed in the same transaction as the write it guards (`SqlStoreBase._write`),
so a metric batch and its key commit together or not at all: a server killed mid-batch
leaves neither, and the client's replay applies the batch whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from prefect_mlops.core.errors import InvalidInput
from prefect_mlops.core.ids import now_ms
from prefect_mlops.tracking import tables as t
from prefect_mlops.tracking.store.sql.engine import Replayed, SqlStoreBase

T = TypeVar("T")
MAX_KEY_LENGTH = 64


#: Keys are kept this long: a client replaying its spool later than this could store a
#: write twice, so a spool must be synced within it.
KEEP_KEYS_MS = 90 * 86_400_000


class RequestKeysMixin(SqlStoreBase):
    def prune_request_keys(self, older_than_ms: int = KEEP_KEYS_MS) -> int:
        """Forget keys claimed longer ago than ``older_than_ms``; returns how many."""
        k = t.request_keys
        cutoff = now_ms() - older_than_ms
        return int(
            self._write(
                lambda conn: conn.execute(k.delete().where(k.c.created_time < cutoff)).rowcount
            )
        )

    def apply_once(self, key: str, write: Callable[[], T]) -> tuple[bool, T | None]:
        """Run ``write`` (one store write) with ``key`` claimed in its transaction:
        ``(True, result)``, or ``(False, None)`` when the key was applied before."""
        if not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidInput(
                f"Idempotency key {key!r} must be 1 to {MAX_KEY_LENGTH} characters long."
            )
        self._keys.key = key
        try:
            return True, write()
        except Replayed:
            return False, None
        finally:
            self._keys.key = None
