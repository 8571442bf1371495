"""What a run records about where it ran: code version, interpreter, packages, environment.

Each part is switched by a setting (``capture_git``, ``capture_packages``, ``capture_env``) and
each failure is recorded as absence, never raised: a run without git, or in a repository git
cannot read, simply gets ``git.available = false``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MAX_DIFF_BYTES = 500 * 1024
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
MASK = "***"


@dataclass
class RunContextInfo:
    """Tags and artifacts describing the process a run ran in."""

    tags: dict[str, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # artifact file -> content


def _git(args: list[str], cwd: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "replace")


def strip_credentials(url: str) -> str:
    """``https://user:token@host/x.git`` -> ``https://host/x.git``; scp-style URLs keep the
    user name only (``git@host:org/repo``), which is not a secret."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def git_info(cwd: str) -> RunContextInfo:
    info = RunContextInfo()
    top = _git(["rev-parse", "--show-toplevel"], cwd)
    commit = _git(["rev-parse", "HEAD"], cwd) if top else None
    if not top or not commit:
        info.tags["git.available"] = "false"
        return info
    info.tags["git.available"] = "true"
    info.tags["git.commit"] = commit.strip()
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
    if branch:
        info.tags["git.branch"] = branch.strip()
    remote = _git(["config", "--get", "remote.origin.url"], cwd)
    if remote and remote.strip():
        info.tags["git.remote"] = strip_credentials(remote.strip())
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    dirty = bool(status and status.strip())
    info.tags["git.dirty"] = str(dirty).lower()
    if dirty:
        diff = _git(["diff", "HEAD"], cwd) or ""
        data = diff.encode()
        if len(data) > MAX_DIFF_BYTES:
            cut = data[:MAX_DIFF_BYTES].decode("utf-8", "ignore")
            diff = cut + f"\n[diff truncated at {MAX_DIFF_BYTES} bytes of {len(data)}]\n"
        info.texts["git.diff"] = diff
    return info


def interpreter_info() -> RunContextInfo:
    info = RunContextInfo()
    info.tags.update(
        {
            "python.version": platform.python_version(),
            "python.executable": sys.executable,
            "platform": platform.platform(),
            "host": socket.gethostname(),
            "command": " ".join(sys.argv)[:8000],
        }
    )
    return info


def packages_info() -> RunContextInfo:
    from importlib.metadata import distributions

    seen: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    info = RunContextInfo()
    info.texts["requirements.txt"] = "\n".join(sorted(seen.values(), key=str.lower)) + "\n"
    return info


def environment_info(include: str) -> RunContextInfo:
    """Variables whose names match ``include``; values of secret-looking names are masked."""
    pattern = re.compile(include)
    selected = {
        name: (MASK if SECRET_NAME.search(name) else value)
        for name, value in sorted(os.environ.items())
        if pattern.search(name)
    }
    info = RunContextInfo()
    info.texts["environment.json"] = json.dumps(selected, indent=2)
    return info


_collected: dict[tuple[Any, ...], RunContextInfo] = {}


def collect(settings: Any, cwd: str | None = None) -> RunContextInfo:
    """Everything the settings ask for, merged; computed once per process and folder (a
    process's packages and code do not change between its flow runs, and listing them is
    the most expensive part of starting a tracked run)."""
    cwd = cwd or os.getcwd()
    key = (
        cwd,
        settings.capture_git,
        settings.capture_packages,
        settings.capture_env,
        settings.env_include,
    )
    cached = _collected.get(key)
    if cached is None:
        cached = _collected[key] = _collect(settings, cwd)
    return cached


def _collect(settings: Any, cwd: str) -> RunContextInfo:
    parts = [interpreter_info()]
    if settings.capture_git:
        parts.append(git_info(cwd))
    if settings.capture_packages:
        parts.append(packages_info())
    if settings.capture_env:
        parts.append(environment_info(settings.env_include))
    merged = RunContextInfo()
    for part in parts:
        merged.tags.update(part.tags)
        merged.texts.update(part.texts)
    return merged
