"""An application that returns without an answer, against real servers: answered (a 500 in
the error format, logged once) while its client is there; a 499 without an error once the
client has gone, whether or not the application read the request body (hypercorn queues the
unread body ahead of the disconnect; uvicorn answers the disconnect first), however large (the
middleware reads past it), or the disconnect itself (hypercorn delivers it once)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from .servers import Server

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "server_name", ["uvicorn", "uvicorn --loop asyncio --http h11", "hypercorn"]
)
def test_no_answer_is_a_500_for_a_waiting_client_and_a_499_for_one_that_left(
    tmp_path: Path, server_name: str
) -> None:
    pytest.importorskip(server_name.split()[0])
    server = Server(tmp_path, "tests.apps.no_answer_app:app", command=tuple(server_name.split()))
    try:
        response = httpx.get(server.url + "/now/")
        assert response.status_code == 500
        assert response.json()["error"]["request_id"] == response.headers["x-request-id"]
        # One that asked for 100 Continue and waits: still there, so answered.
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(
                b"PUT /now/ HTTP/1.1\r\nHost: shop\r\nExpect: 100-continue\r\n"
                b"Content-Length: 5000\r\n\r\n"
            )
            answer = b""
            while b"HTTP/1.1 500 " not in answer and (part := sock.recv(65536)):
                answer += part  # (hypercorn sends its 100 Continue first, unasked)
        assert b"HTTP/1.1 500 " in answer, answer[:200]
        body = b"x" * 2_000_000  # ~30 of hypercorn's messages, ~60 of uvicorn's
        for request in (
            b"GET /poll/ HTTP/1.1\r\nHost: shop\r\n\r\n",
            b"GET /wait/ HTTP/1.1\r\nHost: shop\r\n\r\n",
            b"POST /poll/ HTTP/1.1\r\nHost: shop\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
            # A client that asked for 100 Continue and left before it came.
            b"PUT /poll/ HTTP/1.1\r\nHost: shop\r\nExpect: 100-continue\r\n"
            b"Content-Length: 5000\r\n\r\n",
        ):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(request)
                time.sleep(0.1)
        time.sleep(1.5)  # the long polls return, and the unread body is read past
        records, _ = server.stop()
    finally:
        server.kill()
    access = {
        (r["http.request.method"], r["url.path"]): r
        for r in records
        if r["log.logger"] == "servicelog.access" and r["url.path"] != "/health"
    }
    statuses = {key: r["http.response.status_code"] for key, r in access.items()}
    assert statuses == {
        ("GET", "/now/"): 500,
        ("PUT", "/now/"): 500,
        ("GET", "/poll/"): 499,
        ("POST", "/poll/"): 499,
        ("PUT", "/poll/"): 499,
        ("GET", "/wait/"): 499,
    }
    errors = [r for r in records if r.get("error.type", "").endswith("NoResponseError")]
    assert [r["url.path"] for r in errors] == ["/now/", "/now/"]
    assert errors[0]["request_id"] == response.headers["x-request-id"]


def test_a_reset_http2_upload_does_not_block_its_connections_other_streams(
    tmp_path: Path,
) -> None:
    """hypercorn over HTTP/2: an upload stream reset with more unread body frames than its
    queue holds (10) waits to put its disconnect behind them; the middleware reads on to it,
    so the connection's next stream is answered (it used to stop once the stream said closed,
    and the whole connection stayed blocked)."""
    pytest.importorskip("hypercorn")  # (which brings h2)
    from h2.config import H2Configuration
    from h2.connection import H2Connection
    from h2.errors import ErrorCodes
    from h2.events import ResponseReceived

    server = Server(tmp_path, "tests.apps.no_answer_app:app", command=("hypercorn",))
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            conn = H2Connection(H2Configuration(client_side=True))
            conn.initiate_connection()
            head = [(":scheme", "http"), (":authority", "shop")]
            conn.send_headers(
                1, [(":method", "POST"), (":path", "/poll/"), *head, ("content-length", "99999")]
            )
            for _ in range(12):
                conn.send_data(1, b"z" * 1000)
            sock.sendall(conn.data_to_send())
            time.sleep(0.1)
            conn.reset_stream(1, ErrorCodes.CANCEL)
            conn.send_headers(3, [(":method", "GET"), (":path", "/now/"), *head], end_stream=True)
            sock.sendall(conn.data_to_send())
            status = None
            deadline = time.monotonic() + 5
            while status is None and time.monotonic() < deadline:
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    break
                if not data:
                    break
                for event in conn.receive_data(data):
                    if isinstance(event, ResponseReceived) and event.stream_id == 3:
                        status = dict(event.headers)[b":status"]
                sock.sendall(conn.data_to_send())
        time.sleep(1.0)  # the long poll returns
        records, _ = server.stop()
    finally:
        server.kill()
    assert status == b"500"
    access = {
        r["url.path"]: r["http.response.status_code"]
        for r in records
        if r["log.logger"] == "servicelog.access" and r["url.path"] != "/health"
    }
    assert access == {"/poll/": 499, "/now/": 500}
