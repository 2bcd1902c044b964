"""Against a real uvicorn process: what depends on the server."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from .servers import Server, access_by_path

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path)
    yield srv
    srv.kill()


@pytest.fixture
def streaming_server(tmp_path: Path) -> Iterator[Server]:
    """A real server of ``tests/apps/streaming_app.py`` (streamed bodies)."""
    srv = Server(tmp_path, "tests.apps.streaming_app:app")
    yield srv
    srv.kill()


@pytest.fixture
def websocket_server(tmp_path: Path) -> Iterator[Server]:
    """A real server of ``tests/apps/websocket_app.py`` (WebSocket routes)."""
    srv = Server(tmp_path, "tests.apps.websocket_app:app")
    yield srv
    srv.kill()


def test_every_response_of_a_real_server_carries_the_request_id(server: Server) -> None:
    responses = [
        httpx.get(server.url + path)
        for path in ("/items/1", "/items/999", "/boom", "/nowhere", "/limited")
    ]
    responses.append(httpx.delete(server.url + "/items/1"))
    responses.append(httpx.post(server.url + "/orders", json={"quantity": "many"}))
    statuses = [r.status_code for r in responses]
    assert statuses == [200, 404, 500, 404, 429, 405, 422]
    for r in responses:
        assert r.headers.get("x-request-id"), r
        if r.status_code >= 400:
            assert r.json()["error"]["request_id"] == r.headers["x-request-id"]
    assert "hunter2" not in responses[2].text
    records, stderr = server.stop()
    access = [
        r
        for r in records
        if r["log.logger"] == "servicelog.access" and r["url.path"] != "/health"  # sampled probe
    ]
    assert [r["http.response.status_code"] for r in access] == statuses
    assert not [r for r in records if r["log.logger"] == "uvicorn.access"], (
        "uvicorn's line replaced"
    )
    unhandled = [r for r in records if r.get("error.type") == "RuntimeError"]
    assert len(unhandled) == 1, "the unhandled exception is logged exactly once"
    assert b"Traceback" not in stderr and b"Exception in ASGI application" not in stderr


def test_shutdown_runs_both_lifespans_and_drains_the_file(server: Server) -> None:
    for i in range(50):
        httpx.get(server.url + f"/items/{1 + i % 2}")
    records, _ = server.stop()
    messages = [r["message"] for r in records]
    assert "shop starting" in messages and "shop stopping" in messages
    in_file = [orjson.loads(line) for line in server.file.read_bytes().splitlines()]
    items = [r for r in in_file if r.get("url.path", "").startswith("/items/")]
    assert len(items) == 50, "every access record reached the file before exit"
    assert "shop stopping" in [r["message"] for r in in_file]


def test_the_servers_last_lines_after_sigterm_are_written(server: Server) -> None:
    """uvicorn re-raises a SIGTERM it handled once it has shut down, and the signal's default
    action ends the process without ``atexit``: what uvicorn logs after the lifespan would
    stay in the buffer. The lifespan's end makes the sinks write each record at once."""
    httpx.get(server.url + "/items/1")
    records, _ = server.stop()
    assert server.proc.returncode == -signal.SIGTERM, "the exit still says: killed by SIGTERM"
    in_file = [orjson.loads(line) for line in server.file.read_bytes().splitlines()]
    for messages in ([r["message"] for r in records], [r["message"] for r in in_file]):
        assert "Application shutdown complete." in messages
        assert any(m.startswith("Finished server process") for m in messages), messages[-3:]


