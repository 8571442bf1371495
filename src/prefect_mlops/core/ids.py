"""Identifiers and timestamps in the shapes MLflow clients expect."""

from __future__ import annotations

import secrets
import time


def new_id() -> str:
    """A 32-character lowercase hex id that sorts by creation time (like UUIDv7): 12 hex digits
    of milliseconds, then 80 random bits. Ids created close together land next to each other
    in every index keyed by them, which keeps inserts and joins on large stores fast."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return time.time_ns() // 1_000_000
