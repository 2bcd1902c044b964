"""Against a real uvicorn process: its loggers go through the pipeline exactly once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_one_request(*options: str) -> tuple[list[dict[str, Any]], bytes]:
    """Start uvicorn on the test app with *options*, GET /hello once, stop it: its JSON
    records (stdout) and its stderr."""
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", "tests.apps.uvicorn_app:app", "--port", str(port)]
    proc = subprocess.Popen(
        [*command, *options],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/hello", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert response.json() == {"hello": "world"}
        time.sleep(0.3)  # let the writer flush
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    return [orjson.loads(line) for line in stdout.splitlines()], stderr


def test_uvicorn_lines_come_out_once_as_json() -> None:
    records, stderr = _serve_one_request()
    messages = Counter(r["message"] for r in records)
    assert messages["Application startup complete."] == 1
    assert messages["said hello"] == 1
    assert messages["library line"] == 1
    assert messages["Shutting down"] == 1
    assert sum(1 for m in messages if "GET /hello" in m) == 1  # uvicorn's access line, once
    assert all(r["service.name"] == "uvicorn-test" for r in records)
    startup = next(r for r in records if r["message"] == "Application startup complete.")
    assert startup["log.logger"] == "uvicorn.error"
    assert b"Application startup complete" not in stderr, "printed a second time by uvicorn"


def test_uvicorns_no_access_log_is_honoured() -> None:
    """``--no-access-log`` leaves uvicorn's access logger without a handler and not
    propagating: taking uvicorn's loggers over must not turn it back on."""
    records, _ = _serve_one_request("--no-access-log")
    messages = Counter(r["message"] for r in records)
    assert messages["said hello"] == 1 and messages["Application startup complete."] == 1
    assert not [r for r in records if r["log.logger"] == "uvicorn.access"]
