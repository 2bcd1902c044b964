"""FastAPI in one call: ``servicelog.fastapi.install(app)``.

It adds, idempotently:

* :class:`~servicelog.asgi.RequestContextMiddleware` as the outermost layer, in place of
  Starlette's ``ServerErrorMiddleware`` (whose handler it calls for unhandled errors) — a request
  ID on every request, log line and response (unhandled 500s included), trace context, the
  access log;
* the exception handlers (:class:`~servicelog.asgi.handlers.ErrorHandlers`): one JSON shape for
  the error hierarchy, ``HTTPException``, validation errors and anything else;
* a lifespan composed with the app's own: servicelog's asyncio exception handler and the uvicorn
  logger takeover at startup (at its end the middleware drains the sinks);
* OpenAPI: the error schema as a component, and 422/500 listed on every route (declare more per
  route with :func:`error_responses`).

``debug=True`` with the production profile is refused: Starlette then answers unhandled errors
with an HTML traceback, which leaks code and data.

Requires ``pip install 'servicelog[fastapi]'``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

try:
    from fastapi import FastAPI
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "servicelog.fastapi needs FastAPI: pip install 'servicelog[fastapi]'"
    ) from exc

from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request

from ._config import settings
from .asgi.access_log import AccessLog
from .asgi.exception_layer import call_handler, handler_for, lighten
from .asgi.handlers import ErrorHandlers
from .asgi.request_context import (
    ErrorApp,
    RequestContextMiddleware,
    check_options,
    replace_uvicorn_access_log,
)
from .asgi.responses import ErrorFormat, media_type, phrase
from .exceptions import ConfigError

__all__ = ["error_responses", "install"]

_INSTALLED = "_servicelog_installed"
#: install() returns the app it was given, typed as given (a FastAPI subclass stays one).
AppT = TypeVar("AppT", bound=FastAPI)


def install(
    app: AppT,
    *,
    error_format: ErrorFormat = "envelope",
    request_id_header: str = "X-Request-ID",
    access_log: AccessLog | bool | None = True,
    trust_request_id: bool = True,
    expose_server_errors: bool | None = None,
    problem_base: str | None = None,
    openapi: bool = True,
    gc_freeze: bool = True,
) -> AppT:
    """Give *app* request IDs, trace context, an access log, uniform error responses and their
    OpenAPI documentation. Safe to call twice (the second call does nothing).

    Args:
        app: the FastAPI application.
        error_format: ``"envelope"`` (``{"error": {...}}``, default) or ``"problem"`` (RFC 9457).
        request_id_header: read and echoed request ID header.
        access_log: :class:`~servicelog.asgi.AccessLog` options, or ``False`` (or ``None``)
            to write no access record.
        trust_request_id: accept a valid incoming request ID (else always generate).
        expose_server_errors: show 5xx messages to clients; default: only outside production.
        problem_base: URI prefix of problem ``type`` values.
        openapi: document the error responses.
        gc_freeze: at startup, collect once and ``gc.freeze()`` the import-time heap, so full
            collections no longer walk it: the research behind this found them (up to 34 ms
            each) behind most of the p99 latency of a FastAPI service.

    Returns:
        The same app.

    Raises:
        ConfigError: for ``debug=True`` under the production profile, a bad option, or
            ``openapi=True`` for an application without an OpenAPI schema (a Starlette one):
            raised before the application is changed.
    """
    if getattr(app.state, _INSTALLED, False):
        return app
    _check_options(
        request_id_header=request_id_header,
        access_log=access_log,
        trust_request_id=trust_request_id,
        expose_server_errors=expose_server_errors,
        problem_base=problem_base,
        openapi=openapi,
        gc_freeze=gc_freeze,
    )
    if openapi and not callable(getattr(app, "openapi", None)):  # before anything is changed
        raise ConfigError(
            "openapi", openapi, "False for an application without an OpenAPI schema (Starlette's)"
        )
    production = _production()
    if app.debug and production:
        raise ConfigError("FastAPI(debug=...)", True, _DEBUG_HINT)
    if expose_server_errors is None:
        expose_server_errors = settings() is not None and not production
    handlers = ErrorHandlers(
        error_format=error_format,
        expose_server_errors=expose_server_errors,
        problem_base=problem_base,
    )
    handlers.install(app)

    build = app.build_middleware_stack

    def build_with_context() -> Any:
        # Outermost, so that unhandled 500s pass through our send wrapper too. Starlette's
        # ServerErrorMiddleware would only wrap send again and call the Exception handler: the
        # request context middleware does both, so it takes that layer's place (with debug=True
        # it stays, for its HTML traceback page, except under the production profile).
        stack, error_app = _without_server_errors(build(), _refuse_debug(app), app)
        outer = RequestContextMiddleware(
            stack,
            request_id_header=request_id_header,
            access_log=access_log,
            trust_request_id=trust_request_id,
            error_app=error_app,
            too_large_app=_http_exception_app(app),
            error_format=error_format,
        )
        # Starlette's ExceptionMiddleware, below, answers the same way with less work per
        # request (asgi/exception_layer.py).
        lighten(outer)
        return outer

    app.build_middleware_stack = build_with_context  # type: ignore[method-assign]
    app.middleware_stack = None  # rebuilt on the next call
    enabled = access_log is True or (isinstance(access_log, AccessLog) and access_log.enabled)
    _compose_lifespan(app, gc_freeze, replace_access_log=enabled)
    if openapi:
        _document_errors(app, error_format)
    setattr(app.state, _INSTALLED, True)
    return app


def _check_options(
    *,
    request_id_header: object,
    access_log: object,
    trust_request_id: object,
    expose_server_errors: object,
    problem_base: object,
    openapi: object,
    gc_freeze: object,
) -> None:
    """Refuse bad options at install time: the middleware stack is only built on the first
    request, where a bad value would fail every request (or, for a truthy
    ``expose_server_errors='no'``, show server errors to clients)."""
    check_options(request_id_header, access_log, trust_request_id)
    if expose_server_errors is not None and not isinstance(expose_server_errors, bool):
        raise ConfigError(
            "expose_server_errors",
            expose_server_errors,
            "True, False or None (auto: only outside production)",
        )
    if problem_base is not None and not isinstance(problem_base, str):
        raise ConfigError("problem_base", problem_base, "a URI prefix string or None")
    for option, value in (("openapi", openapi), ("gc_freeze", gc_freeze)):
        if not isinstance(value, bool):
            raise ConfigError(option, value, "True or False")


_DEBUG_HINT = (
    "False with the production profile: debug=True answers errors with an HTML traceback "
    "that leaks code and data"
)


def _production() -> bool:
    """Whether servicelog is configured with the production profile."""
    current = settings()
    return current is not None and current.profile == "production"


def _refuse_debug(app: FastAPI) -> bool:
    """Whether ``app.debug``, set after :func:`install`, must be overridden (the production
    profile): the HTML traceback page is not served, and that is logged, as an error."""
    if not (app.debug and _production()):
        return False
    from .logger import get_logger

    get_logger("servicelog.fastapi").error(
        "FastAPI debug=True ignored: the production profile never serves the HTML traceback "
        "page (set debug=False)"
    )
    return True


def _without_server_errors(
    stack: Any, refuse_debug: bool = False, app: Any = None
) -> tuple[Any, ErrorApp | None]:
    """*stack* without its outer ``ServerErrorMiddleware``, and that middleware's handler as an
    ``error_app`` (``None``: the request context middleware answers its minimal 500). With
    ``debug=True`` the middleware stays, for its HTML traceback page, unless *refuse_debug*.

    An exception raised outside the application's exception handling (in a middleware: an
    ``AuthenticationException`` of an auth middleware) that *app* has a handler for, by class
    or by status, is answered by that handler, as inside (Starlette answers it 500); if that
    handler fails, the catch-all one answers its failure, as inside."""
    if type(stack) is not ServerErrorMiddleware or (stack.debug and not refuse_debug):
        return stack, None
    handler: Any = stack.handler  # Starlette types it for requests and websockets alike
    if handler is None:
        return stack.app, None

    async def error_app(scope: Any, receive: Any, send: Any, exc: Exception) -> bool | Exception:
        own = None if app is None else _own_handler(exc, app.exception_handlers)
        answered: bool | Exception = False
        if own is not None:
            try:
                response = await call_handler(own, Request(scope, receive), exc)
                if response is None:
                    raise TypeError(f"The exception handler {own!r} returned no response")
                answered = True
            except Exception as failure:  # answered as its failure inside would be: unhandled
                exc = answered = failure
        if answered is not True:
            response = await call_handler(handler, Request(scope), exc)
        await response(scope, receive, send)
        return answered

    return stack.app, error_app


def _own_handler(exc: Exception, handlers: dict[Any, Any]) -> Any:
    """The handler *handlers* (an application's) has for *exc* by its status or its class, not
    the catch-all one (``Exception``, 500), or ``None``."""
    return handler_for(exc, _tables(handlers, catch_all=False))


def _tables(handlers: dict[Any, Any], *, catch_all: bool) -> tuple[dict[Any, Any], dict[int, Any]]:
    """An application's ``exception_handlers`` as the handler tables Starlette's layer keeps
    (by class, by status); without *catch_all*, without the ``Exception`` and 500 ones."""
    status_handlers: dict[int, Any] = {}
    exception_handlers: dict[Any, Any] = {}
    for key, value in handlers.items():
        if isinstance(key, int):
            if catch_all or key != 500:
                status_handlers[key] = value
        elif catch_all or key is not Exception:
            exception_handlers[key] = value
    return exception_handlers, status_handlers


def _http_exception_app(app: FastAPI) -> ErrorApp:
    """An ``ErrorApp`` that answers an ``HTTPException`` as the application's handlers do (by
    status, then by class: servicelog's unless the user registered their own): for the 413 of
    FastAPI's ``max_body_size``, which Starlette sends as plain text past every handler."""

    async def answer(scope: Any, receive: Any, send: Any, exc: Exception) -> None:
        handler = handler_for(exc, _tables(app.exception_handlers, catch_all=True))
        if handler is None:
            raise exc
        response = await call_handler(handler, Request(scope, receive), exc)
        await response(scope, receive, send)

    return answer


def _compose_lifespan(app: FastAPI, gc_freeze: bool, *, replace_access_log: bool) -> None:
    user_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(asgi_app: Any) -> AsyncIterator[Any]:
        from .frontends.hooks import install_asyncio_handler

        current = settings()
        if current is not None and current.capture.excepthooks:
            install_asyncio_handler()
        if replace_access_log:  # access_log=False leaves uvicorn's own as it is
            replace_uvicorn_access_log()
        if gc_freeze:
            import gc

            gc.collect()
            gc.freeze()
        # (At its end the middleware drains the sinks: RequestContextMiddleware._lifespan_send.)
        async with user_lifespan(asgi_app) as state:
            yield state

    app.router.lifespan_context = lifespan


# --- OpenAPI ------------------------------------------------------------------------------------
_ENVELOPE_SCHEMA: dict[str, Any] = {
    "title": "ErrorResponse",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code", "details", "request_id"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "code": {"type": "string"},
                "details": {"type": "object", "additionalProperties": True},
                "request_id": {"type": ["string", "null"]},
            },
        }
    },
}
_PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code", "request_id"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": ["string", "null"]},
        "code": {"type": "string"},
        "request_id": {"type": ["string", "null"]},
        "details": {"type": "object", "additionalProperties": True},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {}},
                    "type": {"type": "string"},
                    "msg": {"type": "string"},
                },
            },
        },
    },
}