def test_a_body_failing_midway_is_logged_once_and_the_connection_closed(
    streaming_server: Server,
) -> None:
    """Catalog F14: the exception comes after the response started (a streamed body). No
    second response is sent: the client sees the body cut off (the connection closes before
    the last chunk). The exception is logged once, with its traceback and the request ID, and
    the access record says the request failed (``event.outcome``, level error)."""
    with httpx.stream("GET", streaming_server.url + "/stream") as response:
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        with pytest.raises(httpx.RemoteProtocolError):
            response.read()
    records, stderr = streaming_server.stop()
    failures = [r for r in records if r.get("error.type") == "RuntimeError"]
    assert len(failures) == 1, records
    assert failures[0]["request_id"] == request_id
    assert "the source went away" in failures[0]["error.stack_trace"]
    access = [r for r in records if r["log.logger"] == "servicelog.access"]
    streamed = [r for r in access if r["url.path"] == "/stream"]
    assert len(streamed) == 1
    assert streamed[0]["http.response.status_code"] == 200
    assert streamed[0]["event.outcome"] == "failure" and streamed[0]["log.level"] == "error"
    assert b"Traceback" not in stderr and b"Exception in ASGI application" not in stderr
    # uvicorn notes, once, that the response was not completed (true: the body was cut off),
    # with the request's ID
    others = [r for r in records if r["log.level"] == "error" and r not in failures + streamed]
    assert [r["message"] for r in others] == ["ASGI callable returned without completing response."]
    assert others[0]["request_id"] == request_id


