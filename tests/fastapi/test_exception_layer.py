"""The exception layer answers exactly as Starlette's ``ExceptionMiddleware`` it replaces.

Each scenario runs on two copies of one application: as ``install()`` builds it (with the
:class:`~servicelog.asgi.exception_layer.ExceptionLayer`) and with Starlette's own layer left in
place. Status, headers and body must be the same. The scenarios raise
where only that layer catches: outside any route's own handling (the router's 404 and 405, a
mounted plain ASGI app, a WebSocket).
"""

from __future__ import annotations

import asyncio
import asyncio.coroutines
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.exceptions import HTTPException, WebSocketException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.websockets import WebSocket

import servicelog
import servicelog.fastapi
from fastapi import FastAPI
from servicelog.asgi.exception_layer import ExceptionLayer, lighten
from servicelog.sinks import MemorySink

from ..conftest import NO_CAPTURE


class Teapot(Exception):
    """An application exception with a handler of the application's."""


class Sub(Teapot):
    """Handled by its base class's handler."""


class Unhandled(Exception):
    """No handler: it reaches the request context middleware, a generic 500."""


@pytest.fixture
def sink() -> MemorySink:
    memory = MemorySink()
    servicelog.configure(service="shop", stream="none", sinks=[memory], capture=NO_CAPTURE)
    return memory


