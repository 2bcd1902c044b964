"""FastAPI's ``max_body_size``: Starlette sends its 413 as plain text from inside the
application, past every exception handler; ``install()`` answers it in the error shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any

import httpx
import pytest
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

import servicelog.fastapi
from fastapi import FastAPI, Request
from servicelog import _errors
from servicelog.asgi import RequestContextMiddleware
from servicelog.errors import NotFoundException
from servicelog.sinks import MemorySink

pytest.importorskip("starlette.middleware.body_limit")


class Item(BaseModel):
    name: str


def limited_app(app_limit: int | None = 16, **install: Any) -> FastAPI:
    app = FastAPI(max_body_size=app_limit)

    @app.post("/items")
    async def create(item: Item) -> Item:
        return item

    @app.post("/raw", max_body_size=8)
    async def raw(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.get("/ping")
    async def ping() -> dict[str, bool]:  # answers without reading the body
        return {"ok": True}

    @app.post("/own-413")
    async def own() -> PlainTextResponse:  # an endpoint's own 413: not the body limit's
        return PlainTextResponse("Content Too Large", status_code=413)

    return servicelog.fastapi.install(app, **install)


async def send(app: FastAPI, method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        return await client.request(method, path, **kwargs)


async def chunks(size: int) -> AsyncIterator[bytes]:
    for _ in range(size // 4):
        yield b"abcd"


def access(sink: MemorySink) -> list[dict[str, Any]]:
    return [r for r in sink.records if r["log.logger"] == "servicelog.access"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/items", {"json": {"name": "x" * 100}}),  # the app's limit, Content-Length
        ("POST", "/raw", {"content": b"123456789"}),  # a route's own limit
        ("POST", "/raw", {"content": chunks(64)}),  # no Content-Length: counted as it comes
        ("GET", "/ping", {"content": b"x" * 100}),  # never read: the start is replaced
    ],
)
async def test_a_body_over_the_limit_is_answered_in_the_envelope_with_the_request_id(
    sink: MemorySink, method: str, path: str, body: dict[str, Any]
) -> None:
    response = await send(limited_app(), method, path, **body)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    request_id = response.headers["x-request-id"]
    assert error == {
        "message": "Content Too Large",
        "type": "HTTPException",
        "code": "payload_too_large",
        "details": {},
        "request_id": request_id,
    }
    (record,) = access(sink)
    assert record["http.response.status_code"] == 413
    assert record["http.response.body.bytes"] == len(response.content)
    assert record["request_id"] == request_id
    warnings = [r for r in sink.records if r["message"] == "HTTP 413: Content Too Large"]
    assert len(warnings) == 1 and warnings[0]["log.level"] == "warning"


async def test_the_problem_format_answers_the_limit_as_a_problem(sink: MemorySink) -> None:
    response = await send(limited_app(error_format="problem"), "POST", "/raw", content=b"x" * 9)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["title"]) == (413, HTTPStatus(413).phrase)
    assert problem["request_id"] == response.headers["x-request-id"]


async def test_bodies_within_the_limit_and_other_413s_are_left_alone(sink: MemorySink) -> None:
    app = limited_app(app_limit=None)  # only /raw is limited
    ok = await send(app, "POST", "/raw", content=b"12345678")
    assert (ok.status_code, ok.json()) == (200, {"bytes": 8})
    own = await send(app, "POST", "/own-413")  # no body limit acting: the endpoint's answer
    assert (own.status_code, own.text) == (413, "Content Too Large")
    assert own.headers["content-type"].startswith("text/plain")
    assert own.headers["x-request-id"]


async def test_the_users_own_http_exception_handler_answers_the_limit(sink: MemorySink) -> None:
    app = limited_app()

    @app.exception_handler(HTTPException)
    async def mine(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"mine": exc.status_code}, status_code=exc.status_code)

    response = await send(app, "POST", "/raw", content=b"x" * 9)
    assert (response.status_code, response.json()) == (413, {"mine": 413})
    assert response.headers["x-request-id"]


def raw_413_app() -> Any:
    """An application that answers as Starlette's body limit does, setting its scope key."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["starlette.max_body_size"] = 1  # as Starlette's limit sets it while it acts
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": b"Content Too Large"})

    return app


