"""Ids: 32 lowercase hex characters, ordered by creation time."""

from __future__ import annotations

import time

from prefect_mlops.core.ids import new_id


def test_ids_are_32_hex_and_sort_by_creation_time() -> None:
    first = new_id()
    time.sleep(0.002)
    second = new_id()
    assert len(first) == len(second) == 32
    assert int(first, 16) >= 0 and first == first.lower()
    assert first < second
    assert len({new_id() for _ in range(10_000)}) == 10_000
