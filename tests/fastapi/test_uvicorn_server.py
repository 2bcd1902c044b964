"""Against a real uvicorn process: what depends on the server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, tmp_path: Path, app: str = "servicelog.cli.demo_app:app") -> None:
        self.port = _free_port()
        self.file = tmp_path / "app.jsonl"
        env = {
            **os.environ,
            "SERVICELOG_ENV": "production",
            "SERVICELOG_FILE": str(self.file),
            "PYTHONUNBUFFERED": "1",
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                app,
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(self.url + "/health", timeout=1)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    _out, err = self.proc.communicate(timeout=5)
                    raise RuntimeError(f"uvicorn did not start: {err.decode()[-2000:]}") from None
                time.sleep(0.1)

    def stop(self) -> tuple[list[dict[str, Any]], bytes]:
        self.proc.send_signal(signal.SIGTERM)
        stdout, stderr = self.proc.communicate(timeout=30)
        return [orjson.loads(line) for line in stdout.splitlines()], stderr


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path)
    yield srv
    if srv.proc.poll() is None:
        srv.proc.kill()
        srv.proc.wait()


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


def test_a_body_failing_midway_is_logged_once_and_the_connection_closed(tmp_path: Path) -> None:
    """Catalog F14: the exception comes after the response started (a streamed body). No
    second response is sent: the client sees the body cut off (the connection closes before
    the last chunk). The exception is logged once, with its traceback and the request ID, and
    the access record says the request failed (``event.outcome``, level error)."""
    server = Server(tmp_path, "tests.apps.streaming_app:app")
    try:
        with httpx.stream("GET", server.url + "/stream") as response:
            assert response.status_code == 200
            request_id = response.headers["x-request-id"]
            with pytest.raises(httpx.RemoteProtocolError):
                response.read()
        records, stderr = server.stop()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
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
    # uvicorn notes, once, that the response was not completed (true: the body was cut off).
    others = [r for r in records if r["log.level"] == "error" and r not in failures + streamed]
    assert [r["message"] for r in others] == ["ASGI callable returned without completing response."]
