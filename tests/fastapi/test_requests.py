"""Request IDs, trace context and the access log, in-process."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from collections.abc import Callable
from typing import Any
from unittest.mock import ANY

import httpx
import pytest

import servicelog
import servicelog.fastapi
from fastapi import BackgroundTasks, FastAPI, Request, WebSocket
from servicelog import errors
from servicelog.sinks import MemorySink

from ..apps.websocket_routes import add_websocket_routes
from .conftest import break_api_exception_handler, logged_text, make_app

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def access(sink: MemorySink) -> list[dict[str, Any]]:
    return [r for r in sink.records if r["log.logger"] == "servicelog.access"]


async def test_a_request_id_is_generated_and_on_every_line_and_the_response(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    response = await client.post(
        "/orders", json={"item_id": 1, "quantity": 2, "card_number": "4111111111111111"}
    )
    assert response.status_code == 201
    rid = response.headers["x-request-id"]
    assert UUID4.fullmatch(rid)
    assert sink.records, "the endpoint and the access log wrote lines"
    assert {r["request_id"] for r in sink.records} == {rid}
    placed = next(r for r in sink.records if r["message"] == "order placed")
    assert placed["user_id"] == 7, "bound in a sync dependency, seen by the endpoint"
    (line,) = access(sink)
    assert line["user_id"] == 7, "and by the access log"


@pytest.mark.parametrize(
    ("sent", "trust", "seen"),
    [
        ([b"abc-123"], True, "abc-123"),  # accepted: passed on as it came
        ([b"<script>alert(1)</script>"], True, "new"),  # rejected
        ([b"abc-123"], False, "new"),  # not trusted
        ([b"abc-123", b"<script>"], True, "abc-123"),  # repeated: every one is the first's
    ],
)
async def test_the_application_reads_the_request_id_as_the_header(
    sink: MemorySink, sent: list[bytes], trust: bool, seen: str
) -> None:
    """What the application (and an error tracker reading the request's headers) sees as
    ``X-Request-ID`` is the request ID in use: a rejected, untrusted or repeated incoming value
    is not passed on."""
    app = FastAPI()

    @app.get("/echo")
    async def echo(request: Request) -> Any:
        return [v for k, v in request.headers.items() if k == "x-request-id"]

    servicelog.fastapi.install(app, trust_request_id=trust)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/echo", headers=[(b"X-Request-ID", v) for v in sent])
    rid = response.headers["x-request-id"]
    assert response.json() == [rid] * len(sent)
    assert rid == seen if seen != "new" else UUID4.fullmatch(rid)
    assert "script" not in json.dumps(sink.records) + response.text


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abc-123", "abc-123"),
        ("req_1.2:3", "req_1.2:3"),
        ("3F2504E0-4F89-41D3-9A0C-0305E82C3301", "3f2504e0-4f89-41d3-9a0c-0305e82c3301"),
        ("{3f2504e0-4f89-41d3-9a0c-0305e82c3301}", "3f2504e0-4f89-41d3-9a0c-0305e82c3301"),
        ("0af7651916cd43dd8448eb211c80319c", "0af7651916cd43dd8448eb211c80319c"),
    ],
)
async def test_valid_request_ids_are_kept_uuids_canonicalised(
    client: httpx.AsyncClient, sink: MemorySink, sent: str, kept: str
) -> None:
    response = await client.get("/items/1", headers={"X-Request-ID": sent})
    assert response.headers["x-request-id"] == kept
    assert access(sink)[0]["request_id"] == kept


@pytest.mark.parametrize(
    "bad",
    [
        "",
        " ",
        "a" * 129,
        "x" * 8192,
        "<script>alert(1)</script>",
        "abc\x1bdef",
        "id%0d%0aSet-Cookie:x",
        "-leading-dash",
        'quote"d',
    ],
)
async def test_invalid_request_ids_are_replaced_and_never_echoed_or_logged(
    client: httpx.AsyncClient, sink: MemorySink, bad: str
) -> None:
    response = await client.get("/items/1", headers={"X-Request-ID": bad.encode("latin-1")})
    rid = response.headers["x-request-id"]
    assert UUID4.fullmatch(rid)
    rejected = [r for r in sink.records if "Rejected an invalid" in r["message"]]
    assert len(rejected) == 1
    assert rejected[0]["request_id.rejected"]["length"] == len(bad)
    everything = repr(sink.records) + response.text + repr(dict(response.headers))
    if len(bad) > 3:
        assert bad not in everything


async def test_first_of_duplicate_headers_wins(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/items/1", headers=[("X-Request-ID", "first"), ("X-Request-ID", "second")]
    )
    assert response.headers["x-request-id"] == "first"


async def test_traceparent_is_continued_with_a_new_span(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = "00f067aa0ba902b7"
    await client.get("/items/1", headers={"traceparent": f"00-{trace}-{parent}-01"})
    (line,) = access(sink)
    assert line["trace.id"] == trace
    assert re.fullmatch(r"[0-9a-f]{16}", line["span.id"]) and line["span.id"] != parent


TRACE, PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.mark.parametrize(
    "bad",
    [
        "garbage",
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
        "ff-" + "a" * 32 + "-" + "b" * 16 + "-01",
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 is exactly 55 characters
        f"00-{TRACE}-{PARENT}-011",
        f"cc-{TRACE}-{PARENT}-01zzz",  # a later version: more fields only after a "-"
    ],
)
async def test_invalid_traceparent_starts_a_new_trace(
    client: httpx.AsyncClient, sink: MemorySink, bad: str
) -> None:
    await client.get("/items/1", headers={"traceparent": bad})
    (line,) = access(sink)
    assert re.fullmatch(r"[0-9a-f]{32}", line["trace.id"]) and line["trace.id"] != "0" * 32


async def test_a_later_traceparent_version_with_more_fields_is_continued(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    await client.get("/items/1", headers={"traceparent": f"cc-{TRACE}-{PARENT}-01-what-next"})
    assert access(sink)[0]["trace.id"] == TRACE


async def test_a_duplicated_traceparent_starts_a_new_trace(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    sent = f"00-{TRACE}-{PARENT}-01"
    await client.get("/items/1", headers=[("traceparent", sent), ("traceparent", sent)])
    (line,) = access(sink)
    assert re.fullmatch(r"[0-9a-f]{32}", line["trace.id"]) and line["trace.id"] != TRACE


async def _exchange(scope: dict[str, Any], seen: list[int] | None = None) -> list[Any]:
    """One request through a bare RequestContextMiddleware around an app that answers 204
    (and notes how many headers it found in *seen*); the messages sent to the server."""
    from servicelog.asgi import RequestContextMiddleware

    sent: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if seen is not None:
            seen.append(len(list(scope["headers"])))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    await RequestContextMiddleware(app)(scope, receive, send)
    return sent


@pytest.mark.parametrize("shape", [list, tuple, iter])
async def test_headers_of_any_iterable_shape_are_read(sink: MemorySink, shape: Any) -> None:
    """ASGI allows any iterable of pairs (a server may give a generator, or lists): the first
    of each name wins, a traceparent sent twice still starts a new trace, and the application
    still finds every header (a generator read by the middleware is left as a list)."""
    sent: list[Any] = []
    seen: list[int] = []
    parent = f"00-{TRACE}-{PARENT}-01".encode()
    pairs = [
        [b"x-request-id", b"first"], [b"user-agent", b"agent-1"], [b"traceparent", parent],
        [b"x-request-id", b"second"], [b"user-agent", b"agent-2"], [b"traceparent", parent],
    ]  # fmt: skip
    for headers in (pairs, pairs[:3]):
        scope = {"type": "http", "method": "GET", "path": "/x", "query_string": b"",
                 "headers": shape(headers)}  # fmt: skip
        sent += await _exchange(scope, seen)
    servicelog.flush()
    twice, once = access(sink)
    assert seen == [6, 3]
    assert [dict(m["headers"])[b"x-request-id"] for m in sent[::2]] == [b"first", b"first"]
    assert twice["user_agent.original"] == once["user_agent.original"] == "agent-1"
    assert once["trace.id"] == TRACE and twice["trace.id"] != TRACE


async def test_header_values_of_another_type_than_bytes_are_read(sink: MemorySink) -> None:
    """A server that breaks the spec (``str`` values, a ``str`` query string, no headers at
    all): the request is answered, with its access record, as bare Starlette answers it."""
    sent: list[Any] = []
    parent = f"00-{TRACE}-{PARENT}-01"
    odd: list[dict[str, Any]] = [
        {"headers": [(b"x-request-id", "str-id"), (b"traceparent", parent)]},
        {"headers": [(b"user-agent", "str-agent")], "query_string": "page=2&token=abc"},
        {"headers": [(b"user-agent", bytearray(b"ba-agent"))], "query_string": memoryview(b"a=1")},
        {"headers": None},
    ]
    for extra in odd:
        scope = {"type": "http", "method": "GET", "path": "/x", "query_string": b"", **extra}
        sent += await _exchange(scope)
    servicelog.flush()
    first, second, third, fourth = access(sink)
    assert [m["status"] for m in sent[::2]] == [204] * 4
    assert first["request_id"] == "str-id" and first["trace.id"] == TRACE
    assert second["user_agent.original"] == "str-agent"
    assert second["url.query"] == "page=2&token=[REDACTED]"
    assert (third["user_agent.original"], third["url.query"]) == ("ba-agent", "a=1")
    assert fourth["http.response.status_code"] == 204


async def test_an_application_that_returns_without_answering_gets_a_500_with_the_id(
    sink: MemorySink,
) -> None:
    """The server would answer its own 500 without the request ID, and the access record said
    499 (the client left). A handler that returns None is the usual way to get there."""
    app = FastAPI()

    class Oops(Exception):
        pass

    @app.get("/oops")
    async def oops() -> None:
        raise Oops

    @app.exception_handler(Oops)
    async def forgot_to_return(request: Request, exc: Exception) -> Any:
        return None

    servicelog.fastapi.install(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        response = await client.get("/oops", headers={"X-Request-ID": "no-answer"})
    assert response.status_code == 500 and response.headers["x-request-id"] == "no-answer"
    assert response.json()["error"]["request_id"] == "no-answer"
    servicelog.flush()
    (line,) = access(sink)
    assert (line["http.response.status_code"], line["log.level"]) == (500, "error")
    assert line["event.outcome"] == "failure"
    (error,) = [r for r in sink.records if r.get("error.type", "").endswith("NoResponseError")]
    assert error["error.message"] == "The application returned without starting a response"
    assert (error["request_id"], error["log.level"]) == ("no-answer", "error")


@pytest.mark.parametrize("error_format", ["envelope", "problem"])
async def test_an_app_without_an_answer_gets_the_500_in_the_error_format(
    sink: MemorySink, error_format: Any
) -> None:
    app = FastAPI()

    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    app.mount("/raw", silent)
    servicelog.fastapi.install(app, error_format=error_format)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        response = await client.get("/raw/x")
    assert response.status_code == 500 and "x-request-id" in response.headers
    kind = "application/problem+json" if error_format == "problem" else "application/json"
    assert response.headers["content-type"] == kind


async def test_a_request_expecting_100_continue_is_not_asked_whether_its_client_left(
    sink: MemorySink,
) -> None:
    """Asking receive() would have the server send "100 Continue", and the client its whole
    body, for a 500: such a request is answered at once."""
    from servicelog.asgi import RequestContextMiddleware

    sent: list[Any] = []
    asked: list[int] = []

    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    async def receive() -> Any:
        asked.append(1)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    headers = [(b"expect", b"100-continue"), (b"content-length", b"5000000")]
    scope = {
        "type": "http",
        "method": "PUT",
        "path": "/up",
        "headers": headers,
        "query_string": b"",
    }
    await RequestContextMiddleware(silent)(scope, receive, send)
    assert asked == [] and sent[0]["status"] == 500


@pytest.mark.parametrize("unread", [0, 3])
async def test_an_app_that_returns_once_its_client_left_is_a_499(
    sink: MemorySink, unread: int
) -> None:
    """A long poll that returns when its client goes away: nothing to answer, no error (the
    server says nothing either); the access record says 499, as for any client that left. A
    server that queues its messages (hypercorn) has the body the application did not read
    before the disconnect: read past."""
    from servicelog.asgi import RequestContextMiddleware

    sent: list[Any] = []

    async def long_poll(scope: Any, receive: Any, send: Any) -> None:
        if not unread:
            while (await receive())["type"] != "http.disconnect":
                pass

    messages = [
        {"type": "http.request", "body": b"x", "more_body": True} for _ in range(unread)
    ] + [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> Any:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/poll", "headers": [], "query_string": b""}
    await RequestContextMiddleware(long_poll)(scope, receive, send)
    servicelog.flush()
    assert sent == []
    (line,) = access(sink)
    assert (line["http.response.status_code"], line["log.level"]) == (499, "warning")
    assert [r for r in sink.records if r["log.level"] == "error"] == []


async def test_a_client_still_sending_an_unread_body_is_answered(sink: MemorySink) -> None:
    """An application that returns without reading a body its client is still sending: the
    client is there (it gets the 500), however many messages are ready."""
    from servicelog.asgi import RequestContextMiddleware

    sent: list[Any] = []

    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    async def receive() -> Any:  # a client streaming its upload without end
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "PUT", "path": "/up", "headers": [], "query_string": b""}
    await RequestContextMiddleware(silent)(scope, receive, send)
    assert sent[0]["status"] == 500


async def test_a_request_cancelled_while_asked_whether_its_client_left_leaves_no_task(
    sink: MemorySink,
) -> None:
    """The server cancels the request while the middleware waits on ``receive()``: that call
    is cancelled too, not left pending (it would be destroyed pending, and said so)."""
    from servicelog.asgi import RequestContextMiddleware

    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    queue: asyncio.Queue[Any] = asyncio.Queue()  # a server's queue (hypercorn's): nothing comes

    async def send(message: Any) -> None:
        pass

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    before = asyncio.all_tasks()
    request = asyncio.ensure_future(RequestContextMiddleware(silent)(scope, queue.get, send))
    await asyncio.sleep(0.01)  # in the probe's wait
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert asyncio.all_tasks() == before


async def test_the_access_record_times_the_response_not_its_background_tasks(
    sink: MemorySink,
) -> None:
    """Starlette runs a response's background tasks before the application returns: the
    duration and the time are the response's (uvicorn's own access line is written then)."""
    app = FastAPI()

    async def send_mail() -> None:
        await asyncio.sleep(0.5)

    @app.post("/signup")
    async def signup(tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(send_mail)
        return {"ok": "yes"}

    servicelog.fastapi.install(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        before = servicelog.record.format_timestamp(time.time_ns())
        assert (await client.post("/signup")).status_code == 200
    servicelog.flush()
    (line,) = access(sink)
    assert line["event.duration"] < 300_000_000  # ns: the task took 500 ms more
    assert (
        before
        <= line["@timestamp"]
        < servicelog.record.format_timestamp(time.time_ns() - 300_000_000)
    )


async def test_access_record_has_ecs_fields_and_level_by_status(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    await client.get("/items/1?color=red", headers={"User-Agent": "pytest-agent"})
    await client.get("/items/999")
    await client.get("/boom")
    ok, missing, boom = access(sink)
    assert ok["message"] == "GET /items/1 200"
    assert ok["log.level"] == "info"
    assert ok["http.request.method"] == "GET"
    assert ok["url.path"] == "/items/1"
    assert ok["url.query"] == "color=red"
    assert ok["http.response.status_code"] == 200
    assert ok["http.response.body.bytes"] == len(b'{"id":1,"name":"keyboard"}')
    assert isinstance(ok["event.duration"], int) and ok["event.duration"] > 0
    assert ok["user_agent.original"] == "pytest-agent"
    assert ok["client.ip"] == "127.0.0.1"
    assert (missing["log.level"], missing["http.response.status_code"]) == ("warning", 404)
    assert (boom["log.level"], boom["http.response.status_code"]) == ("error", 500)


async def test_health_checks_are_sampled_errors_never(sink: MemorySink) -> None:
    app = make_app(access_log=servicelog.asgi.AccessLog(sample={"/health": 0.0}, skip={"/x"}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        for _ in range(20):
            await client.get("/health")
        await client.get("/items/1")
    assert [r["url.path"] for r in access(sink)] == ["/items/1"]


async def test_a_failure_on_a_sampled_path_is_always_logged(sink: MemorySink) -> None:
    """A body that fails after its response started, on a path sampled at 0: the access record
    is written anyway, as an error with ``event.outcome: failure``; no second response."""
    from servicelog.asgi import AccessLog, RequestContextMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"[1,", "more_body": True})
        raise RuntimeError("cut off")

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    mw = RequestContextMiddleware(app, access_log=AccessLog(sample={"/health": 0.0}))
    scope = {"type": "http", "method": "GET", "path": "/health", "headers": [], "query_string": b""}
    await mw(scope, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    (record,) = access(sink)
    assert record["http.response.status_code"] == 200
    assert record["event.outcome"] == "failure" and record["log.level"] == "error"
    assert [r["error.type"] for r in sink.records if "error.type" in r] == ["RuntimeError"]


async def test_proxy_headers_only_when_trusted(sink: MemorySink) -> None:
    headers = {"X-Forwarded-For": "203.0.113.9, 10.0.0.2"}
    for trusted, expected in ((0, "127.0.0.1"), (1, "10.0.0.2"), (2, "203.0.113.9")):
        app = make_app(access_log=servicelog.asgi.AccessLog(trusted_proxies=trusted))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            await client.get("/items/1", headers=headers)
        assert access(sink)[-1]["client.ip"] == expected


async def test_a_forwarded_for_header_sent_twice_is_one_list(sink: MemorySink) -> None:
    """The client forges the first line; its proxy appends the real address as a second line.
    Joined (RFC 9110 5.3), the trusted hop is the proxy's."""
    app = make_app(access_log=servicelog.asgi.AccessLog(trusted_proxies=1))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        headers = [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "203.0.113.9")]
        await client.get("/items/1", headers=headers)
    assert access(sink)[-1]["client.ip"] == "203.0.113.9"


