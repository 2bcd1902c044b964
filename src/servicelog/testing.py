"""Helpers for testing code that logs with servicelog (and a pytest plugin).

>>> from servicelog.testing import capture_logs
>>> with capture_logs() as logs:
...     get_logger("shop").info("order placed", order_id=7)
>>> logs[0]["message"], logs[0]["order_id"]
('order placed', 7)

Under pytest the ``servicelog_logs`` fixture does the same for the whole test.
``capture_logs`` sees every front-end (stdlib, structlog, loguru, ...) when servicelog has been
configured, and its *level* applies to all of them; it keeps the configured sinks writing too
with ``only=False``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .frontends._build import apply_levels
from .logger import Runtime, current_runtime, install_runtime
from .pipeline import Pipeline, Route
from .record import Record
from .render.json import JsonRenderer
from .sinks.memory import MemorySink

__all__ = ["CapturedLogs", "capture_logs", "servicelog_logs"]


class CapturedLogs(list[Record]):
    """The records captured, in order (a ``list`` of dicts), plus their JSON lines."""

    def __init__(self, sink: MemorySink) -> None:
        super().__init__()
        self._sink = sink

    @property
    def lines(self) -> list[bytes]:
        """Each record as the JSON line a file sink would write."""
        return list(self._sink.lines)

    def messages(self) -> list[str]:
        return [str(r.get("message", "")) for r in self]

    def at(self, level: str) -> list[Record]:
        """The records at *level* (``"info"``, ``"error"``, ...)."""
        return [r for r in self if r.get("log.level") == level]


@contextmanager
def capture_logs(*, level: int | str | None = None, only: bool = True) -> Iterator[CapturedLogs]:
    """Capture the records logged inside the block.

    A ``configure()`` or ``reset()`` inside the block (an app factory under test) ends the
    capture there: later records go to the configuration it made, which stays in force after
    the block (the one from before the block is not put back: its sinks are closed).

    Args:
        level: the lowest level to capture, for every logger name and every front-end
            (servicelog's API, stdlib ``logging``, structlog, loguru) for the block; the
            per-logger ``levels`` do not apply meanwhile (default: the configured levels).
        only: capture *instead of* writing to the configured sinks (default) or as well.
    """
    from .levels import parse_level

    previous = current_runtime()
    from ._config import settings

    current = settings()
    sink = MemorySink(JsonRenderer(current.output.max_line_bytes if current else 16384))
    captured = CapturedLogs(sink)
    routes = [Route(sink)] if only else [*previous.pipeline.routes, Route(sink)]
    pipeline = Pipeline(routes, previous.pipeline.processors, previous.pipeline.static)
    runtime = Runtime(
        pipeline,
        level=parse_level(level) if level is not None else previous.level,
        levels={} if level is not None else dict(previous.levels),
        callsite=previous.callsite,
        show_locals=previous.show_locals,
    )
    install_runtime(runtime)
    apply_levels(runtime)  # the other front-ends' own level filters follow

    sink.records = captured  # records land straight in the returned list
    try:
        yield captured
    finally:
        if current_runtime() is runtime:  # else configure()/reset() ran inside: keep theirs
            install_runtime(previous)
            apply_levels(previous)


try:  # the pytest plugin part: only defined when pytest is importable
    import pytest

    @pytest.fixture
    def servicelog_logs() -> Iterator[CapturedLogs]:
        """The records logged during the test (a list of dicts, plus ``.lines``)."""
        with capture_logs() as logs:
            yield logs

except ImportError:  # pragma: no cover - pytest is not a runtime dependency
    pass
