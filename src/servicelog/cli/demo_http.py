"""The FastAPI part of ``servicelog demo``: a real uvicorn server and a mix of requests.

The records are also written as ECS JSON lines to ``$XDG_CACHE_HOME/servicelog/demo/app.jsonl``
(``~/.cache/servicelog/demo/app.jsonl`` by default), which the demo names at the end for the
reader to look at. Every run overwrites it: one folder per user, not a new one per run. A run
holds an exclusive ``flock`` on ``.demo.lock`` in that folder; when the folder cannot be
created, or another demo holds the lock, the run says so in one line and uses a temporary
folder instead, removed at the end.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import servicelog

#: The lock file a running demo holds in its folder, so two demos never share a file.
LOCK_NAME = ".demo.lock"
#: How long the server may take to start.
START_TIMEOUT = 20.0

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


def _listening_socket() -> socket.socket:
    """A socket bound to a free port of 127.0.0.1, handed to uvicorn as it is: no other
    process can take the port between choosing it and serving on it."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 0))
    except OSError:
        sock.close()
        raise
    return sock


def demo_log_dir() -> Path:
    """The demo's folder for its JSON lines, the same on every run (under the user's cache)."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "servicelog" / "demo"


def _lock_folder(directory: Path) -> int:
    """Create *directory* and take the demo's lock in it; returns the lock's descriptor.

    Raises:
        BlockingIOError: when another demo holds the lock.
        OSError: when the folder or its lock file cannot be created.
    """
    import fcntl

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


@contextmanager
def _demo_folder(preferred: Path) -> Iterator[Path]:
    """The folder for this run's JSON lines: *preferred*, locked for the run; or, when it
    cannot be created or another demo is using it, a temporary folder removed at the end
    (said in one line)."""
    try:
        fd = _lock_folder(preferred)
    except BlockingIOError:
        reason = f"another servicelog demo is using {preferred}"
    except OSError as exc:
        reason = f"cannot use {preferred}: {exc.strerror or exc}"
    else:
        try:
            yield preferred
        finally:
            os.close(fd)  # releases the lock
        return
    temporary = Path(tempfile.mkdtemp(prefix="servicelog-demo-"))
    _say(f"({reason}; this run uses a temporary folder instead, removed at the end)")
    try:
        yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _configure(color: bool | None, json_file: Path | None) -> None:
    """The production profile (generic 500s, no locals) shown as console lines for reading,
    and, with *json_file*, written as ECS JSON to that file as a service would."""
    options: dict[str, Any] = {} if json_file is None else {"file": json_file}
    servicelog.configure(
        service="demo-shop",
        version="1.0.0",
        profile="production",
        format="console",
        stream="stdout",
        color=color,
        levels={"httpx": "WARNING", "httpcore": "WARNING"},
        **options,
    )


def _start_server(sock: socket.socket) -> tuple[Any, threading.Thread] | None:
    """Serve the example shop on *sock* in a thread; returns the server and its thread once
    it started, or ``None`` when it stopped (or hung) before starting."""
    import uvicorn

    from .demo_app import create_app

    config = uvicorn.Config(create_app(), log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        server.should_exit = True
        return None
    # What uvicorn logs when it binds the socket itself (it does not when handed one).
    logging.getLogger("uvicorn.error").info(
        "Uvicorn running on http://127.0.0.1:%d (Press CTRL+C to quit)", sock.getsockname()[1]
    )
    return server, thread


def _send_requests(base: str) -> None:
    """Send the demo's requests, printing each one and its response."""
    import httpx

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


def _serve_and_show(color: bool | None, json_file: Path, temporary: bool) -> int:
    """Run the server, send it the requests, name the JSON file; returns an exit status."""
    json_file.unlink(missing_ok=True)  # this run's records only (the file sink appends)
    _configure(color, json_file)
    with _listening_socket() as sock:
        started = _start_server(sock)
        if started is None:
            _say(
                "servicelog demo: the HTTP server did not start (see its log above); "
                "skipping the requests"
            )
            return 1
        server, thread = started
        _send_requests(f"http://127.0.0.1:{sock.getsockname()[1]}")
        server.should_exit = True
        thread.join(timeout=20)
    servicelog.flush()
    lines = json_file.read_bytes().splitlines() if json_file.exists() else []
    fate = "removed now, with its temporary folder" if temporary else "the next run overwrites it"
    _say(
        f"\nThe same records as ECS JSON lines, one per line: {json_file} "
        f"({len(lines)} lines; {fate})"
    )
    return 0


def run_http_demo(color: bool | None, log_dir: Path | None = None) -> int:
    """Serve the example shop with uvicorn in a thread, send it requests, show the logs;
    returns an exit status (1 when the server did not start)."""
    try:
        import httpx  # noqa: F401 - checks the optional dependencies are there
        import uvicorn  # noqa: F401

        from ..asgi.ids import new_request_id  # noqa: F401 - checks the ASGI layer imports
    except ImportError:
        sys.stdout.write(
            "(skipped: the FastAPI part needs pip install 'servicelog[fastapi]' httpx)\n"
        )
        return 0
    preferred = log_dir or demo_log_dir()
    with _demo_folder(preferred) as directory:
        try:
            return _serve_and_show(color, directory / "app.jsonl", directory != preferred)
        finally:
            _configure(color, None)  # closes the JSON file before its folder is unlocked


def _say(text: str) -> None:
    servicelog.flush()
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
