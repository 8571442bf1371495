"""Identifiers and timestamps in the shapes MLflow clients expect."""

from __future__ import annotations

import time
import uuid


def new_id() -> str:
    """A 32-character lowercase hex id."""
    return uuid.uuid4().hex


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return time.time_ns() // 1_000_000