_SCHEMAS = (_ENVELOPE_SCHEMA, _PROBLEM_SCHEMA)


def _schema_name(error_format: ErrorFormat) -> str:
    return "Problem" if error_format == "problem" else "ErrorResponse"


def _schema_body(error_format: ErrorFormat) -> dict[str, Any]:
    return _PROBLEM_SCHEMA if error_format == "problem" else _ENVELOPE_SCHEMA


def error_responses(
    *statuses: int, error_format: ErrorFormat = "envelope"
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route decorator, listing its error statuses in the error schema.

    >>> @app.get("/orders/{id}", responses=error_responses(404, 409))

    Each entry holds the error schema itself, so that the spec is complete on its own (with
    ``install(openapi=False)``, or no ``install()`` at all); :func:`install` (``openapi=True``,
    the default) replaces it with a reference to its schema component, in the installed format.
    """
    body = _schema_body(error_format)
    return {
        status: {
            "description": phrase(status),
            "content": {media_type(error_format): {"schema": copy.deepcopy(body)}},
            _MARK: True,  # (taken out of the schema install() documents)
        }
        for status in statuses
    }


#: Marks an :func:`error_responses` entry, so that it is told from a route's own model that
#: has the error schema's name.
_MARK = "x-servicelog-error"


def _document_errors(app: FastAPI, error_format: ErrorFormat) -> None:
    original: Callable[[], dict[str, Any]] = app.openapi
    schema_body = _schema_body(error_format)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        name = _schema_name(error_format)
        # A model of the application's own with that name (``ErrorResponse``) stays, and the
        # routes that declare it keep it: the error schema takes another name.
        clash = components.get(name, schema_body) != schema_body
        if clash:
            name = f"Servicelog{name}"
        components[name] = schema_body
        media = media_type(error_format)
        for operations in schema.get("paths", {}).values():
            for operation in _operations(operations):
                responses = operation.setdefault("responses", {})
                for status in (422, 500):
                    current = responses.get(str(status))
                    if current is None or _unmodelled(current) or _fastapi_422(current):
                        responses[str(status)] = {"description": phrase(status)}
                if "requestBody" in operation:  # FastAPI's 400 for a body it cannot parse
                    responses.setdefault("400", {"description": phrase(400)})
                for status, response in list(responses.items()):
                    ours = response.pop(_MARK, False) is True or (not clash and _ours(response))
                    if status[:1] in ("4", "5") and (_unmodelled(response) or ours):
                        response["content"] = {
                            media: {"schema": {"$ref": f"#/components/schemas/{name}"}}
                        }
        for unused in ("HTTPValidationError", "ValidationError"):  # unless a route uses them
            if f'"#/components/schemas/{unused}"' not in json.dumps(schema):
                components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _unmodelled(response: dict[str, Any]) -> bool:
    """Whether a route's error response has no schema of the route's own (``responses={404:
    {"description": ...}}``): the error shape, which the handlers send, then describes it. A
    model the route declared (``{"model": OutOfStock}``) is kept."""
    content = response.get("content")
    if not isinstance(content, dict):
        return content is None
    return not any(isinstance(m, dict) and m.get("schema") for m in content.values())


def _ours(response: dict[str, Any]) -> bool:
    """An :func:`error_responses` entry, made for either format: described in the app's."""
    refs = {f"#/components/schemas/{_schema_name(f)}" for f in ("envelope", "problem")}
    return any(
        isinstance(m, dict)
        and isinstance(m.get("schema"), dict)
        and (m["schema"].get("$ref") in refs or m["schema"] in _SCHEMAS)
        for m in response.get("content", {}).values()
    )


def _fastapi_422(response: dict[str, Any]) -> bool:
    """FastAPI's own 422 (``HTTPValidationError``), which the handlers never send."""
    ref = "#/components/schemas/HTTPValidationError"
    return any(
        isinstance(m, dict) and m.get("schema") == {"$ref": ref}
        for m in response.get("content", {}).values()
    )


def _operations(path_item: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for method in ("get", "put", "post", "delete", "options", "head", "patch", "trace"):
        operation = path_item.get(method)
        if isinstance(operation, dict):
            yield operation