def raw_app(exc: Exception | None, *, after_start: bool = False) -> Any:
    """A plain ASGI app (mounted, so outside FastAPI's route handling) that raises *exc*."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if after_start:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
        if exc is not None:
            raise exc

    return app


def build(*, light: bool, sync_handler: bool = False) -> Any:
    """The test application, installed, with or without the exception layer."""
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    if sync_handler:

        @app.exception_handler(Teapot)
        def teapot_sync(request: Request, exc: Exception) -> PlainTextResponse:
            return PlainTextResponse(f"teapot {request.url.path}", status_code=418)

    else:

        @app.exception_handler(Teapot)
        async def teapot(request: Request, exc: Exception) -> PlainTextResponse:
            return PlainTextResponse(f"teapot {request.url.path}", status_code=418)

    @app.exception_handler(409)
    async def conflict(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"conflict": True}, status_code=409, headers={"x-why": "status"})

    app.mount("/teapot", raw_app(Teapot()))
    app.mount("/sub", raw_app(Sub()))
    app.mount("/http409", raw_app(HTTPException(409, "taken")))
    app.mount("/http418", raw_app(HTTPException(418, "short and stout", {"x-tea": "yes"})))
    app.mount("/late", raw_app(Teapot(), after_start=True))
    app.mount("/unhandled", raw_app(Unhandled("no handler")))

    async def raw_websocket(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        raise WebSocketException(code=int(scope["path"].rsplit("/", 1)[1]), reason="go away")

    app.mount("/rawws", raw_websocket)

    @app.websocket("/ws/{code}")
    async def ws(websocket: WebSocket, code: int) -> None:
        await websocket.accept()
        raise WebSocketException(code=code, reason="go away")

    with pytest.MonkeyPatch.context() as patch:
        if not light:
            patch.setattr(servicelog.fastapi, "lighten", lambda stack: False)
        servicelog.fastapi.install(app)
        app.middleware_stack = app.build_middleware_stack()
    return app


def layers(app: Any) -> Iterator[Any]:
    layer = app.middleware_stack
    while layer is not None:
        yield layer
        layer = getattr(layer, "app", None)


def exchange(app: Any, path: str, method: str = "GET", kind: str = "http") -> list[dict[str, Any]]:
    """What *app* sends for one request (or WebSocket connection) to *path*, message by
    message, with one request ID (so that two answers can be compared whole)."""
    scope: dict[str, Any] = {"type": kind, "path": path, "raw_path": path.encode(), "root_path": ""}
    scope |= {"headers": [(b"host", b"shop"), (b"x-request-id", b"req-1")], "query_string": b""}
    scope |= {"scheme": "http", "server": ("shop", 80), "client": ("10.0.0.1", 5000)}
    if kind == "http":
        scope |= {"method": method, "http_version": "1.1"}
        incoming = [{"type": "http.request", "body": b"", "more_body": False}]
    else:
        scope["subprotocols"] = []
        incoming = [{"type": "websocket.connect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(3600)  # the client waits (the app never reads this far)
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))

    asyncio.run(app(scope, receive, send))
    return sent


SCENARIOS = [
    ("GET", "/items/7", 200),  # no exception
    ("GET", "/nowhere", 404),  # the router's 404 (HTTPException, the default handler)
    ("POST", "/items/7", 405),  # the router's 405 (with Allow)
    ("GET", "/teapot/", 418),  # a handler by class
    ("GET", "/sub/", 418),  # the base class's handler (MRO)
    ("GET", "/http409/", 409),  # a handler by status code, before the class
    ("GET", "/http418/", 418),  # HTTPException's own handler, its headers kept
    ("GET", "/late/", 200),  # after the response started: a RuntimeError, the body cut short
    ("GET", "/unhandled/", 500),  # no handler: it propagates, to the generic 500
]


@pytest.mark.parametrize(("method", "path", "status"), SCENARIOS)
@pytest.mark.parametrize("sync_handler", [False, True])
def test_the_layer_answers_as_starlettes_does(
    sink: MemorySink, method: str, path: str, status: int, sync_handler: bool
) -> None:
    light = build(light=True, sync_handler=sync_handler)
    plain = build(light=False, sync_handler=sync_handler)
    assert any(type(layer) is ExceptionLayer for layer in layers(light))
    assert any(type(layer) is ExceptionMiddleware for layer in layers(plain))
    answered = exchange(light, path, method)
    assert answered[0]["status"] == status
    assert answered == exchange(plain, path, method)


def test_errors_are_logged_the_same_way(sink: MemorySink) -> None:
    def logged(app: Any) -> list[tuple[str, str]]:
        sink.records.clear()
        for method, path, _ in SCENARIOS:
            exchange(app, path, method)
        servicelog.flush()
        return [(r["log.level"], r["message"]) for r in sink.records]

    light = logged(build(light=True))
    assert ("error", "Unhandled exception") in light  # /late's RuntimeError, /unhandled
    assert light == logged(build(light=False))


@pytest.mark.parametrize("code", [1008, 4001])
@pytest.mark.parametrize("where", ["/ws", "/rawws"])  # a route; a mounted app (only the layer)
def test_a_websocket_exception_closes_with_its_code(
    sink: MemorySink, code: int, where: str
) -> None:
    path = f"{where}/{code}"
    light = exchange(build(light=True), path, kind="websocket")
    assert light[-1] == {"type": "websocket.close", "code": code, "reason": "go away"}
    assert light == exchange(build(light=False), path, kind="websocket")


def test_a_reused_exception_does_not_pile_up_tracebacks(sink: MemorySink) -> None:
    app = FastAPI()
    reused = Teapot()

    @app.exception_handler(Teapot)
    async def teapot(request: Request, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse("teapot", status_code=418)

    app.mount("/teapot", raw_app(reused))
    servicelog.fastapi.install(app)
    for _ in range(3):
        assert exchange(app, "/teapot/")[0]["status"] == 418
    assert reused.__traceback__ is None


def test_the_handlers_registered_are_the_ones_answering(sink: MemorySink) -> None:
    app = FastAPI()

    @app.exception_handler(Teapot)
    async def teapot(request: Request, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse("teapot", status_code=418)

    @app.exception_handler(409)
    async def conflict(request: Request, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse("conflict", status_code=409)

    servicelog.fastapi.install(app)
    app.middleware_stack = app.build_middleware_stack()
    (layer,) = [layer for layer in layers(app) if type(layer) is ExceptionLayer]
    exception_handlers, status_handlers = layer.handlers
    assert exception_handlers[Teapot] is teapot
    assert status_handlers == {409: conflict}
    assert HTTPException in exception_handlers and WebSocketException in exception_handlers


class Opaque:
    """A layer that hides what is below it (no ``app`` attribute)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._inner(scope, receive, send)


class Layer:
    def __init__(self, app: Any) -> None:
        self.app = app


@pytest.mark.parametrize(
    ("make", "found"),
    [
        (lambda em: Layer(Layer(em)), True),
        (lambda em: Layer(Opaque(em)), False),  # cannot see below an opaque layer
        (lambda em: Layer(type("Sub", (ExceptionMiddleware,), {})(em.app)), False),  # a subclass
        (lambda em: em, False),  # outermost: no parent to put the layer in
    ],
)
def test_lighten_replaces_only_what_it_can_see(
    make: Callable[[ExceptionMiddleware], Any], found: bool
) -> None:
    router = raw_app(None)
    stack = make(ExceptionMiddleware(router))
    assert lighten(stack) is found
    kinds = [type(layer) for layer in layers_of(stack)]
    assert (ExceptionLayer in kinds) is found
    if found:
        assert ExceptionMiddleware not in kinds
        assert layers_of(stack)[-1] is router


