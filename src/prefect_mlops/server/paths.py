"""Paths clients send, checked before the server touches storage: artifact paths relative to
the artifact root, and artifact locations for new experiments, which must lie under it."""

from __future__ import annotations

import os
import re
from urllib.parse import unquote

from prefect_mlops.core.errors import InvalidInput
from prefect_mlops.server.errors import PERMISSION_DENIED, ApiError

PROXY_SCHEME = "mlflow-artifacts:"
#: first path segments the server keeps for itself (uploads in progress, multipart parts)
RESERVED = (".mpu", ".upload-")


def safe_relative(raw: str) -> str:
    """``raw`` as a path under the artifact root, or InvalidInput (a 400) saying why not."""
    path = raw.strip()
    decoded = unquote(path)
    if "\\" in decoded or "\x00" in decoded:
        raise InvalidInput(f"Artifact path {raw!r} may not contain backslashes or NUL bytes.")
    if decoded.startswith("/") or re.match(r"^[A-Za-z]:", decoded) or "://" in decoded:
        raise InvalidInput(f"Artifact path {raw!r} must be relative to the artifact root.")
    parts = [p for p in decoded.split("/") if p]
    if any(p in (".", "..") for p in parts) or (decoded != path and ".." in decoded):
        raise InvalidInput(f"Artifact path {raw!r} may not contain '.' or '..' segments.")
    if parts and parts[0].startswith(RESERVED):
        raise InvalidInput(f"Artifact path {raw!r} is in a folder the server keeps for itself.")
    return "/".join(parts)


def location_under_root(root: str, given: str | None) -> str:
    """Where a new experiment's artifacts go: ``root`` itself when the client gives nothing,
    else the given location, which must lie under ``root`` (a proxy URI
    ``mlflow-artifacts:/team/x``, or a path or URL below the root). The server writes there
    with its own credentials, so a location elsewhere is refused rather than followed."""
    root = root.rstrip("/")
    if not given:
        return root
    if given.startswith(PROXY_SCHEME):
        rest = safe_relative(given[len(PROXY_SCHEME) :].lstrip("/"))
        return f"{root}/{rest}" if rest else root
    if "://" in root or "://" in given:
        normal = given.rstrip("/")
        inside = normal == root or (normal.startswith(root + "/") and ".." not in normal.split("/"))
    else:
        normal = os.path.normpath(os.path.abspath(given))
        inside = normal == root or normal.startswith(root + os.sep)
    if not inside:
        raise InvalidInput(
            f"artifact_location {given!r} is outside this server's artifact root; give one "
            f"under it ({PROXY_SCHEME}/<folder>), or none to use the root."
        )
    return normal


RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def check_run_id(run_id: str | None) -> None:
    """Client-made run ids become part of artifact paths: 32 lowercase hex digits only."""
    if run_id is not None and not RUN_ID.match(run_id):
        raise InvalidInput(f"run_id {run_id!r} is not 32 lowercase hex digits, as run ids are.")


def checked_file(root: str, run_location: str, rel: str) -> None:
    """Refuse (403) a run file that is not under the server's artifact root: a run stored
    elsewhere, or, on a local root, a path that a symbolic link leads out of it."""
    location_under_root(root, run_location)  # raises if the run lies elsewhere
    if "://" not in root:
        real_path_under(root, os.path.join(run_location, rel), rel)


def real_path_under(root: str, path: str, rel: str) -> str:
    """The real path of ``path`` (``rel`` under the local root, as the client named it);
    403 if symbolic links lead it out of ``root``."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise ApiError(
            f"Artifact path {rel!r} leads outside the artifact root (through a symbolic link); "
            "refused.",
            PERMISSION_DENIED,
            403,
        )
    return real
