"""Every failure becomes ``{"error": {"code", "message", "fields"?}}``, never a stack trace.

Bad input is a 4xx with a stable code (``errors.ErrorCode``); a database that does not answer
is a 503; anything unexpected is a 500 ``internal`` whose details go to the log only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from chase.logging import get_logger
from services.auth.errors import AuthError, ErrorCode, ErrorDetail, ErrorResponse, FieldError

log = get_logger("chase.auth")

# Pydantic's wording for the generic cases, made plain.
_PLAIN_MESSAGES = {
    "missing": "This field is required.",
    "extra_forbidden": "Unknown field: remove it.",
    "string_type": "This must be a string.",
    "int_parsing": "This must be a whole number.",
    "model_attributes_type": "The body must be a JSON object.",
    "dict_type": "The body must be a JSON object.",
    "string_unicode": "This must be valid Unicode text (it has a lone surrogate).",
}


def error_response(
    status: int,
    code: ErrorCode,
    message: str,
    *,
    fields: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorDetail(code=code, message=message, fields=fields))
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``; call once from the composition root."""
    app.add_exception_handler(AuthError, _auth_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for unavailable in (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError):
        app.add_exception_handler(unavailable, _store_unavailable)
    app.add_exception_handler(Exception, _internal_error)


async def _auth_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AuthError)
    return error_response(exc.status, exc.code, exc.message, headers=exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors: Sequence[Any] = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        return error_response(400, ErrorCode.MALFORMED_JSON, "The body is not valid JSON.")
    fields = [
        FieldError(field=_location(err.get("loc", ())), message=_message(err)) for err in errors
    ]
    summary = "; ".join(f"{f.field}: {f.message.rstrip('.')}" for f in fields)
    # Never echo the input back: it may be a password.
    return error_response(422, ErrorCode.VALIDATION_FAILED, f"Invalid request. {summary}", fields=fields)


def _location(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def _message(err: dict[str, Any]) -> str:
    return _PLAIN_MESSAGES.get(err.get("type", ""), str(err.get("msg", "Invalid value.")))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        return error_response(404, ErrorCode.NOT_FOUND, "No such endpoint.", headers=headers)
    if exc.status_code == 405:
        return error_response(405, ErrorCode.METHOD_NOT_ALLOWED, "This endpoint does not accept that method.",
                              headers=headers)
    if isinstance(exc.__cause__, UnicodeDecodeError):
        return error_response(400, ErrorCode.INVALID_ENCODING, "The body must be UTF-8 encoded JSON.")
    if isinstance(exc.__cause__, RecursionError | ValueError):
        return error_response(400, ErrorCode.MALFORMED_JSON, "The body is not valid JSON (or is nested too deeply).")
    detail = exc.detail if isinstance(exc.detail, str) else "The request was refused."
    return error_response(exc.status_code, ErrorCode.BAD_REQUEST, detail, headers=headers)


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable", path=request.url.path, error=type(exc).__name__)
    return error_response(503, ErrorCode.UNAVAILABLE, "The service cannot reach its database; try again later.",
                          headers={"Retry-After": "5"})


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", path=request.url.path, error=type(exc).__name__, exc_info=exc)
    return error_response(500, ErrorCode.INTERNAL, "Something went wrong on our side.")