def layers_of(stack: Any) -> list[Any]:
    out = []
    while stack is not None:
        out.append(stack)
        stack = getattr(stack, "app", None)
    return out


@pytest.mark.parametrize("wraps", [False, True], ids=["replaced", "functools.wraps"])
def test_a_patched_exception_middleware_is_left_in_place(
    sink: MemorySink, monkeypatch: pytest.MonkeyPatch, wraps: bool
) -> None:
    # sentry-sdk's Starlette integration patches ExceptionMiddleware.__call__ (to add the user
    # to events, and a span): replacing the layer would silently drop that. A wrapper that
    # copies the original's names (functools.wraps, wrapt) is found out too.
    original = ExceptionMiddleware.__call__
    seen: list[str] = []

    async def instrumented(self: Any, scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await original(self, scope, receive, send)

    if wraps:
        instrumented = functools.wraps(original)(instrumented)
    monkeypatch.setattr(ExceptionMiddleware, "__call__", instrumented)
    app = build(light=True)
    assert not any(type(layer) is ExceptionLayer for layer in layers(app))
    assert exchange(app, "/teapot/")[0]["status"] == 418
    assert seen == ["/teapot/"]


def marked_coroutine_function(handler: Callable[..., Any]) -> Callable[..., Any]:
    """A plain function returning *handler*'s coroutine, marked as a coroutine function the
    way asgiref's ``markcoroutinefunction`` does before Python 3.12."""

    def wrapper(request: Request, exc: Exception) -> Any:
        return handler(request, exc)

    wrapper._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]
    return wrapper


class TeapotResponse(PlainTextResponse):
    """A response class used as the handler itself: Starlette takes it for an async handler
    (its ``__call__`` is), awaits the response, and fails."""

    def __init__(self, request: Request, exc: Exception) -> None:
        super().__init__("teapot", status_code=418)


async def teapot_answer(request: Request, exc: Exception) -> PlainTextResponse:
    return PlainTextResponse("teapot", status_code=418)


@pytest.mark.parametrize(
    ("handler", "status"),
    [(teapot_answer, 418), (marked_coroutine_function(teapot_answer), 418), (TeapotResponse, 500)],
    ids=["async def", "marked", "response class"],
)
def test_a_handler_is_called_the_way_starlette_calls_it(
    sink: MemorySink, handler: Any, status: int
) -> None:
    from starlette._utils import is_async_callable

    from servicelog.asgi.exception_layer import is_async_handler

    assert is_async_handler(handler) == bool(is_async_callable(handler))
    answers = []
    for light in (True, False):
        app = FastAPI()
        app.add_exception_handler(Teapot, handler)
        app.mount("/teapot", raw_app(Teapot()))
        with pytest.MonkeyPatch.context() as patch:
            if not light:
                patch.setattr(servicelog.fastapi, "lighten", lambda stack: False)
            servicelog.fastapi.install(app)
            app.middleware_stack = app.build_middleware_stack()
        answers.append(exchange(app, "/teapot/"))
    assert answers[0][0]["status"] == status
    assert answers[0] == answers[1]


@dataclass(frozen=True)
class FrozenMiddleware:
    """A middleware of the user's whose ``app`` cannot be set."""

    app: Any

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def test_a_layer_above_that_cannot_be_changed_keeps_starlettes(sink: MemorySink) -> None:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app.add_middleware(FrozenMiddleware)
    servicelog.fastapi.install(app)
    app.middleware_stack = app.build_middleware_stack()  # no error
    assert any(type(layer) is ExceptionMiddleware for layer in layers(app))
    assert exchange(app, "/items/7")[0]["status"] == 200


def test_the_applications_own_exception_middleware_is_the_one_replaced(sink: MemorySink) -> None:
    app = FastAPI()
    app.add_middleware(ExceptionMiddleware, handlers={Teapot: teapot_answer})
    servicelog.fastapi.install(app)
    app.middleware_stack = app.build_middleware_stack()
    kinds = [type(layer) for layer in layers(app)]
    # The user's stays where it was, above; the application's (above the router) is replaced.
    assert kinds.index(ExceptionMiddleware) < kinds.index(ExceptionLayer)
    assert kinds.count(ExceptionMiddleware) == 1
