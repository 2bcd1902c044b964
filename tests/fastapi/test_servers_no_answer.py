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
        body = b"x" * 2_000_000  # ~30 of hypercorn's messages, ~60 of uvicorn's
        for request in (
            b"GET /poll/ HTTP/1.1\r\nHost: shop\r\n\r\n",
            b"GET /wait/ HTTP/1.1\r\nHost: shop\r\n\r\n",
            b"POST /poll/ HTTP/1.1\r\nHost: shop\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
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
        ("GET", "/poll/"): 499,
        ("POST", "/poll/"): 499,
        ("GET", "/wait/"): 499,
    }
    errors = [r for r in records if r.get("error.type", "").endswith("NoResponseError")]
    assert [r["request_id"] for r in errors] == [response.headers["x-request-id"]]