def _raw(port: int, request: bytes) -> bytes:
    """Send *request* as it is (no client library would) and read the answer to the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_malformed_http_metadata_is_answered_and_logged_safely(server: Server) -> None:
    """Catalog I8, against a real server: invalid percent-encoding, non-UTF-8 and control
    characters in the path, secrets in an invalid query, a bad ``Content-Length``, a
    ``Content-Type`` mismatch and 100 KiB of headers. Every request gets an answer and never a
    500; what reaches the application gets the JSON error shape; the access records keep
    control characters as data (escaped in JSON), redact the query, and nothing is logged as
    an error."""
    end = b"Host: shop\r\nConnection: close\r\n\r\n"
    requests = {
        "bad percent-encoding": b"GET /items/%zz HTTP/1.1\r\n" + end,
        "non-UTF-8 after decoding": b"GET /items/%ff%fe HTTP/1.1\r\n" + end,
        "control characters": b"GET /items/%0a%1b[31m HTTP/1.1\r\n" + end,
        "raw non-UTF-8 bytes": b"GET /items/\xff\xfe HTTP/1.1\r\n" + end,
        "secrets in a bad query": b"GET /items/1?token=%zz&password=hunter2 HTTP/1.1\r\n" + end,
        "negative length": b"POST /orders HTTP/1.1\r\nContent-Length: -5\r\n" + end,
        "overflowing length": b"POST /orders HTTP/1.1\r\nContent-Length: 9" + b"9" * 30 + b"\r\n"
        + end,
        "type mismatch": b"POST /orders HTTP/1.1\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 9\r\n" + end[:-2] + b"\r\nnot json!",
        "100 KiB of headers": b"GET /items/1 HTTP/1.1\r\n"
        + b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 1000) for i in range(100))
        + end,
    }  # fmt: skip
    for name, request in requests.items():
        answer = _raw(server.port, request)
        status = int(answer.split(b" ", 2)[1])
        assert status in (200, 400, 404, 422), (name, answer[:200])
        if b"x-request-id" in answer.lower() and status >= 400:  # answered by the application
            body = orjson.loads(answer.split(b"\r\n\r\n", 1)[1])
            assert body["error"]["request_id"], name
    records, stderr = server.stop()
    assert b"Traceback" not in stderr and b"hunter2" not in stderr
    assert not [r for r in records if r["log.level"] in ("error", "critical")]
    paths = [r["url.path"] for r in records if r["log.logger"] == "servicelog.access"]
    assert "/items/%zz" in paths and "/items/\n\x1b[31m" in paths
    queries = [r.get("url.query") for r in records if r["log.logger"] == "servicelog.access"]
    assert "token=[REDACTED]&password=[REDACTED]" in queries
    assert "hunter2" not in server.file.read_text()
    assert "\\u001b[31m" in server.file.read_text()  # the escape, as data


def test_a_client_leaving_midway_is_one_access_record_and_no_error(
    streaming_server: Server,
) -> None:
    """Catalog F14, the client side: the client reads the start of a streamed body and closes
    the connection. One access record (the status sent, the bytes sent so far) and nothing at
    error level: a client leaving is not a failure of the service."""
    with socket.create_connection(("127.0.0.1", streaming_server.port), timeout=10) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: shop\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 200")
    time.sleep(1.5)  # the stream would take 1 s more: let the server notice and stop it
    records, stderr = streaming_server.stop()
    slow = [r for r in records if r.get("url.path") == "/slow"]
    assert len(slow) == 1 and slow[0]["http.response.status_code"] == 200, slow
    assert slow[0]["http.response.body.bytes"] < 50 * len(b"chunk 49\n")
    assert not [r for r in records if r["log.level"] in ("error", "critical")], records
    assert b"Traceback" not in stderr


def test_a_failing_websocket_app_is_logged_once_with_the_request_id_and_answered(
    websocket_server: Server,
) -> None:
    """uvicorn logged a WebSocket application's exception itself, without the request ID, and
    dropped an accepted connection without a close frame. Now: one error record with the
    request ID; an accepted connection is closed with 1011, and one not yet accepted gets the
    JSON 500 with the request ID, as an HTTP request does."""
    client = pytest.importorskip("websockets.sync.client")
    from websockets.exceptions import ConnectionClosedError, InvalidStatus

    url = f"ws://127.0.0.1:{websocket_server.port}"
    with client.connect(url + "/ws/echo", additional_headers={"X-Request-ID": "ws-ok"}) as ws:
        assert ws.response is not None and ws.response.headers["x-request-id"] == "ws-ok"
        ws.send("hi")
        assert ws.recv() == "hi"
    with client.connect(url + "/ws/crash", additional_headers={"X-Request-ID": "ws-crash"}) as ws:
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    with pytest.raises(InvalidStatus) as denied:
        client.connect(url + "/ws/early", additional_headers={"X-Request-ID": "ws-early"})
    response = denied.value.response
    assert response.status_code == 500 and response.headers["x-request-id"] == "ws-early"
    assert orjson.loads(response.body)["error"]["request_id"] == "ws-early"
    with pytest.raises(InvalidStatus) as silent:  # no accept, no denial: uvicorn's own 500
        client.connect(url + "/ws/silent")
    assert silent.value.response.status_code == 500
    with client.connect(url + "/ws/left") as ws:  # closed while the endpoint waits: no error
        ws.send("one")
    time.sleep(0.3)  # the server reads the close frame
    records, stderr = websocket_server.stop()
    failures = [r for r in records if r.get("error.type") == "RuntimeError"]
    assert sorted(r["request_id"] for r in failures) == ["ws-crash", "ws-early"]
    assert not [r for r in records if r["message"].startswith("Exception in ASGI application")]
    assert b"Traceback" not in stderr
    access = access_by_path(records)
    assert {path: r["http.response.status_code"] for path, r in access.items()} == {
        "/ws/echo": 101,
        "/ws/crash": 101,
        "/ws/early": 500,
        "/ws/silent": 500,
        "/ws/left": 101,
    }
    assert access["/ws/left"]["log.level"] == "info" and "event.outcome" not in access["/ws/left"]
    assert access["/ws/crash"]["event.outcome"] == "failure"
    # uvicorn's own WebSocket access lines (on its error logger) are replaced, as its HTTP ones
    uvicorn = [r["message"] for r in records if r["log.logger"] == "uvicorn.error"]
    replaced = ("[accepted]", "connection open", "connection closed")
    assert not [m for m in uvicorn if any(r in m for r in replaced)], uvicorn
    # (kept: the websockets library writes it also for a handshake refused before the app ran)
    assert "connection rejected (500 Internal Server Error)" in uvicorn
    # uvicorn's websockets-sansio protocol does not count a denial response as a completed
    # handshake, and would say so at error level: not after a denial response was sent, still
    # for the application that returned without an answer
    errors = [r["message"] for r in records if r["log.logger"] == "uvicorn.error"]
    errors = [m for m in errors if m.startswith(("ASGI", "Exception"))]
    assert errors == ["ASGI callable returned without completing handshake."], errors
