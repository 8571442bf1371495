"""``prefect-mlops setup``: turn on zero-code tracking, and optionally the crash watchdog."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

WATCHDOG_NAME = "prefect-mlops: crash flow runs that stop sending heartbeats"


def enable_auto_tracking(config_path: Path) -> list[str]:
    """Write the settings that make every flow run tracked; returns what was done."""
    from prefect.settings import update_current_profile

    done = []
    profile = update_current_profile({"PREFECT_PLUGINS_ENABLED": "true"})
    done.append(f"Prefect profile {profile.name!r}: PREFECT_PLUGINS_ENABLED=true")
    config_path.parent.mkdir(parents=True, exist_ok=True)
    text = config_path.read_text() if config_path.exists() else ""
    if re.search(r"(?m)^\s*auto_track\s*=", text):
        text = re.sub(r"(?m)^\s*auto_track\s*=.*$", "auto_track = true", text)
    else:
        text = (text.rstrip() + "\n" if text.strip() else "") + "auto_track = true\n"
    config_path.write_text(text)
    done.append(f"{config_path}: auto_track = true")
    return done


def default_within() -> int:
    """Two heartbeat periods and a margin: a live flow run is never mistaken for a dead one."""
    from prefect.settings import get_current_settings

    frequency = get_current_settings().flows.heartbeat_frequency or 180
    return 2 * int(frequency) + 15


def create_watchdog(within_seconds: int | None = None) -> str:
    """An automation that marks Running flow runs Crashed when their heartbeats stop (a plain
    script killed with SIGKILL stays Running forever otherwise); returns its id."""
    within_seconds = within_seconds or default_within()
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture

    for _ in range(10):  # replace earlier copies so setup can be rerun
        try:
            existing = Automation.read(name=WATCHDOG_NAME, _sync=True)  # type: ignore[call-overload]
        except ValueError:
            break
        existing.delete(_sync=True)
    automation: Any = Automation(
        name=WATCHDOG_NAME,
        description="Flow runs whose heartbeat events stop are marked Crashed.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match={"prefect.resource.id": ["prefect.flow-run.*"]},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=within_seconds),
        ),
        actions=[
            ChangeFlowRunState(
                name="Crashed",
                force=True,
                state=StateType.CRASHED,
                message=f"No heartbeat for {within_seconds} s: the process is gone.",
            )
        ],
    ).create(_sync=True)  # type: ignore[call-arg]
    return str(automation.id)
