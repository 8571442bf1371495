"""How a failure becomes an HTTP answer: MLflow's error body and status codes.

Every refusal is a 4xx with ``{"error_code": ..., "message": ...}`` as MLflow's protos define
them: a client's mistake must never be a 5xx, which the stock MLflow client retries for
minutes. Only a failure of the server itself (its database or storage) is a 5xx.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from prefect_mlops.core.errors import (
    AlreadyExists,
    Conflict,
    DatabaseUnavailable,
    InvalidInput,
    MlopsError,
    NotFound,
    StorageError,
)

logger = logging.getLogger("prefect_mlops.server")

INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
RESOURCE_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
BAD_REQUEST = "BAD_REQUEST"
PERMISSION_DENIED = "PERMISSION_DENIED"
REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
ENDPOINT_NOT_FOUND = "ENDPOINT_NOT_FOUND"
INTERNAL_ERROR = "INTERNAL_ERROR"
TEMPORARILY_UNAVAILABLE = "TEMPORARILY_UNAVAILABLE"


class ApiError(Exception):
    """A refusal with its MLflow error code and HTTP status."""

    def __init__(self, message: str, error_code: str = INVALID_PARAMETER_VALUE, status: int = 400):
        super().__init__(message)
        self.message = message
        self.error_code = error_code
        self.status = status


#: Names which of our errors a refusal is, for our remote store (MLflow clients ignore it).
ERROR_CLASS_HEADER = "X-Mlops-Error"
#: the errors a remote client raises again from the header (subclasses are sent as these)
CLIENT_ERRORS = frozenset(("InvalidInput", "NotFound", "AlreadyExists", "Conflict", "StorageError"))


def error_response(
    message: str, error_code: str, status: int, error_class: str | None = None
) -> JSONResponse:
    headers = {ERROR_CLASS_HEADER: error_class} if error_class else None
    return JSONResponse(
        {"error_code": error_code, "message": message}, status_code=status, headers=headers
    )


def classify(exc: BaseException) -> tuple[str, int]:
    """(MLflow error code, HTTP status) for one of our errors."""
    if isinstance(exc, ApiError):
        return exc.error_code, exc.status
    if isinstance(exc, NotFound):
        return RESOURCE_DOES_NOT_EXIST, 404
    if isinstance(exc, AlreadyExists):
        return RESOURCE_ALREADY_EXISTS, 400
    if isinstance(exc, (InvalidInput, Conflict, OverflowError)):  # an int past 64 bits
        return INVALID_PARAMETER_VALUE, 400
    if isinstance(exc, DatabaseUnavailable):
        return TEMPORARILY_UNAVAILABLE, 503
    if isinstance(exc, StorageError):
        return INTERNAL_ERROR, 500
    if isinstance(exc, MlopsError):
        return INVALID_PARAMETER_VALUE, 400
    return INTERNAL_ERROR, 500


async def handle_error(request: Request, exc: Exception) -> JSONResponse:
    code, status = classify(exc)
    if status >= 500:
        logger.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    message = exc.message if isinstance(exc, ApiError) else str(exc)
    return error_response(message, code, status, error_class(exc, status))


def error_class(exc: BaseException | None, status: int) -> str | None:
    """The name of our error a refusal stands for, sent as ``X-Mlops-Error``: how our remote
    client tells the server's own refusals (kept out of the spool as final) from a proxy's
    or another server's 4xx. None for a failure of the server itself (5xx)."""
    if isinstance(exc, MlopsError):  # the most specific of the errors clients know
        for cls in type(exc).__mro__:
            if cls.__name__ in CLIENT_ERRORS:
                return cls.__name__
    if status >= 500:
        return None
    return "NotFound" if status == 404 else "InvalidInput"
