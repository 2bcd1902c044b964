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
