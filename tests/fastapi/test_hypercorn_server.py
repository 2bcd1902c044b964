"""Against a real hypercorn process: the middleware is the server's ASGI application, whatever
the server; and hypercorn's own logging, which it sets up after the application is imported,
comes out through servicelog only (no plain-text line on stdout or stderr)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from .servers import Server, access_by_path

pytestmark = pytest.mark.slow
pytest.importorskip("hypercorn")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    # hypercorn's access log on stdout, where servicelog's JSON lines go: replaced
    srv = Server(tmp_path, command=("hypercorn", "--access-logfile", "-"))
    yield srv
    srv.kill()


def test_every_response_carries_the_request_id_and_only_json_reaches_the_console(
    server: Server,
) -> None:
    responses = [
        httpx.get(server.url + path) for path in ("/items/1", "/items/999", "/boom", "/nowhere")
    ]
    responses.append(httpx.post(server.url + "/orders", json={"quantity": "many"}))
    statuses = [r.status_code for r in responses]
    assert statuses == [200, 404, 500, 404, 422]
    for r in responses:
        assert r.headers.get("x-request-id"), r
        if r.status_code >= 400:
            assert r.json()["error"]["request_id"] == r.headers["x-request-id"]
    server.proc.terminate()
    stdout, stderr = server.proc.communicate(timeout=30)
    records = [orjson.loads(line) for line in stdout.splitlines()]  # every line is JSON
    assert stderr == b"", "hypercorn's own handler printed nothing"
    # its lines came through servicelog, once each: the first one too
    started = [r for r in records if r["message"].startswith("Running on")]
    assert [r["log.logger"] for r in started] == ["hypercorn.error"]
    assert not [r for r in records if r["log.logger"] == "hypercorn.access"], "replaced"
    access = [
        r
        for r in records
        if r["log.logger"] == "servicelog.access" and r["url.path"] != "/health"  # sampled probe
    ]
    assert [r["http.response.status_code"] for r in access] == statuses
    assert [r["request_id"] for r in access] == [r.headers["x-request-id"] for r in responses]
    unhandled = [r for r in records if r.get("error.type") == "RuntimeError"]
    assert len(unhandled) == 1, "the unhandled exception is logged exactly once"
    in_file = [orjson.loads(line) for line in server.file.read_bytes().splitlines()]
    assert "shop stopping" in [r["message"] for r in in_file], "the lifespan drained the file"
    assert len([r for r in in_file if r["log.logger"] == "servicelog.access"]) >= len(statuses)


def test_a_streamed_body_cut_off_and_a_client_leaving_midway(tmp_path: Path) -> None:
    """The application failing after its response started: logged once with the request ID,
    the access record a failure. A client leaving a stream: one record, no error."""
    server = Server(tmp_path, "tests.apps.streaming_app:app", command=("hypercorn",))
    try:
        with httpx.stream("GET", server.url + "/stream") as response:
            request_id = response.headers["x-request-id"]
            with pytest.raises(httpx.RemoteProtocolError):
                response.read()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: shop\r\n\r\n")
            assert sock.recv(64).startswith(b"HTTP/1.1 200")
        time.sleep(1.5)  # the stream would take 1 s more: let the server notice and stop it
        records, stderr = server.stop()
    finally:
        server.kill()
    assert stderr == b""
    failures = [r for r in records if r.get("error.type") == "RuntimeError"]
    assert [r["request_id"] for r in failures] == [request_id]
    access = {r["url.path"]: r for r in records if r["log.logger"] == "servicelog.access"}
    assert access["/stream"]["event.outcome"] == "failure"
    assert access["/slow"]["http.response.status_code"] == 200
    assert "event.outcome" not in access["/slow"]
    errors = [r for r in records if r["log.level"] in ("error", "critical")]
    assert errors == [*failures, access["/stream"]], errors


def test_websocket_connections(tmp_path: Path) -> None:
    """Accepted, failing after the handshake (closed 1011), failing before it (the JSON 500
    with the request ID), and left by the client (no error): one access record each."""
    client = pytest.importorskip("websockets.sync.client")
    from websockets.exceptions import ConnectionClosedError, InvalidStatus

    server = Server(tmp_path, "tests.apps.websocket_app:app", command=("hypercorn",))
    try:
        url = f"ws://127.0.0.1:{server.port}"
        with client.connect(url + "/ws/echo", additional_headers={"X-Request-ID": "ws-ok"}) as ws:
            assert ws.response is not None and ws.response.headers["x-request-id"] == "ws-ok"
            ws.send("hi")
            assert ws.recv() == "hi"
        headers = {"X-Request-ID": "ws-crash"}
        with client.connect(url + "/ws/crash", additional_headers=headers) as ws:
            with pytest.raises(ConnectionClosedError) as closed:
                ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
        with pytest.raises(InvalidStatus) as denied:
            client.connect(url + "/ws/early", additional_headers={"X-Request-ID": "ws-early"})
        assert denied.value.response.status_code == 500
        assert orjson.loads(denied.value.response.body)["error"]["request_id"] == "ws-early"
        with client.connect(url + "/ws/left") as ws:
            ws.send("one")
        time.sleep(0.3)  # the server reads the close frame
        records, stderr = server.stop()
    finally:
        server.kill()
    assert stderr == b""
    failures = [r for r in records if r.get("error.type") == "RuntimeError"]
    assert sorted(r["request_id"] for r in failures) == ["ws-crash", "ws-early"]
    access = access_by_path(records)
    statuses = {path: r["http.response.status_code"] for path, r in access.items()}
    assert statuses == {"/ws/echo": 101, "/ws/crash": 101, "/ws/early": 500, "/ws/left": 101}
    assert "event.outcome" not in access["/ws/left"]
    assert access["/ws/crash"]["event.outcome"] == "failure"