async def test_a_long_query_is_cut_between_pairs_before_it_is_redacted(sink: MemorySink) -> None:
    """Cut in the middle of a card number, the 15 digits left would match no pattern."""
    pad = "a=" + "x" * 2030
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=make_app()), base_url="http://shop"
    ) as client:
        await client.get(f"/items/1?{pad}&number=4111111111111111&page=2")
        await client.get("/items/1?blob=" + "y" * 3000)
    cut, single = (r["url.query"] for r in access(sink))
    assert cut == pad + "&…"
    assert "41111" not in logged_text(sink.records)
    assert single == "…"


async def test_an_app_mounted_inside_an_installed_app_and_installed_too(
    sink: MemorySink,
) -> None:
    """One request, one ID, one access record: the inner middleware lets the outer one act."""
    inner = FastAPI()

    @inner.get("/ping")
    async def ping(request: Request) -> dict[str, str]:
        return {"rid": request.state.request_id}

    outer = FastAPI()
    outer.mount("/sub", servicelog.fastapi.install(inner))
    servicelog.fastapi.install(outer)
    transport = httpx.ASGITransport(app=outer)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/sub/ping")
    rid = response.headers["x-request-id"]
    assert response.json() == {"rid": rid}
    (line,) = access(sink)
    assert line["request_id"] == rid