async def run(app: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def collect(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""}
    await app(scope, receive, collect)
    return messages


async def test_a_failing_answer_leaves_starlettes_413_and_is_counted(sink: MemorySink) -> None:
    async def broken(scope: Any, receive: Any, send: Any, exc: Exception) -> None:
        raise RuntimeError("handler bug")

    before = _errors.snapshot()["errors"].get("body limit answer", 0)
    _errors.set_strict(False)  # count, as in production (tests otherwise raise)
    try:
        messages = await run(RequestContextMiddleware(raw_413_app(), too_large_app=broken))
    finally:
        _errors.set_strict(None)
    assert [(m["type"], m.get("status"), m.get("body")) for m in messages] == [
        ("http.response.start", 413, None),
        ("http.response.body", None, b"Content Too Large"),
    ]
    assert (b"x-request-id", messages[0]["headers"][-1][1]) == messages[0]["headers"][-1]
    assert _errors.snapshot()["errors"]["body limit answer"] == before + 1
    (record,) = access(sink)
    assert (record["http.response.status_code"], record["http.response.body.bytes"]) == (413, 17)


async def test_an_answer_that_fails_after_starting_its_response_is_the_apps_failure(
    sink: MemorySink,
) -> None:
    async def half_answer(scope: Any, receive: Any, send: Any, exc: Exception) -> None:
        await send({"type": "http.response.start", "status": 413, "headers": []})
        raise RuntimeError("cut off")

    messages = await run(RequestContextMiddleware(raw_413_app(), too_large_app=half_answer))
    assert [m["type"] for m in messages] == ["http.response.start"]  # no second start
    (record,) = access(sink)
    assert record["event.outcome"] == "failure"
    assert record["log.level"] == "error"


def app_sending(*messages: dict[str, Any], then: Exception | None = None) -> Any:
    """An application that sends *messages* while Starlette's body limit acts, then raises
    *then* (if given)."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["starlette.max_body_size"] = 1
        for message in messages:
            await send(message)
        if then is not None:
            raise then

    return app


async def answer_in_json(scope: Any, receive: Any, send: Any, exc: Exception) -> None:
    await send({"type": "http.response.start", "status": 413, "headers": []})
    await send({"type": "http.response.body", "body": b'{"too": "large"}'})


START_413 = {"type": "http.response.start", "status": 413, "headers": []}


async def test_a_413_whose_body_never_comes_is_answered_by_the_error_path_alone(
    sink: MemorySink,
) -> None:
    """The app raises after its 413's start (a stream that fails): that start, held, is never
    sent, and the 500 is the only answer."""

    async def error_app(scope: Any, receive: Any, send: Any, exc: Exception) -> None:
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b'{"error": "internal"}'})

    middleware = RequestContextMiddleware(
        app_sending(START_413, then=ValueError("backend failed")),
        too_large_app=answer_in_json,
        error_app=error_app,
    )
    messages = await run(middleware)
    assert [(m["type"], m.get("status")) for m in messages] == [
        ("http.response.start", 500),
        ("http.response.body", None),
    ]
    (record,) = access(sink)
    assert record["http.response.status_code"] == 500
    assert record["http.response.body.bytes"] == len(messages[1]["body"])


@pytest.mark.parametrize(
    "after",
    [
        [{"type": "http.response.pathsend", "path": "/srv/413.html"}],  # FileResponse
        [{"type": "http.response.body", "body": b"Content", "more_body": True}],  # streamed
        [{"type": "http.response.body", "body": b"Other text"}],
        [],  # nothing: the app returns after the start
    ],
)
async def test_any_other_413_is_passed_on_whole_with_the_request_id(
    sink: MemorySink, after: list[dict[str, Any]]
) -> None:
    messages = await run(
        RequestContextMiddleware(app_sending(START_413, *after), too_large_app=answer_in_json)
    )
    assert [m["type"] for m in messages] == ["http.response.start"] + [m["type"] for m in after]
    assert messages[0]["status"] == 413
    assert messages[0]["headers"][-1][0] == b"x-request-id"
    assert messages[1:] == after
    (record,) = access(sink)
    assert record["http.response.status_code"] == 413


async def test_a_held_start_the_server_refuses_keeps_its_status_in_the_access_record(
    sink: MemorySink,
) -> None:
    """The app returns after a 413's start; sending it fails (the client is gone): the record
    says 413, as for any start the server refused, not 499 (never sent)."""
    middleware = RequestContextMiddleware(app_sending(START_413), too_large_app=answer_in_json)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def refuse(message: dict[str, Any]) -> None:
        raise OSError("connection reset")

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    await middleware(scope, receive, refuse)  # logged as the app's failure, not re-raised
    (record,) = access(sink)
    assert (record["http.response.status_code"], record["event.outcome"]) == (413, "failure")


def warnings_of(sink: MemorySink) -> list[str]:
    return [r["message"] for r in sink.records if r["log.logger"] == "servicelog.errors"]


@pytest.mark.parametrize("path", ["/missing", "/http-404", "/api-404", "/query?n=abc"])
async def test_a_client_error_the_limit_replaces_is_not_logged(sink: MemorySink, path: str) -> None:
    """A request that declares a body over the limit gets the limit's 413 whatever the
    application answered (Starlette replaces any response when it starts): the 404 or 422 it
    never sees is not logged, the 413 it gets is, once."""
    app = FastAPI(max_body_size=16)

    @app.post("/http-404")
    async def http_404() -> None:
        raise HTTPException(404, "no such thing")

    @app.post("/api-404")
    async def api_404() -> None:
        raise NotFoundException("Item", "7")

    @app.post("/query")
    async def query(n: int) -> int:  # a 422 for ?n=abc, before any body is read
        return n

    servicelog.fastapi.install(app)
    response = await send(app, "POST", path, content=b"x" * 100)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert warnings_of(sink) == ["HTTP 413: Content Too Large"]
    (record,) = access(sink)
    assert record["http.response.status_code"] == 413
    sink.records.clear()
    small = await send(app, "POST", path, content=b"x")  # within the limit: the 4xx is sent
    assert small.status_code == (422 if path.startswith("/query") else 404)
    assert len(warnings_of(sink)) == 1 and "413" not in warnings_of(sink)[0]


async def test_a_limit_met_outside_the_handlers_is_still_logged_once(sink: MemorySink) -> None:
    """A user middleware that reads the body (between the limit and the exception handlers)
    meets the limit: the exception reaches the limit itself, which sends its plain 413 before
    any response started. The answer that replaces it is final, and logged."""

    class ReadsBody:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                await receive()  # a signature check, say
            await self.app(scope, receive, send)

    app = FastAPI(max_body_size=16)

    @app.post("/items")
    async def create() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(ReadsBody)
    servicelog.fastapi.install(app)
    response = await send(app, "POST", "/items", content=b"x" * 100)
    assert response.status_code == 413
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]
    assert warnings_of(sink) == ["HTTP 413: Content Too Large"]
