"""An in-memory sink for tests: keeps each record (a copy) and, optionally, its JSON line."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..record import Record

__all__ = ["MemorySink"]


class MemorySink:
    """Collect records in :attr:`records` (and rendered lines in :attr:`lines`)."""

    name = "memory"

    def __init__(self, renderer: Callable[[Record], bytes] | None = None) -> None:
        self.renderer = renderer
        self.records: list[Record] = []
        self.lines: list[bytes] = []
        self.static: dict[str, Any] = {}

    def bind_static(self, static: Mapping[str, Any]) -> None:
        """Take the pipeline's static fields: each kept record carries them, as a line does."""
        self.static = dict(static)
        bind = getattr(self.renderer, "bind_static", None)
        if bind is not None:
            bind(static)

    def emit(self, record: Record, levelno: int) -> None:
        self.records.append({**record, **self.static})
        if self.renderer is not None:
            self.lines.append(self.renderer(record))

    def flush(self) -> None:
        return None

    def close(self, timeout: float | None = None) -> None:
        return None