async def test_a_websocket_accept_carries_the_request_id(sink: MemorySink) -> None:
    from servicelog.asgi import RequestContextMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept", "headers": [(b"x-app", b"1")]})

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    scope = {"type": "websocket", "path": "/ws", "headers": [(b"x-request-id", b"ws-1")]}
    await RequestContextMiddleware(app)(scope, receive, send)
    assert sent == [
        {"type": "websocket.accept", "headers": [(b"x-app", b"1"), (b"x-request-id", b"ws-1")]}
    ]


@pytest.mark.parametrize(
    ("raised", "status", "level", "outcome"),
    [
        (asyncio.CancelledError, 499, "warning", None),  # the server cancelled it
        (type("Fatal", (BaseException,), {}), 500, "error", "failure"),  # the app's own
    ],
)
async def test_a_base_exception_propagates_and_is_in_the_access_record(
    sink: MemorySink, raised: type[BaseException], status: int, level: str, outcome: str | None
) -> None:
    from servicelog.asgi import RequestContextMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise raised()

    async def send(message: Any) -> None:
        raise AssertionError("nothing is sent: the server answers")

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/x", "headers": [], "query_string": b""}
    with pytest.raises(raised):
        await RequestContextMiddleware(app)(scope, receive, send)
    servicelog.flush()
    (line,) = access(sink)
    assert (line["http.response.status_code"], line["log.level"]) == (status, level)
    assert line.get("event.outcome") == outcome


