"""JSON errors with stable codes: ``{"error": {"code": ..., "message": ...}}``.

Every failure a client can see goes through these handlers, so no stack trace ever leaves
the service: validation errors, HTTP errors from routing, our own ``ServiceError``, user-input
errors from the aligner library, and anything unexpected (logged here, reported as
``internal_error``).
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from aligner.align.embed import EncoderError
from aligner.errors import InputError, InputTooLarge

log = logging.getLogger("concordia.service")


class ServiceError(Exception):
    """An error answered to the client as JSON with an HTTP status and a stable code."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def bad_request(message: str, code: str = "invalid_input") -> ServiceError:
    return ServiceError(400, code, message)


def not_found(message: str) -> ServiceError:
    return ServiceError(404, "not_found", message)


def payload_too_large(limit: int) -> ServiceError:
    return ServiceError(413, "payload_too_large", f"upload larger than the limit of {limit} bytes")


def too_busy(message: str, retry_after: int) -> ServiceError:
    """429 with ``Retry-After``: a limit on work at once was reached; try again later."""
    return ServiceError(429, "too_busy", message, {"Retry-After": str(retry_after)})


def without_paths(message: str, *roots: Path | str) -> str:
    """``message`` with the server's folders (``roots``, absolute or not) taken out."""
    for root in roots:
        forms = {str(Path(root).resolve())}
        if "/" in str(root):  # a bare relative name ("data") could be part of another word
            forms.add(str(root))
        for form in sorted(forms, key=len, reverse=True):
            message = message.replace(form + "/", "").replace(form, "the data folder")
    return message


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers=None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    503: "unavailable",
    504: "timeout",
}


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",)) or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    return error_response(422, "invalid_request", _validation_message(exc))


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(exc.status_code, code, message, getattr(exc, "headers", None))


async def _input_error(request: Request, exc: InputError) -> JSONResponse:
    if isinstance(exc, InputTooLarge):
        status, code = 413, "input_too_large"
    elif isinstance(getattr(exc, "status", None), int) and getattr(exc, "code", None):
        status, code = exc.status, exc.code  # a store's error (StoreError) says its own
    else:
        status = 400
        code = "invalid_tmx" if type(exc).__name__ == "TMXError" else "invalid_input"
    message = without_paths(str(exc), request.app.state.settings.data_dir)
    return error_response(status, code, message or code.replace("_", " "))


async def _out_of_range(request: Request, exc: OverflowError) -> JSONResponse:
    # Handled here rather than as a 500, which would also close a kept-alive connection.
    log.info("number out of range on %s %s: %s", request.method, request.url.path, exc)
    return error_response(400, "out_of_range", "a number in the request is out of range")


async def _encoder_error(_: Request, exc: EncoderError) -> JSONResponse:
    return error_response(503, "encoder_unavailable", str(exc))


_FULL = (errno.ENOSPC, errno.EDQUOT)
DISK_FULL_MESSAGE = (
    "the server's disk is full: nothing was saved; try again once space is freed"
)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or the database's allowed size) is full."""
    if isinstance(exc, OSError):
        return exc.errno in _FULL
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or (
            "disk is full" in str(exc)
        )
    return False


async def _storage_error(request: Request, exc: Exception) -> JSONResponse:
    """507 for a full disk (the change was rolled back); anything else as unexpected. Handled
    here rather than as a 500, which would also close a kept-alive connection."""
    if is_disk_full(exc):
        log.error("disk full on %s %s: %s", request.method, request.url.path, exc)
        return error_response(507, "disk_full", DISK_FULL_MESSAGE)
    return await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal error; the server log has details")


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(EncoderError, _encoder_error)
    app.add_exception_handler(OverflowError, _out_of_range)
    app.add_exception_handler(OSError, _storage_error)
    app.add_exception_handler(sqlite3.OperationalError, _storage_error)
    app.add_exception_handler(Exception, _unexpected)
