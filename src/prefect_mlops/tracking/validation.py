"""Rules on names and values, checked before anything is buffered or written."""

from __future__ import annotations

import math
import operator
import posixpath
import re
import unicodedata

from prefect_mlops.core.errors import InvalidInput

MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_RUN_NAME_LENGTH = 250
MAX_EXPERIMENT_NAME_LENGTH = 256

#: The characters a metric, param or tag key may hold (a regex character class body).
KEY_CHARACTERS = r"A-Za-z0-9_\-./ "
_KEY_RE = re.compile(f"[{KEY_CHARACTERS}]+")
#: One character a key may not hold: what integrations replace when they derive keys.
INVALID_KEY_CHARACTER = re.compile(f"[^{KEY_CHARACTERS}]")
_valid_keys: set[str] = set()


def validate_key(key: object, kind: str = "metric") -> str:
    """Return ``key`` if it is a valid name for a metric, param or tag; raise otherwise."""
    if key in _valid_keys:
        return key
    if not isinstance(key, str):
        raise InvalidInput(f"{kind} key must be a string, got {type(key).__name__} {key!r}.")
    if not key:
        raise InvalidInput(f"{kind} key must not be empty.")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(
            f"{kind} key {key[:40]!r}... is {len(key)} characters; the limit is "
            f"{MAX_KEY_LENGTH}. Use a shorter name."
        )
    if not _KEY_RE.fullmatch(key):
        bad = sorted(set(INVALID_KEY_CHARACTER.findall(key)))
        raise InvalidInput(
            f"{kind} key {key!r} contains {''.join(bad)!r}; keys may only contain letters, "
            "digits, '_', '-', '.', '/' and spaces."
        )
    normal = posixpath.normpath(key)
    if normal != key or normal == "." or normal.startswith(("..", "/")):
        raise InvalidInput(
            f"{kind} key {key!r} reads as a path that resolves to {normal!r}; keys may be "
            "stored as file names, so use one without '..', '.', leading, trailing or "
            "doubled '/' segments (e.g. 'val/loss')."
        )
    if len(_valid_keys) < 100_000:
        _valid_keys.add(key)
    return key


def metric_value(key: str, value: object) -> float:
    """``value`` as a float; booleans, strings and other non-numbers are refused."""
    if type(value) is float:
        return value
    if not isinstance(value, (bool, str, bytes)) and hasattr(value, "__float__"):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    raise InvalidInput(
        f"Metric {key!r} got value {value!r} of type {type(value).__name__}; metric values "
        "must be numbers (int, float, numpy scalars; NaN and ±Inf allowed)."
    )


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def metric_step(key: str, step: object) -> int:
    if type(step) is int and INT64_MIN <= step <= INT64_MAX:
        return step
    if isinstance(step, bool) or not hasattr(step, "__index__"):
        raise InvalidInput(f"Metric {key!r} got step {step!r}; steps must be integers.")
    return int64(f"Metric {key!r} step", operator.index(step))


def int64(what: str, number: int) -> int:
    """``number`` if it fits the 64-bit integer columns it is stored in."""
    if not INT64_MIN <= number <= INT64_MAX:
        raise InvalidInput(f"{what} {number} does not fit in 64 bits (-2**63 .. 2**63-1).")
    return number


def stringify(value: object) -> str:
    """How a param or tag value is stored: booleans and numbers as Python writes them."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return str(value)


def _bounded_text(kind: str, key: str, value: object, limit: int, instead: str) -> str:
    text = stringify(value)
    if len(text) > limit:
        raise InvalidInput(
            f"{kind} {key!r} has a value of {len(text)} characters; the limit is "
            f"{limit}. Log long values with {instead} instead."
        )
    return text


def validate_param_value(key: str, value: object) -> str:
    """A param value as stored (a string), refused beyond `MAX_PARAM_VALUE_LENGTH`."""
    return _bounded_text("Param", key, value, MAX_PARAM_VALUE_LENGTH, "log_text or log_dict")


def validate_tag_value(key: str, value: object) -> str:
    """A tag value as stored (a string), refused beyond `MAX_TAG_VALUE_LENGTH`."""
    return _bounded_text("Tag", key, value, MAX_TAG_VALUE_LENGTH, "log_text")


def validate_name(name: object, kind: str, limit: int) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"{kind} name must be a non-empty string, got {name!r}.")
    if len(name) > limit:
        raise InvalidInput(
            f"{kind} name {name[:40]!r}... is {len(name)} characters; the limit is {limit}."
        )
    control = sorted({c for c in name if unicodedata.category(c) == "Cc"})
    if control:
        raise InvalidInput(
            f"{kind} name {name!r} contains the control character(s) "
            f"{', '.join(repr(c) for c in control)}; names are shown in tables and terminals, "
            "so use printable characters only."
        )
    return name


def safe_artifact_path(path: str | None) -> str:
    """Normalise a relative artifact path; refuse anything that escapes the run's folder."""
    if path is None or path in ("", "."):
        return ""
    if not isinstance(path, str):
        raise InvalidInput(f"Artifact path must be a string, got {path!r}.")
    candidate = path.replace("\\", "/")
    if candidate.startswith("/") or re.match(r"^[A-Za-z]:", candidate) or "://" in candidate:
        raise InvalidInput(
            f"Artifact path {path!r} is absolute; give a path relative to the run's "
            "artifact folder, e.g. 'models/model.pkl'."
        )
    parts = [p for p in candidate.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidInput(
            f"Artifact path {path!r} contains '..' and would escape the run's artifact "
            "folder; give a path inside it, e.g. 'plots/loss.png'."
        )
    return posixpath.join(*parts) if parts else ""
