"""Autolog tests: every test starts with no integration installed and leaves none behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _autolog_clean() -> Iterator[None]:
    """Reset the once-per-hook warnings; afterwards undo every patch a test installed."""
    import prefect_mlops
    from prefect_mlops.tracking.autolog import _common, installed

    _common.reset_reported()
    yield
    prefect_mlops.autolog(disable=True, frameworks=installed())
    _common.reset_reported()
