"""``ExceptionLayer``: Starlette's ``ExceptionMiddleware``, without its per-request overhead.

Starlette's layer, on every request, makes a ``Request`` object, a closure and a coroutine
around the application, and one more coroutine for every message the application sends; all
of that is needed only when an exception is raised. This layer does the same work and answers
the same way, but makes the ``Request`` (or ``WebSocket``) only for an exception that has a
handler, and passes messages through a plain function that returns ``send``'s own awaitable.
Measured with ``bench/http_bench.py``'s application: about 12,000 instructions (2 us) less per
request.

``servicelog.fastapi.install`` puts it in the place of the application's ``ExceptionMiddleware``
(:func:`lighten`), with the same handler tables: the handlers registered with
``app.exception_handler`` (by class or status code) and Starlette's defaults for
``HTTPException`` and ``WebSocketException``. Routes still find those tables in the scope
(``starlette.exception_handlers``), as Starlette's routing expects.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.websockets import WebSocket

__all__ = ["ExceptionLayer", "is_async_handler", "lighten"]

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

    An exception without a handler propagates; one raised after the response started becomes
    a ``RuntimeError``, as in Starlette (the response cannot be answered twice).
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
            handler = _handler_for(exc, handlers)
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
            if is_async_handler(handler):
                response = await handler(conn, exc)
            else:
                response = await run_in_threadpool(handler, conn, exc)
            if response is not None:
                await response(scope, receive, sender)
            # A reused exception instance would pile up tracebacks across requests.
            exc.__traceback__ = None


def _handler_for(exc: Exception, handlers: Handlers) -> Any:
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


def is_async_handler(handler: Any) -> bool:
    """Whether *handler* returns an awaitable (Starlette runs the others in its threadpool)."""
    while isinstance(handler, functools.partial):
        handler = handler.func
    # A callable object with an ``async def __call__`` counts too (as in Starlette).
    call = type(handler).__call__ if not inspect.isroutine(handler) else None
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)


def lighten(stack: Any) -> bool:
    """Replace the first Starlette ``ExceptionMiddleware`` in *stack* by an
    :class:`ExceptionLayer` with its handler tables, in place.

    Follows the layers' ``app`` attributes from the outermost. Leaves the stack as it is (and
    returns ``False``) if no layer on the way is exactly Starlette's ``ExceptionMiddleware``
    with the tables this layer needs: a subclass may behave differently, and a layer without
    ``app`` hides what is below it.
    """
    parent, layer = None, stack
    for _ in range(MAX_DEPTH):
        if parent is not None and type(layer) is ExceptionMiddleware:
            tables = (
                getattr(layer, "_exception_handlers", None),
                getattr(layer, "_status_handlers", None),
            )
            below = getattr(layer, "app", None)
            if not all(isinstance(table, dict) for table in tables) or below is None:
                return False
            parent.app = ExceptionLayer(below, *tables)  # type: ignore[arg-type]
            return True
        below = getattr(layer, "app", None)
        if below is None:
            return False
        parent, layer = layer, below
    return False
