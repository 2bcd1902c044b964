from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi")

import servicelog
from servicelog.sinks import MemorySink

from ..conftest import NO_CAPTURE


@pytest.fixture
def sink() -> Iterator[MemorySink]:
    memory = MemorySink()
    servicelog.configure(service="shop", stream="none", sinks=[memory], capture=NO_CAPTURE)
    return memory


def make_app(**install: Any) -> Any:
    """A fresh example app with servicelog installed with *install* options."""
    from servicelog.cli.demo_app import create_app

    return create_app(**install)


@pytest.fixture
async def client(sink: MemorySink) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as c:
        yield c


def break_api_exception_handler(monkeypatch: pytest.MonkeyPatch, sink: MemorySink) -> None:
    """servicelog's handler for the hierarchy fails itself (``RuntimeError("handler bug")``),
    with failures counted, not raised, as in production."""
    from servicelog.asgi.handlers import ErrorHandlers

    async def broken(self: Any, request: Any, exc: Any) -> Any:
        raise RuntimeError("handler bug")

    monkeypatch.setattr(ErrorHandlers, "api_exception", broken)
    servicelog.configure(stream="none", sinks=[sink], capture=NO_CAPTURE, strict=False)


#: Fields whose values are made by chance (times, durations, random IDs, the pid): a leak
#: check for a short number ("1987") would fail whenever one of them happened to contain it.
_CHANCE_FIELDS = frozenset(
    {"@timestamp", "event.duration", "request_id", "trace.id", "span.id", "process.pid"}
)


def logged_text(records: list[dict[str, Any]]) -> str:
    """The records as text for a leak check, without the fields made by chance."""
    return repr([{k: v for k, v in r.items() if k not in _CHANCE_FIELDS} for r in records])
