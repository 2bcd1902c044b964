from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import servicelog
from servicelog.sinks import MemorySink

#: Configure no front-end beyond servicelog's own API unless a test asks for it.
NO_CAPTURE = servicelog.CaptureOptions(
    stdlib=False, warnings=False, excepthooks=False, structlog=False, loguru=False
)


@pytest.fixture(autouse=True)
def _reset_servicelog() -> Iterator[None]:
    """Every test starts and ends unconfigured, with an empty context."""
    servicelog.reset()
    yield
    servicelog.reset()


@pytest.fixture
def memory() -> MemorySink:
    return MemorySink()


@pytest.fixture
def configure_memory(memory: MemorySink) -> Any:
    """Configure servicelog with only a memory sink; returns a function taking configure()'s
    keyword arguments, and the sink's records are at ``memory.records``."""

    def run(**kwargs: Any) -> MemorySink:
        kwargs.setdefault("stream", "none")
        kwargs.setdefault("capture", NO_CAPTURE)
        kwargs.setdefault("service", "shop")
        servicelog.configure(sinks=[memory], **kwargs)
        return memory

    return run
