"""The Prefect plugin: with ``PREFECT_PLUGINS_ENABLED=true`` Prefect calls `setup_environment`
at ``import prefect`` in every process (scripts, workers, flow subprocesses); when
``auto_track`` is on it installs zero-code tracking there."""

from __future__ import annotations

import logging
from typing import Any

from prefect_mlops.core.settings import get_settings
from prefect_mlops.tracking.autolog import autolog
from prefect_mlops.tracking.flow_runs.auto_track import install_auto_tracking

PREFECT_PLUGIN_API_REQUIRES = ">=0.1,<1"


def _hookimpl(fn: Any) -> Any:
    import pluggy

    return pluggy.HookimplMarker("prefect-experimental")(fn)


@_hookimpl
def setup_environment(*, ctx: Any) -> None:
    """Install the flow-run tracker when auto-tracking is enabled; returns no environment."""
    if not get_settings().auto_track:
        return None
    install_auto_tracking()
    try:
        autolog()
    except Exception as exc:
        logging.getLogger("prefect_mlops.plugin").warning("autolog failed: %r", exc)
    return None
