"""Canary sweep (catalog item I6, the non-HTTP places): a unique ``CANARY-<uuid4>`` planted as
the secret in exception messages, local variables, extras with odd key spellings, bytes values
and nested JSON-like dicts, logged through servicelog's own API and the stdlib, structlog and
loguru front-ends, must never appear in the log file or on the console.

The HTTP places (headers, query strings, URL userinfo, bodies) are swept with the FastAPI app.

A secret is only findable when something marks it: a key (``password=...``, ``{"token": ...}``),
a scheme (``Bearer ...``) or a format (a JWT, a provider key). ``f"login failed for {pw}"``
alone is indistinguishable from any other word; the sweep plants secrets the way applications
actually log them, next to their name.
"""

from __future__ import annotations

import io
import logging
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import servicelog

structlog = pytest.importorskip("structlog")
loguru = pytest.importorskip("loguru")

ALL_FRONTENDS = servicelog.CaptureOptions(
    stdlib=True, warnings=False, excepthooks=False, structlog=True, loguru=True
)


class Canaries:
    """Hands out canaries, remembering where each was planted."""

    def __init__(self) -> None:
        self.planted: dict[str, str] = {}

    def __call__(self, place: str) -> str:
        canary = f"CANARY-{uuid.uuid4()}"
        self.planted[canary] = place
        return canary


def fields_for(new: Canaries, frontend: str) -> dict[str, Any]:
    """Extras with odd key spellings, bytes values and nested JSON-like dicts."""
    return {
        "apiKey": new(f"{frontend}: extra apiKey"),
        "API-KEY": new(f"{frontend}: extra API-KEY"),
        "X-Auth-Token": new(f"{frontend}: extra X-Auth-Token"),
        "user.password": new(f"{frontend}: extra user.password"),
        "Client_Secret": new(f"{frontend}: extra Client_Secret"),
        "session_token": new(f"{frontend}: bytes value").encode(),
        "raw_body": f"password={new(f'{frontend}: bytes body')}&user=bob".encode(),
        "request": {
            "json": {"user": {"name": "bob", "Password": new(f"{frontend}: nested password")}},
            "headers": {
                "Authorization": f"Bearer {new(f'{frontend}: nested Authorization')}",
                "Cookie": f"sid={new(f'{frontend}: nested Cookie')}",
            },
            "items": [{"card": "4111 1111 1111 1111", "cvv": new(f"{frontend}: cvv in list")}],
            "dsn": f"postgres://app:{new(f'{frontend}: DSN password')}@db:5432/shop",
        },
    }


def failing_login(new: Canaries, frontend: str) -> None:
    """Raise with a secret in the exception message and in local variables."""
    password = new(f"{frontend}: local password")  # noqa: F841 - locals are the point
    secret = new(f"{frontend}: local secret")  # noqa: F841
    key = new(f"{frontend}: local key")  # noqa: F841
    api_key = new(f"{frontend}: local bytes api_key").encode()  # noqa: F841
    payload = {"user": "bob", "token": new(f"{frontend}: local dict token")}  # noqa: F841
    # (inline: a secret kept in a local named "message" would be printed with the locals)
    raise PermissionError(f"login failed: password={new(f'{frontend}: exception message')}")


def failing_with_dict(new: Canaries, frontend: str) -> None:
    raise KeyError({"api_key": new(f"{frontend}: exception dict arg")})


def failing_with_header(new: Canaries, frontend: str) -> None:
    raise ConnectionError(f"upstream said 401 to Authorization: Bearer {new(frontend + ': exc')}")


FAILURES = (failing_login, failing_with_dict, failing_with_header)


def log_everything(new: Canaries) -> None:
    # servicelog's own API
    log = servicelog.get_logger("canary.api")
    log.info("servicelog api", **fields_for(new, "api"))
    log.warning(f"connecting to redis://:{new('api: message userinfo')}@cache:6379")
    for fail in FAILURES:
        try:
            fail(new, "api")
        except Exception:
            log.exception("api failed")
    # the standard library
    std = logging.getLogger("canary.stdlib")
    std.info("stdlib", extra=fields_for(new, "stdlib"))
    std.warning("token=%s rejected", new("stdlib: %-argument"))
    for fail in FAILURES:
        try:
            fail(new, "stdlib")
        except Exception:
            std.exception("stdlib failed")
    # structlog
    slog = structlog.get_logger("canary.structlog")
    slog.info("structlog", **fields_for(new, "structlog"))
    for fail in FAILURES:
        try:
            fail(new, "structlog")
        except Exception:
            slog.exception("structlog failed")
    # loguru, both bind() and the guide's extra={...}
    from loguru import logger

    logger.bind(**fields_for(new, "loguru bind")).info("loguru")
    logger.info("loguru extra", extra=fields_for(new, "loguru extra"))
    for fail in FAILURES:
        try:
            fail(new, "loguru")
        except Exception:
            logger.exception("loguru failed")


def run_sweep(
    profile: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **options: Any
) -> tuple[Canaries, str]:
    """Log everything with *profile* to a file and the console; return all output text."""
    console = io.StringIO()
    monkeypatch.setattr(sys, "stderr", console)
    monkeypatch.setattr(sys, "stdout", console)
    log_file = tmp_path / f"{profile}.jsonl"
    servicelog.configure(
        profile=profile,
        file=log_file,
        capture=ALL_FRONTENDS,
        level="DEBUG",
        stream="stderr",
        **options,
    )
    new = Canaries()
    log_everything(new)
    servicelog.flush()
    servicelog.reset()
    return new, log_file.read_text() + console.getvalue()


@pytest.mark.parametrize("profile", ["development", "production"])
def test_no_canary_reaches_any_output(
    profile: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Zero hits in the JSON file and the console, for every place and every front-end."""
    canaries, output = run_sweep(profile, tmp_path, monkeypatch)
    assert len(canaries.planted) >= 90
    leaked = {place for canary, place in canaries.planted.items() if canary in output}
    assert leaked == set()
    assert "[REDACTED]" in output and "bob" in output, "the records themselves were written"
    if profile == "development":
        assert "user = 'bob'" in output or "'user': 'bob'" in output, "locals were captured"


def test_the_sweep_would_see_a_leak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: with redaction off, every planted canary is found in the output, so the
    sweep above is looking in the right places."""
    canaries, output = run_sweep("development", tmp_path, monkeypatch, redaction=False)
    missing = {place for canary, place in canaries.planted.items() if canary not in output}
    assert missing == set()


def test_show_locals_with_a_canary_in_every_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chained exception (``raise ... from``) shows the locals of every frame of both."""
    new = Canaries()

    def inner() -> None:
        token = new("inner local token")  # noqa: F841
        raise ValueError("inner")

    def outer() -> None:
        db_password = new("outer local db_password")  # noqa: F841
        try:
            inner()
        except ValueError as exc:
            raise RuntimeError(f"secret={new('chained message')}") from exc

    canaries_seen: Callable[[str], list[str]] = lambda text: [  # noqa: E731
        c for c in new.planted if c in text
    ]
    console = io.StringIO()
    monkeypatch.setattr(sys, "stderr", console)
    servicelog.configure(profile="development", file=tmp_path / "x.jsonl")
    try:
        outer()
    except RuntimeError:
        servicelog.get_logger("t").exception("chained")
    servicelog.flush()
    output = (tmp_path / "x.jsonl").read_text() + console.getvalue()
    assert "Traceback" in output and "db_password = '[REDACTED]'" in output
    assert canaries_seen(output) == []
