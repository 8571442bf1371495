"""The few things every part of the Prefect integration asks of Prefect itself: a client, how
a final state maps to a run status, whether an API is configured, a flow run's UI link."""

from __future__ import annotations

import atexit
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect_mlops.core.lazy import Lazy
from prefect_mlops.tracking.entities import RunStatus

logger = logging.getLogger("prefect_mlops.prefect")

#: Prefect's final state types and the run status each one ends a run with.
STATE_TO_STATUS = {
    "COMPLETED": RunStatus.FINISHED,
    "FAILED": RunStatus.FAILED,
    "CRASHED": RunStatus.KILLED,
    "CANCELLED": RunStatus.KILLED,
}


def status_for_state(state_type: str | None) -> RunStatus:
    """The run status a flow run's final state type ends its run with (FINISHED if unknown)."""
    return STATE_TO_STATUS.get(state_type or "", RunStatus.FINISHED)


def _open_shared_client() -> Any:
    from prefect.client.orchestration import get_client

    client = get_client(sync_client=True)
    client.__enter__()
    return client


_shared_client: Lazy[Any] = Lazy(_open_shared_client, per_process=True)


@atexit.register
def _close_shared_client() -> None:
    client = _shared_client.reset()
    if client is not None:
        try:
            client.__exit__(None, None, None)
        except Exception as exc:  # the interpreter is going away; nothing to recover
            logger.debug("Prefect client not closed cleanly: %r", exc)


@contextmanager
def prefect_client() -> Iterator[Any]:
    """A synchronous Prefect client: the running flow's own when there is one, else one
    shared client kept open for the process (opening one costs tens of milliseconds)."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.context import FlowRunContext, TaskRunContext

    for ctx in (TaskRunContext.get(), FlowRunContext.get()):
        client = getattr(ctx, "client", None)
        if isinstance(client, SyncPrefectClient):
            yield client
            return
    yield _shared_client.get()


def prefect_api_configured() -> bool:
    """True when a Prefect API URL is set (we never start a temporary server just to ask)."""
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


def flow_run_url(flow_run: Any) -> str | None:
    """The flow run's page in the Prefect UI, when a UI URL is known."""
    try:
        from prefect.utilities.urls import url_for

        return url_for(flow_run, url_type="ui")
    except Exception:
        return None
