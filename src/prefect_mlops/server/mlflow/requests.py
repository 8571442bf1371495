"""Reading MLflow requests: JSON bodies and GET query strings checked against the fields of
MLflow's request messages, so a malformed body, a wrong type or an unknown field is a 400
that names the field (never a 5xx, which the stock client retries for minutes).

A message is described by a `Fields` mapping: name -> ``str``, ``int``, ``float``, ``bool``,
a `Choice` of enum names, a nested `Fields` mapping, or a one-element list of any of those
for a repeated field. Values come back converted (int64 strings to ints, "NaN" to a float).
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from prefect_mlops.server.errors import BAD_REQUEST, INVALID_PARAMETER_VALUE, ApiError

Fields = Mapping[str, Any]
Handler = Callable[[Request, dict[str, Any]], Any]

_FLOATS = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf, "inf": math.inf}


INT64 = (-(2**63), 2**63 - 1)


class Choice:
    """An enum field: one of ``names`` or its number as protobuf's JSON allows, the first
    name numbered ``first`` (MLflow's ``ViewType`` and ``RunStatus`` count from 1)."""

    def __init__(self, *names: str, first: int = 0) -> None:
        self.names = names
        self.first = first

    def convert(self, value: object, where: str) -> str:
        index = value - self.first if isinstance(value, int) else -1
        if not isinstance(value, bool) and 0 <= index < len(self.names):
            return self.names[index]
        if isinstance(value, str) and value.upper() in self.names:
            return value.upper()
        raise invalid(f"{where} must be one of {list(self.names)}, got {value!r}.")


def invalid(message: str) -> ApiError:
    return ApiError(message, INVALID_PARAMETER_VALUE, 400)


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _integral(value: float | str) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    return re.fullmatch(r"\s*-?[0-9]+\s*", value) is not None


def _scalar(kind: Any, value: object, where: str) -> Any:
    if isinstance(kind, Choice):
        return kind.convert(value, where)
    if kind is str:
        if isinstance(value, str):
            return value
        raise invalid(f"{where} must be a string, got {_type_name(value)} {value!r}.")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise invalid(f"{where} must be true or false, got {value!r}.")
    if kind is int:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif (isinstance(value, float) and value.is_integer()) or (
            isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value)
        ):
            number = int(value)
        if number is None:
            raise invalid(f"{where} must be an integer, got {_type_name(value)} {value!r}.")
        if not INT64[0] <= number <= INT64[1]:
            raise invalid(
                f"{where}={number} does not fit in 64 bits, as MLflow's int64 fields must."
            )
        return number
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            special = _FLOATS.get(value.strip().lower())
            if special is not None:
                return special
            try:
                return float(value)
            except ValueError:
                pass
        raise invalid(f"{where} must be a number, got {_type_name(value)} {value!r}.")
    raise TypeError(f"unknown field kind {kind!r}")  # a mistake in a spec, not in a request


def check(value: object, fields: Fields, where: str = "request") -> dict[str, Any]:
    """``value`` as a message with ``fields``: unknown names and wrong types refused."""
    if not isinstance(value, dict):
        raise invalid(f"{where} must be a JSON object, got {_type_name(value)}.")
    out: dict[str, Any] = {}
    for name, item in value.items():
        if name not in fields:
            raise invalid(f"Unknown field {name!r} in {where}; expected fields: {sorted(fields)}.")
        if item is None:
            continue
        out[name] = _convert(fields[name], item, f"{where}.{name}" if where != "request" else name)
    return out


def _convert(kind: Any, value: object, where: str) -> Any:
    if isinstance(kind, list):
        if not isinstance(value, list):
            raise invalid(f"{where} must be a list, got {_type_name(value)}.")
        return [_convert(kind[0], item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(kind, Mapping):
        return check(value, kind, where)
    return _scalar(kind, value, where)


def from_query(request: Request, fields: Fields) -> dict[str, Any]:
    """A GET request's query string as a message (repeated fields from repeated keys)."""
    out: dict[str, Any] = {}
    params = request.query_params
    for name in params:
        if name not in fields:
            raise invalid(
                f"Unknown query parameter {name!r}; expected parameters: {sorted(fields)}."
            )
        kind = fields[name]
        values = params.getlist(name)
        if isinstance(kind, list):
            out[name] = [_scalar(kind[0], x, f"{name}[{i}]") for i, x in enumerate(values)]
        else:
            out[name] = _scalar(kind, values[-1], name)
    return out


async def from_body(request: Request, fields: Fields) -> dict[str, Any]:
    """A JSON body as a message; an empty body is an empty message."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(f"Malformed JSON in the request body: {exc}.", BAD_REQUEST, 400) from None
    return check(value, fields)


def required(args: Mapping[str, Any], name: str, *aliases: str) -> Any:
    """The value of a required field (or the first alias present), else a 400 naming it."""
    for key in (name, *aliases):
        if args.get(key) not in (None, ""):
            return args[key]
    raise invalid(f"Missing value for required parameter {name!r}.")


def _finite(value: Any) -> Any:
    """JSON with NaN and infinities spelt as protobuf's JSON spells them."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def json_response(payload: Any, status: int = 200) -> Response:
    try:  # most answers hold no NaN or infinity: no walk over them
        body = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except ValueError:
        body = json.dumps(_finite(payload), separators=(",", ":"), allow_nan=False)
    return Response(body, status_code=status, media_type="application/json")


def json_number(value: float) -> str:
    """A float as protobuf's JSON writes it (NaN and infinities as strings)."""
    if value != value:
        return '"NaN"'
    if value in (math.inf, -math.inf):
        return '"Infinity"' if value > 0 else '"-Infinity"'
    return repr(value)


def endpoint(fields: Fields, handler: Handler, *, query: bool) -> Callable[..., Awaitable[Any]]:
    """An ASGI route: read and check the request (query string or JSON body, plus path
    parameters), run ``handler`` (blocking store work) in a worker thread, answer JSON."""

    async def route(request: Request) -> Response:
        args = from_query(request, fields) if query else await from_body(request, fields)
        for name, value in request.path_params.items():
            args[name] = value  # the resource in the URL is the one acted on
        result = await run_in_threadpool(handler, request, args)
        return result if isinstance(result, Response) else json_response(result or {})

    route.__name__ = handler.__name__
    return route


def page_offset(token: str | None) -> int:
    """The offset an offset-paged route's ``page_token`` carries (0 without one)."""
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
        if isinstance(offset, int) and offset >= 0:
            return offset
    except (ValueError, KeyError, TypeError):
        pass
    raise invalid(f"Invalid page_token {token!r}; pass back a next_page_token.")


def page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def add_routes(router: APIRouter, routes: list[tuple[str, str, dict[str, Any], Any]]) -> None:
    """Register (method, path, fields, handler) routes: GET ones read the query string,
    the others a JSON body."""
    for method, path, fields, handler in routes:
        router.add_api_route(
            path,
            endpoint(fields, handler, query=method == "GET"),
            methods=[method],
            include_in_schema=False,
        )
