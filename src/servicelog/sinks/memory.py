"""An in-memory sink for tests: keeps each record (a copy) and, optionally, its JSON line."""

from __future__ import annotations

from collections.abc import Callable

from ..record import Record

__all__ = ["MemorySink"]


class MemorySink:
    """Collect records in :attr:`records` (and rendered lines in :attr:`lines`)."""

    name = "memory"

    def __init__(self, renderer: Callable[[Record], bytes] | None = None) -> None:
        self.renderer = renderer
        self.records: list[Record] = []
        self.lines: list[bytes] = []

    def emit(self, record: Record, levelno: int) -> None:
        self.records.append(dict(record))
        if self.renderer is not None:
            self.lines.append(self.renderer(record))

    def flush(self) -> None:
        return None

    def close(self, timeout: float | None = None) -> None:
        return None
