"""``ExceptionLayer``: Starlette's ``ExceptionMiddleware``, without its per-request overhead.

Starlette's layer, on every request, makes a ``Request`` object, a closure and a coroutine
around the application, and one more coroutine for every message the application sends; all
of that is needed only when an exception is raised. This layer does the same work and answers
the same way, but makes the ``Request`` (or ``WebSocket``) only for an exception that has a
handler, has no inner coroutine, and passes messages through a plain function that returns
``send``'s own awaitable.
Measured on ``bench/http_bench.py``'s application: 10,000 to 13,000 instructions (about 2 us)
less per request.

``servicelog.fastapi.install`` puts it in the place of the application's ``ExceptionMiddleware``
(:func:`lighten`), with the same handler tables: the handlers registered with
``app.exception_handler`` (by class or status code) and Starlette's defaults for
``HTTPException`` and ``WebSocketException``. Routes still find those tables in the scope
(``starlette.exception_handlers``), as Starlette's routing expects.
"""

from __future__ import annotations

import functools
import sys
from asyncio import iscoroutinefunction
from collections.abc import Awaitable, Callable, MutableMapping
from types import FunctionType
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.websockets import WebSocket

from ..context import forget_context

__all__ = ["ExceptionLayer", "call_handler", "handler_for", "is_async_handler", "lighten"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Handlers = tuple[dict[Any, Any], dict[int, Any]]

#: How deep :func:`lighten` looks for the ``ExceptionMiddleware`` (layers, from the outermost).
MAX_DEPTH = 64


class ExceptionLayer:
    """Answers exceptions raised below it with the handler registered for them.

    Args:
        app: the ASGI application below (the router, in a Starlette or FastAPI stack).
        exception_handlers: handlers by exception class (the most specific class in the
            exception's MRO wins).
        status_handlers: handlers by status code, for ``HTTPException`` (tried first).

    An exception without a handler propagates unchanged. One with a handler, raised after the
    response started, becomes a ``RuntimeError``, as in Starlette (a response cannot be
    answered twice).
    """

    def __init__(
        self,
        app: ASGIApp,
        exception_handlers: dict[Any, Any],
        status_handlers: dict[int, Any],
    ) -> None:
        self.app = app
        self.handlers: Handlers = (exception_handlers, status_handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        handlers = scope["starlette.exception_handlers"] = self.handlers
        started = False

        # A plain function returning send()'s awaitable: no coroutine of our own per message.
        def sender(message: Message) -> Awaitable[None]:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            return send(message)

        try:
            await self.app(scope, receive, sender)
        except Exception as exc:
            handler = handler_for(exc, handlers)
            if handler is None:
                raise
            if started:
                raise RuntimeError(
                    "Caught handled exception, but response already started."
                ) from exc
            conn: Request | WebSocket
            if kind == "http":
                conn = Request(scope, receive, send)
            else:
                conn = WebSocket(scope, receive, send)
            response = await call_handler(handler, conn, exc)
            if response is not None:
                await response(scope, receive, sender)
            # A reused exception instance would pile up tracebacks across requests (and keep
            # this request's fields).
            exc.__traceback__ = None
            forget_context(exc)


def handler_for(exc: Exception, handlers: Handlers) -> Any:
    """The handler for *exc*: by status code for an ``HTTPException``, else by class."""
    exception_handlers, status_handlers = handlers
    if isinstance(exc, HTTPException):
        handler = status_handlers.get(exc.status_code)
        if handler is not None:
            return handler
    for cls in type(exc).__mro__:
        if cls in exception_handlers:
            return exception_handlers[cls]
    return None


def _is_async_callable(obj: Any) -> bool:
    # A copy of Starlette's test (``starlette._utils``, private), for a version without it.
    while isinstance(obj, functools.partial):
        obj = obj.func
    return iscoroutinefunction(obj) or (callable(obj) and iscoroutinefunction(obj.__call__))


def _starlette_test() -> Callable[[Any], Any]:
    """The test Starlette itself applies to handlers (private: a copy if it moves)."""
    try:
        from starlette._utils import is_async_callable
    except ImportError:  # pragma: no cover - every supported Starlette has it
        return _is_async_callable
    return is_async_callable


_starlette_is_async = _starlette_test()


async def call_handler(handler: Any, conn: Any, exc: Exception) -> Any:
    """What *handler* answers for *exc*: awaited, or run in Starlette's threadpool, as
    Starlette calls it (:func:`is_async_handler`)."""
    if is_async_handler(handler):
        return await handler(conn, exc)
    return await run_in_threadpool(handler, conn, exc)


def is_async_handler(handler: Any) -> bool:
    """Whether Starlette would await *handler* (else it runs it in its threadpool): Starlette's
    own test, so that a handler is called the same way wherever the exception was raised."""
    return bool(_starlette_is_async(handler))


def lighten(stack: Any) -> bool:
    """Replace the innermost Starlette ``ExceptionMiddleware`` in *stack* (the application's
    own; one a user added stays) by an :class:`ExceptionLayer` with its handler tables, in
    place.

    Follows the layers' ``app`` attributes from the outermost. Leaves the stack as it is (and
    returns ``False``) when it cannot be sure to answer the same way: no layer on the way is
    exactly Starlette's ``ExceptionMiddleware`` with the tables this layer needs (a subclass
    may behave differently; a layer without ``app`` hides what is below it); its ``__call__``
    is no longer Starlette's own (an instrumentation patched it: sentry-sdk's Starlette
    integration does, to add the user to events and a span); or the layer above does not let
    its ``app`` be set.
    """
    try:
        found = None
        parent, layer = None, stack
        for _ in range(MAX_DEPTH):
            if parent is not None and type(layer) is ExceptionMiddleware:
                found = (parent, layer)
            below = getattr(layer, "app", None)
            if below is None:
                break
            parent, layer = layer, below
        if found is None or not _unpatched():
            return False
        parent, layer = found
        tables = (
            getattr(layer, "_exception_handlers", None),
            getattr(layer, "_status_handlers", None),
        )
        below = getattr(layer, "app", None)
        if not all(isinstance(table, dict) for table in tables) or below is None:
            return False
        parent.app = ExceptionLayer(below, *tables)  # type: ignore[arg-type]
        return parent.app is not layer
    except Exception:  # a read-only or computed ``app``: Starlette's layer stays
        return False


def _unpatched() -> bool:
    """Whether ``ExceptionMiddleware.__call__`` is still the function Starlette defines: not
    replaced, not wrapped (``functools.wraps`` or a ``wrapt`` proxy copy its names, not its
    code)."""
    call = ExceptionMiddleware.__dict__.get("__call__")
    module = sys.modules.get(ExceptionMiddleware.__module__)
    return (
        type(call) is FunctionType
        and not hasattr(call, "__wrapped__")
        and module is not None
        and call.__code__.co_filename == getattr(module, "__file__", None)
    )
