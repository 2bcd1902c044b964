"""One error shape everywhere: the guide's envelope, or RFC 9457 problem details.

Envelope (default)::

    {"error": {"message": "Order not found", "type": "NotFoundException", "code": "not_found",
               "details": {"resource": "Order", "identifier": "42"}, "request_id": "..."}}

Problem details (``error_format="problem"``, ``application/problem+json``)::

    {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "Order not found",
     "instance": "/orders/42", "code": "not_found", "request_id": "...", "details": {...}}

Validation errors carry ``errors``: a list of ``{"loc", "type", "msg"}`` only, never the values
that were sent.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Literal

import orjson

__all__ = [
    "ErrorFormat",
    "check_error_format",
    "error_content",
    "media_type",
    "minimal_500",
    "minimal_500_content",
    "phrase",
]

ErrorFormat = Literal["envelope", "problem"]


def check_error_format(error_format: object) -> ErrorFormat:
    """*error_format* if it is one (the handlers' and the middleware's option).

    Raises:
        ConfigError: for anything else.
    """
    if error_format == "envelope" or error_format == "problem":
        return error_format
    from ..exceptions import ConfigError

    raise ConfigError("error_format", error_format, "'envelope' or 'problem'")


#: The response of last resort: a handler itself failed. Valid JSON, nothing more.
_HEAD_500 = b'{"error":{"message":"Internal server error","type":"InternalServerError",'


def minimal_500(request_id: str | None) -> bytes:
    """The last-resort 500 body, with the request ID when there is one."""
    rid = orjson.dumps(request_id).decode() if request_id else "null"
    return _HEAD_500 + f'"code":"internal_error","details":{{}},"request_id":{rid}}}}}'.encode()


def minimal_500_content(fmt: ErrorFormat, request_id: str | None) -> tuple[bytes, str]:
    """The body and media type of the last-resort 500 in the chosen format."""
    if fmt == "problem":
        return _minimal_problem_500(request_id), media_type(fmt)
    return minimal_500(request_id), media_type(fmt)


def _minimal_problem_500(request_id: str | None) -> bytes:
    """:func:`minimal_500` in RFC 9457's shape (``application/problem+json``)."""
    return orjson.dumps(
        {
            "type": "about:blank",
            "title": "Internal Server Error",
            "status": 500,
            "detail": "Internal server error",
            "code": "internal_error",
            "request_id": request_id if isinstance(request_id, str) else None,
        }
    )


def media_type(fmt: ErrorFormat) -> str:
    """The media type of error responses in the chosen format."""
    return "application/problem+json" if fmt == "problem" else "application/json"


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_content(
    fmt: ErrorFormat,
    *,
    status: int,
    code: str,
    message: str,
    type_name: str,
    details: dict[str, Any] | None,
    request_id: str | None,
    instance: str | None,
    errors: list[dict[str, Any]] | None = None,
    problem_base: str | None = None,
) -> tuple[bytes, str]:
    """Return the body and media type of an error response in the chosen format."""
    if fmt == "problem":
        body: dict[str, Any] = {
            "type": f"{problem_base}{code}" if problem_base else "about:blank",
            "title": phrase(status),
            "status": status,
            "detail": message,
            "instance": instance,
            "code": code,
            "request_id": request_id,
        }
        if details:
            body["details"] = details
        if errors is not None:
            body["errors"] = errors
        return _dumps(body), media_type(fmt)
    inner: dict[str, Any] = {
        "message": message,
        "type": type_name,
        "code": code,
        "details": dict(details or {}),
        "request_id": request_id,
    }
    if errors is not None:
        inner["details"]["errors"] = errors
    return _dumps({"error": inner}), media_type(fmt)


def _dumps(body: dict[str, Any]) -> bytes:
    from ..render.json import SAFE, jsonable

    try:
        return orjson.dumps(body, option=SAFE)  # a datetime in details: jsonable's text
    except Exception:
        return orjson.dumps(jsonable(body))