async def test_request_state_carries_the_id(sink: MemorySink) -> None:
    app = FastAPI()

    @app.get("/state")
    async def state(request: Request) -> dict[str, str]:
        return {"rid": request.state.request_id, "ctx": servicelog.get_context()["request_id"]}

    servicelog.fastapi.install(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/state")
    body = response.json()
    assert body["rid"] == body["ctx"] == response.headers["x-request-id"]


async def test_install_is_idempotent(sink: MemorySink) -> None:
    app = make_app()
    servicelog.fastapi.install(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        await client.get("/items/1")
    assert len(access(sink)) == 1


async def test_generated_ids_are_unique() -> None:
    from servicelog.asgi.ids import new_request_id

    ids = {new_request_id() for _ in range(100_000)}
    assert len(ids) == 100_000
    assert all(uuid.UUID(i).version == 4 for i in list(ids)[:100])


def _three_ids_from(pool: str) -> Callable[[], tuple[str, str, str]]:
    """``new_ids``, or the middleware's per-request pool (``next_request``) cut to its IDs."""
    from servicelog.asgi import ids

    if pool == "new_ids":
        return ids.new_ids
    return lambda: ids.next_request()[:3]


@pytest.mark.parametrize("pool", ["new_ids", "next_request"])
def test_a_forked_child_never_reuses_its_parents_pooled_ids(pool: str) -> None:
    import os

    new_ids = _three_ids_from(pool)
    new_ids()  # the pools are filled: the parent holds IDs it has not handed out yet
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(write, ",".join(x for _ in range(10) for x in new_ids()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split(","))
    os.waitpid(pid, 0)
    parent = {x for _ in range(10) for x in new_ids()}
    assert len(child) == 30 and len(parent) == 30
    assert not child & parent


@pytest.mark.parametrize("pool", ["new_ids", "next_request"])
def test_pools_give_a_canonical_uuid4_and_w3c_trace_ids(pool: str) -> None:
    from servicelog.asgi.ids import continue_trace

    new_ids = _three_ids_from(pool)
    seen = set()
    for _ in range(20_000):
        request_id, trace_id, span_id = new_ids()
        parsed = uuid.UUID(request_id)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, request_id)
        assert len(trace_id) == 32 and len(span_id) == 16
        assert int(trace_id, 16) and int(span_id, 16)  # never all zeros
        seen.add((request_id, trace_id, span_id))
    assert len(seen) == 20_000
    parent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    assert continue_trace(parent, "c" * 32, "d" * 16) == ("a" * 32, "d" * 16, "b" * 16, "01")
    assert continue_trace("garbage", "c" * 32, "d" * 16) == ("c" * 32, "d" * 16, None, "01")
    assert continue_trace(None, "c" * 32, "d" * 16).traceparent == f"00-{'c' * 32}-{'d' * 16}-01"


def test_the_per_request_pool_gives_the_new_trace_its_ids_start() -> None:
    """The middleware's pool hands out the trace a request without ``traceparent`` starts,
    made with the same trace and span IDs, ready to send downstream."""
    from servicelog.asgi.ids import TraceContext, next_request

    for _ in range(600):  # across refills
        _, trace_id, span_id, trace = next_request()
        assert type(trace) is TraceContext
        assert trace == (trace_id, span_id, None, "01")
        assert trace.traceparent == f"00-{trace_id}-{span_id}-01"


def test_refilling_the_pool_keeps_few_objects_for_the_garbage_collector() -> None:
    """A refill keeps at most a chunk of GC-tracked tuples: a whole batch at once (512
    objects) set off a young collection about every 256 requests, and promoted the pool to the
    older generations, so that full collections ran under load."""
    import gc

    from servicelog.asgi import ids

    ids._empty_pools()
    gc.disable()
    try:
        gc.collect()
        before = gc.get_count()[0]
        ids._refill()
        kept = gc.get_count()[0] - before
    finally:
        gc.enable()
        ids._empty_pools()
    assert 0 < kept <= 2 * ids._CHUNK + 32  # a chunk's tuples and traces, a few temporaries


def test_an_id_taken_in_the_middle_of_a_refill_is_new_and_does_not_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A signal handler (or a finaliser the collector runs) may need an ID while its own thread
    is refilling the pool: it must neither wait for that refill (a lock would deadlock) nor
    share its IDs."""
    import threading

    from servicelog.asgi import ids

    ids._empty_pools()
    real = ids._generate
    nested: list[tuple[str, ...]] = []
    calls = 0

    def interrupted() -> tuple[list[str], list[str], list[str]]:
        nonlocal calls
        calls += 1
        batch = real()
        if calls == 1:  # the first refill is interrupted; the interruption refills on its own
            nested.append(ids.next_request()[:3])
        return batch

    monkeypatch.setattr(ids, "_generate", interrupted)
    made: list[tuple[str, ...]] = []

    def take() -> None:
        for _ in range(600):
            made.append(ids.next_request()[:3])

    worker = threading.Thread(target=take, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "a refill interrupted by a refill never finished"
    everything = [x for three in made + nested for x in three]
    assert len(nested) == 1 and len(everything) == 1_803
    assert len(set(everything)) == len(everything)


@pytest.mark.parametrize("pool", ["new_ids", "next_request"])
def test_an_all_zero_trace_or_span_id_from_the_random_source_is_never_handed_out(
    monkeypatch: pytest.MonkeyPatch, pool: str
) -> None:
    from servicelog.asgi import ids

    def zeros_then_random(size: int) -> bytes:  # 2**-64 in life: forced here
        raw = bytearray(random.randbytes(size))
        pool = ids._POOL
        raw[pool * 16 : pool * 16 + 16] = bytes(16)  # the first trace ID
        raw[pool * 32 + 8 : pool * 32 + 16] = bytes(8)  # the second span ID
        return bytes(raw)

    monkeypatch.setattr(ids.os, "urandom", zeros_then_random)
    ids._empty_pools()
    try:
        made = [_three_ids_from(pool)() for _ in range(ids._POOL)]
    finally:
        ids._empty_pools()
    traces = {trace_id for _, trace_id, _ in made}
    spans = {span_id for _, _, span_id in made}
    assert "0" * 32 not in traces and "0" * 31 + "1" in traces
    assert "0" * 16 not in spans and "0" * 15 + "1" in spans


async def test_uvicorn_skips_its_own_access_line_work_once_ours_replaces_it() -> None:
    """uvicorn formats an access line per request whenever ``uvicorn.access`` has handlers up
    its chain (``hasHandlers()``, checked per connection), even if the logger is disabled."""
    import logging

    access_logger = logging.getLogger("uvicorn.access")
    saved = access_logger.propagate, access_logger.disabled, list(access_logger.handlers)
    capture = servicelog.CaptureOptions(stdlib=True, warnings=False, excepthooks=False)
    try:
        servicelog.configure(stream="none", sinks=[MemorySink()], capture=capture)
        access_logger.propagate = True  # what uvicorn's own logging config may leave
        assert access_logger.hasHandlers()  # the root has servicelog's handler
        transport = httpx.ASGITransport(app=make_app())  # the middleware is built on first use
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            await client.get("/items/1")
        assert not access_logger.hasHandlers()
        servicelog.configure(stream="none", sinks=[MemorySink()], capture=capture)  # again
        assert not access_logger.hasHandlers()
    finally:
        servicelog.reset()
        access_logger.propagate, access_logger.disabled = saved[0], saved[1]
        for handler in saved[2]:
            access_logger.addHandler(handler)


async def run_lifespan(app: Any) -> list[str]:
    """Start and stop *app* as a server does (ASGI lifespan); the messages it sent back."""
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    answers: list[str] = []

    async def receive() -> Any:
        return next(incoming)

    async def send(message: Any) -> None:
        answers.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return answers


async def serve_lifespan(app: Any, serving: Callable[[], None]) -> None:
    """Start *app*'s lifespan, call *serving* once it has started, then shut it down."""
    incoming = iter([{"type": "lifespan.startup"}])
    called = asyncio.Event()

    async def receive() -> Any:
        try:
            return next(incoming)
        except StopIteration:
            await called.wait()
            return {"type": "lifespan.shutdown"}

    async def send(message: Any) -> None:
        if message["type"] == "lifespan.startup.complete":
            serving()
            called.set()

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    assert called.is_set(), "the lifespan never started"


@pytest.mark.parametrize("ours", [False, True])
async def test_uvicorns_access_log_is_off_only_when_ours_replaces_it(
    sink: MemorySink, ours: bool
) -> None:
    """``access_log=False``: no record of ours, so uvicorn's own access log stays on."""
    import logging

    access_logger = logging.getLogger("uvicorn.access")
    saved = access_logger.propagate, access_logger.disabled
    try:
        access_logger.propagate, access_logger.disabled = True, False
        answers = await run_lifespan(make_app(access_log=ours))
        assert answers == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
        assert (access_logger.propagate, access_logger.disabled) == (not ours, ours)
    finally:
        access_logger.propagate, access_logger.disabled = saved


async def test_the_access_logger_level_is_honoured() -> None:
    """``levels={"servicelog.access": "WARNING"}`` keeps 4xx/5xx access records only."""
    from .conftest import NO_CAPTURE

    sink = MemorySink()
    servicelog.configure(
        service="shop",
        stream="none",
        sinks=[sink],
        capture=NO_CAPTURE,
        levels={"servicelog.access": "WARNING"},
    )
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        await client.get("/items/1")
        await client.get("/items/999999")
    records = access(sink)
    assert [r["http.response.status_code"] for r in records] == [404]
    assert records[0]["log.level"] == "warning"
    assert records[0]["request_id"] and records[0]["trace.id"]


async def test_with_a_file_sink_access_records_are_written_in_the_loops_burst_and_on_flush(
    tmp_path: Any,
) -> None:
    """A buffered sink gets the access records at the end of the event loop's iteration, in one
    burst (``Pipeline.defer``); ``servicelog.flush()`` writes the ones still waiting."""
    import asyncio
    import json

    from servicelog.logger import current_runtime

    from ..conftest import NO_CAPTURE

    log_file = tmp_path / "app.jsonl"
    servicelog.configure(service="shop", stream="none", file=log_file, capture=NO_CAPTURE)
    file_sink: Any = current_runtime().pipeline.routes[0].sink
    assert current_runtime().pipeline.deferrable
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as c:
        responses = await asyncio.gather(*(c.get(f"/items/{n}") for n in range(1, 4)))
        await asyncio.sleep(0)  # one loop iteration: the burst has run
        assert file_sink.counters()["produced"] >= 3
        last = await c.get("/items/4")
        servicelog.flush()  # without yielding to the loop
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    access = [r for r in lines if r["log.logger"] == "servicelog.access"]
    assert sorted(r["request_id"] for r in access) == sorted(
        r.headers["x-request-id"] for r in [*responses, last]
    )


async def test_a_burst_emits_each_access_record_in_its_own_requests_context(
    tmp_path: Any,
) -> None:
    """Records deferred together travel the pipeline each in the context of its request: a
    rate limit keyed on a context variable (a tenant set by an outer middleware) counts each
    request under its own tenant, so none of five concurrent tenants' records is dropped."""
    import contextvars

    from servicelog.ratelimit import RateLimit

    from ..conftest import NO_CAPTURE

    tenant: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default="-")

    def per_tenant(app: Any) -> Any:
        async def middleware(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                tenant.set(dict(scope["headers"]).get(b"x-tenant", b"").decode())
            await app(scope, receive, send)

        return middleware

    limit = RateLimit(
        burst=1, interval=60, exempt=(), key=lambda r, n: (tenant.get(), r["message"])
    )
    log_file = tmp_path / "app.jsonl"
    servicelog.configure(
        service="shop", stream="none", file=log_file, capture=NO_CAPTURE, rate_limit=limit
    )
    app = FastAPI()
    servicelog.fastapi.install(app, gc_freeze=False)
    transport = httpx.ASGITransport(app=per_tenant(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as c:
        await asyncio.gather(*(c.get("/gone", headers={"x-tenant": f"t{n}"}) for n in range(5)))
    servicelog.flush()
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    access = [r for r in lines if r["log.logger"] == "servicelog.access"]
    assert len(access) == 5


async def test_an_access_record_waiting_for_its_burst_does_not_keep_the_request_scope(
    tmp_path: Any,
) -> None:
    """The deferred record holds the scope's values, not the scope: what the framework hung on
    the scope (its exit stacks, the route) is freed with the request, before the burst."""
    import weakref

    from servicelog.asgi import RequestContextMiddleware
    from servicelog.logger import current_runtime

    from ..conftest import NO_CAPTURE

    class Held:
        pass

    refs: list[weakref.ref[Held]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        held = Held()
        scope["framework.thing"] = held  # as FastAPI hangs its exit stacks on the scope
        refs.append(weakref.ref(held))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    log_file = tmp_path / "app.jsonl"
    servicelog.configure(service="shop", stream="none", file=log_file, capture=NO_CAPTURE)
    transport = httpx.ASGITransport(app=RequestContextMiddleware(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as c:
        response = await c.get("/items?id=1", headers={"user-agent": "probe"})
        assert current_runtime().pipeline._deferred  # the burst has not run yet
        assert refs and refs[0]() is None  # ...and the scope is gone
    servicelog.flush()
    (record,) = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert record["request_id"] == response.headers["x-request-id"]
    assert record["message"] == "GET /items 200"
    assert record["url.query"] == "id=1"
    assert record["user_agent.original"] == "probe"
    assert record["client.ip"] == "127.0.0.1"


async def test_an_access_record_that_cannot_be_built_in_the_burst_is_counted(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building the record in the burst fails: the response was already sent, nothing else is
    disturbed, and the failure is counted where a failure at the response's end is."""
    import servicelog.asgi.request_context as request_context
    from servicelog import _errors

    from ..conftest import NO_CAPTURE

    def broken_clock(ns: int) -> str:
        raise ValueError("no clock")

    servicelog.configure(
        service="shop", stream="none", file=tmp_path / "app.jsonl", capture=NO_CAPTURE
    )
    monkeypatch.setattr(request_context, "format_timestamp", broken_clock)
    _errors.set_strict(False)  # count, as in production (tests otherwise raise)
    try:
        transport = httpx.ASGITransport(app=make_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as c:
            response = await c.get("/items/1")
        assert response.status_code == 200
        assert servicelog.stats()["errors"] == {"access log": 1}
    finally:
        _errors.set_strict(None)


def _garbage_cycles_left_by(app: Any, requests: int) -> int:
    """How many objects only the cycle collector could free after *requests* GET requests."""
    import gc

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "path": "/items/1",
        "raw_path": b"/items/1",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"shop"), (b"user-agent", b"test")],
        "client": ("127.0.0.1", 5000),
        "server": ("shop", 80),
        "scheme": "http",
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    async def serve() -> None:
        for _ in range(requests + 5):  # the first ones build the middleware stack and caches
            await app({**scope, "state": {}}, receive, send)
            await asyncio.sleep(0)  # the access log's burst
            if _ == 4:
                gc.collect()
                gc.disable()

    try:
        asyncio.run(serve())
        return gc.collect()
    finally:
        gc.enable()


def test_a_request_leaves_no_garbage_cycle_behind(sink: MemorySink) -> None:
    """Objects freed only by the cycle collector set off collections under load (each one
    walks the young generation, and what survives is promoted): servicelog's layers must free
    everything a request made by reference counting, as the bare application does."""
    bare = FastAPI()

    @bare.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    baseline = _garbage_cycles_left_by(bare, 50)
    installed = _garbage_cycles_left_by(make_app(), 50)
    assert installed <= baseline + 10, (installed, baseline)


async def test_after_the_lifespan_records_are_written_at_once_until_it_starts_again(
    tmp_path: Any,
) -> None:
    """The lifespan's end drains the file and makes it write each record at once (the server
    may die of a re-raised SIGTERM right after); a lifespan that starts again (a test client,
    an embedded server) hands the writing back to the writer thread."""
    from servicelog.render.json import JsonRenderer
    from servicelog.sinks import FileSink

    sink = FileSink(tmp_path / "app.jsonl", JsonRenderer())
    servicelog.configure(stream="none", sinks=[sink])
    try:
        app = make_app()
        log = servicelog.get_logger("shop")
        await run_lifespan(app)
        assert sink.interactive
        log.info("after the shutdown")  # no flush: written at once
        lines = (tmp_path / "app.jsonl").read_bytes().splitlines()
        assert b"after the shutdown" in lines[-1]

        def serving() -> None:
            assert not sink.interactive, "the writer thread writes again while serving"
            log.info("serving again")
            assert b"serving again" not in (tmp_path / "app.jsonl").read_bytes()

        await serve_lifespan(app, serving)
        assert b"serving again" in (tmp_path / "app.jsonl").read_bytes()
    finally:
        servicelog.reset()


async def test_another_apps_lifespan_start_hands_the_writing_back(tmp_path: Any) -> None:
    """The switch at a lifespan's end is process-wide: so is its undo (a second application
    served after the first one stopped kept writing every record on the caller)."""
    from servicelog.render.json import JsonRenderer
    from servicelog.sinks import FileSink

    sink = FileSink(tmp_path / "app.jsonl", JsonRenderer())
    servicelog.configure(stream="none", sinks=[sink])
    try:
        await run_lifespan(make_app())
        assert sink.interactive
        seen: list[bool] = []
        await serve_lifespan(make_app(), lambda: seen.append(sink.interactive))
        assert seen == [False] and sink.interactive  # (the second one's end)
    finally:
        servicelog.reset()


async def test_any_asgi_app_wrapped_in_the_middleware_is_drained_at_its_lifespans_end(
    tmp_path: Any,
) -> None:
    """Not only FastAPI through ``install()``: the middleware sees the lifespan's end of any
    application it wraps."""
    from servicelog.asgi import RequestContextMiddleware
    from servicelog.render.json import JsonRenderer
    from servicelog.sinks import FileSink

    sink = FileSink(tmp_path / "app.jsonl", JsonRenderer())
    servicelog.configure(stream="none", sinks=[sink])
    log = servicelog.get_logger("bare")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                log.info("closing the pool")
                await send({"type": "lifespan.shutdown.complete"})
                return

    try:
        assert await run_lifespan(RequestContextMiddleware(app)) == [
            "lifespan.startup.complete",
            "lifespan.shutdown.complete",
        ]
        assert b"closing the pool" in (tmp_path / "app.jsonl").read_bytes()
        assert sink.interactive
    finally:
        servicelog.reset()


def _ws_app() -> Any:
    app = add_websocket_routes(FastAPI())
    servicelog.fastapi.install(app)
    return app


async def _ws_call(
    app: Any, path: str, texts: list[str], headers: list[tuple[bytes, bytes]] | None = None
) -> list[dict[str, Any]]:
    """A client session on *app* (ASGI, as a server drives it): connect, send *texts*, then
    leave; what the application sent. An exception of the application propagates."""
    raw_path, _, query = path.partition("?")
    incoming = [{"type": "websocket.connect"}]
    incoming += [{"type": "websocket.receive", "text": t} for t in texts]
    incoming.append({"type": "websocket.disconnect", "code": 1000})
    sent: list[dict[str, Any]] = []

    async def receive() -> Any:
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(3600)  # pragma: no cover - a session that never ends
        return None  # pragma: no cover

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"shop"), *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "subprotocols": [],
        "state": {},
    }
    await app(scope, receive, send)
    return sent


async def test_a_websocket_connection_gets_one_access_record(sink: MemorySink) -> None:
    """Accepted (101, info), denied (403, warning), failed (error, outcome failure), and left
    by its client with the disconnect uncaught (101, info: not the application's failure); the
    connection's scope (request ID, trace) on each, the query redacted, no body size."""
    app = _ws_app()
    sent = await _ws_call(app, "/echo?token=abc", ["hi"], [(b"x-request-id", b"ws-req-1")])
    assert sent[0]["type"] == "websocket.accept"
    assert (b"x-request-id", b"ws-req-1") in sent[0]["headers"]
    assert sent[1] == {"type": "websocket.send", "text": "hi"}
    sent = await _ws_call(app, "/deny", [])
    assert [m["type"] for m in sent] == ["websocket.close"]
    sent = await _ws_call(app, "/crash", [], [(b"x-request-id", b"ws-crash")])
    # logged here (once, with the request ID) and closed as an internal error: the server
    # would log it without the ID and drop the connection without a close frame
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.close"]
    assert sent[1]["code"] == 1011
    # Not re-raised: the server would log the client's leaving as an error, with a traceback
    # and without the request ID, for every client that closes while the endpoint waits.
    await _ws_call(app, "/left", ["one"])
    # Another connection's leaving, raised in this one while its client is there: a failure.
    sent = await _ws_call(app, "/peer", [], [(b"x-request-id", b"ws-peer")])
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.close"]
    assert sent[1]["code"] == 1011
    servicelog.flush()
    records = {r["url.path"]: r for r in access(sink)}
    assert list(records) == ["/echo", "/deny", "/crash", "/left", "/peer"]
    assert records["/peer"]["event.outcome"] == "failure"
    (peer,) = [r for r in sink.records if r.get("request_id") == "ws-peer" and "error.type" in r]
    assert peer["error.type"].endswith("WebSocketDisconnect")
    echo = records["/echo"]
    assert echo["message"] == "WebSocket /echo 101" and echo["log.level"] == "info"
    assert (echo["request_id"], echo["network.protocol"]) == ("ws-req-1", "websocket")
    assert echo["http.request.method"] == "GET" and echo["url.query"] == "token=[REDACTED]"
    assert "http.response.body.bytes" not in echo and echo["event.duration"] > 0
    deny = records["/deny"]
    assert (deny["http.response.status_code"], deny["log.level"]) == (403, "warning")
    assert records["/crash"]["log.level"] == "error"
    assert records["/crash"]["event.outcome"] == "failure"
    crash, _ = [r for r in sink.records if r["message"] == "Unhandled exception"]
    assert crash["request_id"] == "ws-crash" and crash["error.message"] == "ws boom"
    assert (crash["url.path"], crash["network.protocol"]) == ("/crash", "websocket")
    assert records["/left"]["log.level"] == "info" and "event.outcome" not in records["/left"]
    assert all(r["trace.id"] and r["span.id"] for r in records.values())


async def test_a_websocket_app_failing_before_the_handshake_gets_a_json_500(
    sink: MemorySink,
) -> None:
    """With the denial response extension (uvicorn offers it), the minimal JSON 500 with the
    request ID, as for HTTP, and the exception logged once; without it, the exception
    propagates and the server answers 500 (as without servicelog)."""
    from servicelog.asgi import RequestContextMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("no db")

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws", "headers": [(b"x-request-id", b"ws-500")]}
    scope["extensions"] = {"websocket.http.response": {}}
    await RequestContextMiddleware(app)(scope, receive, send)
    start, body = sent
    assert (start["type"], start["status"]) == ("websocket.http.response.start", 500)
    assert (b"x-request-id", b"ws-500") in start["headers"]
    assert json.loads(body["body"])["error"]["request_id"] == "ws-500"
    servicelog.flush()
    (crash,) = [r for r in sink.records if r["message"] == "Unhandled exception"]
    assert crash["request_id"] == "ws-500"
    (record,) = access(sink)
    assert (record["http.response.status_code"], record["event.outcome"]) == (500, "failure")

    del scope["extensions"]
    sent.clear()
    with pytest.raises(RuntimeError, match="no db"):
        await RequestContextMiddleware(app)(scope, receive, send)
    assert sent == []


async def test_a_websocket_app_failing_after_its_connection_is_over_is_logged_here(
    sink: MemorySink,
) -> None:
    """Review: after a whole denial response the exception went on to the server (logged
    without the request ID); after the client's disconnect the 1011 close was sent anyway and
    the server's refusal counted as servicelog's failure."""
    from servicelog.asgi import RequestContextMiddleware

    async def denied_then_raise(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.http.response.start", "status": 403, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"no"})
        raise RuntimeError("after denial")

    async def left_then_raise(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"
        raise RuntimeError("cleanup failed")

    messages = [{"type": "websocket.disconnect", "code": 1001}]

    async def receive() -> Any:
        return messages[0]

    sent: list[Any] = []

    async def send(message: Any) -> None:
        if message["type"] == "websocket.close":  # as uvicorn's legacy protocol refuses it
            raise RuntimeError("Unexpected ASGI message 'websocket.close'")
        sent.append(message)

    async def left_before_the_handshake(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.disconnect"
        raise RuntimeError("gone early")  # nothing is sent to a client gone (review 3)

    apps = [(denied_then_raise, b"ws-denied", True), (left_then_raise, b"ws-left", True)]
    apps += [(left_before_the_handshake, b"ws-early", ext) for ext in (True, False)]
    for app, rid, extension in apps:
        scope = {"type": "websocket", "path": "/ws", "headers": [(b"x-request-id", rid)]}
        if extension:
            scope["extensions"] = {"websocket.http.response": {}}
        await RequestContextMiddleware(app)(scope, receive, send)
    assert [m["type"] for m in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
        "websocket.accept",
    ]
    servicelog.flush()
    crashes = [r["request_id"] for r in sink.records if r["message"] == "Unhandled exception"]
    assert crashes == ["ws-denied", "ws-left", "ws-early", "ws-early"]
    assert servicelog.stats()["errors"] == {}


async def test_a_websocket_client_gone_during_the_handshake_is_499_not_a_failure(
    sink: MemorySink,
) -> None:
    """The server could not send the accept (uvicorn raises ``ClientDisconnected``): the
    record said 101, error, failure."""

    class ClientDisconnected(OSError):  # uvicorn.protocols.utils's, by name
        pass

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        raise ClientDisconnected

    from servicelog.asgi import RequestContextMiddleware

    scope = {"type": "websocket", "path": "/slow", "headers": [], "query_string": b""}
    with pytest.raises(ClientDisconnected):
        await RequestContextMiddleware(app)(scope, receive, send)
    servicelog.flush()
    (record,) = access(sink)
    assert (record["http.response.status_code"], record["log.level"]) == (499, "warning")
    assert "event.outcome" not in record


@pytest.mark.parametrize(
    ("raised", "code", "reason", "level"),
    [
        (errors.NotFoundException("Order", 1), 1008, "Not Found", "warning"),
        (errors.DatabaseException(), 1011, "", "error"),
    ],
)
async def test_the_hierarchy_raised_after_a_websocket_handshake_closes_it(
    sink: MemorySink, raised: Exception, code: int, reason: str, level: str
) -> None:
    """After the handshake, no HTTP response can be sent (the server would refuse it, and its
    failure be logged a second time): the handler's answer is a close, logged once."""
    app = FastAPI()

    @app.websocket("/orders")
    async def orders(ws: WebSocket) -> None:
        await ws.accept()
        raise raised

    servicelog.fastapi.install(app)
    sent = await _ws_call(app, "/orders", [])
    assert sent[1:] == [{"type": "websocket.close", "code": code, "reason": reason}]
    servicelog.flush()
    logged = [r for r in sink.records if r["log.logger"] != "servicelog.access"]
    assert [r["log.level"] for r in logged] == [level]
    assert [r["http.response.status_code"] for r in access(sink)] == [101]


async def test_a_failing_handler_after_a_websocket_handshake_closes_it(
    sink: MemorySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handler itself fails after the handshake: its last-resort answer is a close too."""
    break_api_exception_handler(monkeypatch, sink)
    app = FastAPI()

    @app.websocket("/orders")
    async def orders(ws: WebSocket) -> None:
        await ws.accept()
        raise errors.NotFoundException("Order", 1)

    servicelog.fastapi.install(app)
    sent = await _ws_call(app, "/orders", [])
    assert sent[1:] == [{"type": "websocket.close", "code": 1011, "reason": ""}]


@pytest.mark.parametrize("when", ["denial", "no denial extension", "after the handshake"])
async def test_a_websocket_routes_validation_error_never_echoes_the_values(
    sink: MemorySink, when: str
) -> None:
    """FastAPI's own handler for ``WebSocketRequestValidationError`` (not a
    ``RequestValidationError``) closes the socket with the errors, submitted values and all, as
    the reason; servicelog's answers as for HTTP: a 422 in the error shape, or a close after
    the handshake, and a warning with ``loc``/``type``/``msg`` only."""
    from fastapi import Depends, Query

    app = FastAPI()

    async def accept_first(ws: WebSocket) -> WebSocket:
        if when == "after the handshake":
            await ws.accept()
        return ws

    @app.websocket("/orders")
    async def orders(ws: WebSocket = Depends(accept_first), pin: int = Query()) -> None:  # noqa: B008
        await ws.close()  # pragma: no cover - never valid here

    servicelog.fastapi.install(app)
    incoming = [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]
    sent: list[dict[str, Any]] = []

    async def receive() -> Any:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "websocket", "path": "/orders", "raw_path": b"/orders", "root_path": "",
        "query_string": b"pin=Hunter2SuperSecret", "headers": [(b"x-request-id", b"ws-422")],
        "scheme": "ws", "subprotocols": [], "state": {},
    }  # fmt: skip
    if when == "denial":
        scope["extensions"] = {"websocket.http.response": {}}
    try:
        await app(scope, receive, send)
    except Exception:  # no denial response without the extension: the server answers 403
        assert when == "no denial extension"
    assert "Hunter2SuperSecret" not in repr(sent)
    if when == "denial":
        start, body = sent
        assert (start["status"], json.loads(body["body"])["error"]["type"]) == (
            422,
            "WebSocketRequestValidationError",
        )
        assert json.loads(body["body"])["error"]["details"]["errors"] == [
            {"loc": ["query", "pin"], "type": "int_parsing", "msg": ANY}
        ]
    elif when == "after the handshake":
        assert sent[1:] == [{"type": "websocket.close", "code": 1008, "reason": ANY}]
    servicelog.flush()
    assert "Hunter2SuperSecret" not in json.dumps(sink.records)
    (warning,) = [r for r in sink.records if r["message"] == "Request validation failed"]
    assert warning["log.level"] == "warning" and warning["request_id"] == "ws-422"
    assert warning["validation.errors"][0]["loc"] == ["query", "pin"]


async def test_a_skipped_websocket_path_gets_no_access_record(sink: MemorySink) -> None:
    from servicelog.asgi import AccessLog

    app = FastAPI()

    @app.websocket("/live")
    async def live(ws: WebSocket) -> None:
        await ws.accept()
        await ws.close()

    servicelog.fastapi.install(app, access_log=AccessLog(skip={"/live"}))
    sent = await _ws_call(app, "/live", [])
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.close"]
    servicelog.flush()
    assert access(sink) == []
