"""A real ASGI server process for the tests that depend on the server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A real server process of *app* (uvicorn, or hypercorn: ``command`` and its options
    before the bind address) in production mode, its JSON lines on stdout."""

    def __init__(
        self,
        tmp_path: Path,
        app: str = "servicelog.cli.demo_app:app",
        command: tuple[str, ...] = ("uvicorn",),
    ) -> None:
        self.port = _free_port()
        self.file = tmp_path / "app.jsonl"
        env = {
            **os.environ,
            "SERVICELOG_ENV": "production",
            "SERVICELOG_FILE": str(self.file),
            "PYTHONUNBUFFERED": "1",
        }
        bind = ["--port", str(self.port)]
        if command[0] == "hypercorn":
            bind = ["--bind", f"127.0.0.1:{self.port}"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *command, app, *bind],
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
                    tail = err.decode()[-2000:]
                    raise RuntimeError(f"{command[0]} did not start: {tail}") from None
                time.sleep(0.1)

    def stop(self) -> tuple[list[dict[str, Any]], bytes]:
        self.proc.send_signal(signal.SIGTERM)
        stdout, stderr = self.proc.communicate(timeout=30)
        return [orjson.loads(line) for line in stdout.splitlines()], stderr

    def kill(self) -> None:
        """End the server at once if the test left it running."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def access_by_path(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The access records of *records* by path, without the health probe's (it is sampled)."""
    return {
        r["url.path"]: r
        for r in records
        if r["log.logger"] == "servicelog.access" and r["url.path"] != "/health"
    }
