"""The FastAPI part of ``servicelog demo``: a real uvicorn server and a mix of requests.

The records are also written as ECS JSON lines to ``$XDG_CACHE_HOME/servicelog/demo/app.jsonl``
(``~/.cache/servicelog/demo/app.jsonl`` by default), which the demo names at the end for the
reader to look at. Every run overwrites it: one folder per user, not a new one per run.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path

import servicelog

REQUESTS = [
    ("GET", "/items/1", None, "an ordinary request"),
    ("GET", "/items/999", None, "a NotFoundException: 404 in the error envelope"),
    ("POST", "/orders", {"item_id": "x", "quantity": 0, "card_number": "4111111111111111"},
     "invalid input: 422 listing loc/type/msg, never the values sent"),
    ("POST", "/orders", {"item_id": 1, "quantity": 2, "card_number": "4111111111111111"},
     "a sync dependency binds user_id: it reaches the endpoint and the access line"),
    ("GET", "/limited", None, "a RateLimitException: 429 with Retry-After"),
    ("GET", "/boom", None, "an unhandled exception: a generic 500, logged once with its traceback"),
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_log_dir() -> Path:
    """The demo's folder for its JSON lines, the same on every run (under the user's cache)."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "servicelog" / "demo"


def run_http_demo(color: bool | None, log_dir: Path | None = None) -> int:
    """Serve the example shop with uvicorn in a thread, send it requests, show the logs."""
    try:
        import httpx
        import uvicorn

        from ..asgi.ids import new_request_id  # noqa: F401 - checks the ASGI layer imports
    except ImportError:
        sys.stdout.write(
            "(skipped: the FastAPI part needs pip install 'servicelog[fastapi]' httpx)\n"
        )
        return 0
    directory = log_dir or demo_log_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    json_file = directory / "app.jsonl"
    json_file.unlink(missing_ok=True)  # this run's records only (the file sink appends)
    # The production profile (generic 500s, no locals), shown as console lines for reading,
    # and written as ECS JSON to a file as a service would.
    servicelog.configure(
        service="demo-shop",
        version="1.0.0",
        profile="production",
        format="console",
        stream="stdout",
        color=color,
        file=json_file,
        levels={"httpx": "WARNING", "httpcore": "WARNING"},
    )
    from .demo_app import create_app

    app = create_app()
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=10) as client:
        for method, path, body, what in REQUESTS:
            _say(f"{method} {path}  -- {what}")
            response = client.request(method, path, json=body)
            _say(
                f"  -> {response.status_code} X-Request-ID: {response.headers.get('x-request-id')}"
            )
            if response.status_code >= 400:
                _say(f"     {response.text}")
            time.sleep(0.05)
        _say("GET /items/1 with X-Request-ID: '<script>alert(1)</script>'  -- a hostile ID")
        response = client.get("/items/1", headers={"X-Request-ID": "<script>alert(1)</script>"})
        _say(f"  -> {response.status_code} X-Request-ID: {response.headers.get('x-request-id')}")
        time.sleep(0.05)
    server.should_exit = True
    thread.join(timeout=20)
    servicelog.flush()
    lines = json_file.read_bytes().splitlines() if json_file.exists() else []
    _say(
        f"\nThe same records as ECS JSON lines, one per line: {json_file} ({len(lines)} lines;"
        " the next run overwrites it)"
    )
    return 0


def _say(text: str) -> None:
    servicelog.flush()
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
