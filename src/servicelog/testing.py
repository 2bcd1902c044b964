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

import threading
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


class _CaptureSink(MemorySink):
    """A capture's memory sink: it takes nothing once its block has ended (a later block that
    overlapped it may still route records to it)."""

    open = True

    def emit(self, record: Record, levelno: int) -> None:
        if self.open:
            super().emit(record, levelno)


class _Capture:
    """One live ``capture_logs`` block: the runtime it installed, the runtime to restore when
    it ends, and the capture routes of its runtime (its own and the enclosing blocks')."""

    __slots__ = ("logs", "routes", "runtime", "saved", "sink")

    def __init__(
        self, runtime: Runtime, saved: Runtime, routes: tuple[Route, ...], sink: _CaptureSink
    ) -> None:
        self.runtime = runtime
        self.saved = saved
        self.routes = routes
        self.sink = sink
        self.logs = CapturedLogs(sink)
        sink.records = self.logs  # records land straight in the list the block gets


# The live blocks, oldest first. Each one's ``saved`` is the runtime of the block before it (or,
# for the first, the runtime from before any capture), so blocks that overlap without nesting
# (two tasks, two threads) each put back what the stack says, whichever order they end in.
_active: list[_Capture] = []
_active_lock = threading.Lock()


@contextmanager
def capture_logs(*, level: int | str | None = None, only: bool = True) -> Iterator[CapturedLogs]:
    """Capture the records logged inside the block.

    Blocks nest: the records of an inner block reach the enclosing blocks too (so the
    ``servicelog_logs`` fixture sees the whole test), and the inner block's *level* applies
    to all of them while it lasts. Blocks that overlap without nesting (two tasks or threads)
    each see what is logged while they are open, and the configuration from before the first
    one is back once both have ended, whichever ends first.

    A ``configure()`` or ``reset()`` inside the block (an app factory under test) ends the
    capture there: later records go to the configuration it made, which stays in force after
    the block. The one from before the block is not put back, and its sinks are not closed
    either (they are drained at exit, or closed by ``reset()``).

    Args:
        level: the lowest level to capture, for every logger name and every front-end
            (servicelog's API, stdlib ``logging``, structlog, loguru) for the block; the
            per-logger ``levels`` do not apply meanwhile (default: the configured levels).
        only: capture *instead of* writing to the configured sinks (default) or as well.
    """
    capture = _begin(level, only)
    try:
        yield capture.logs
    finally:
        _end(capture)


def _begin(level: int | str | None, only: bool) -> _Capture:
    """Install a capturing runtime built on the current one, and push it on the stack."""
    from ._config import settings
    from .levels import parse_level

    levelno = parse_level(level) if level is not None else None
    current = settings()
    sink = _CaptureSink(JsonRenderer(current.output.max_line_bytes if current else 16384))
    own = Route(sink)
    with _active_lock:
        previous = current_runtime()
        enclosing = _active[-1].routes if _active and _active[-1].runtime is previous else ()
        routes = [*previous.pipeline.routes, own] if not only else [*enclosing, own]
        pipeline = Pipeline(routes, previous.pipeline.processors, previous.pipeline.static)
        runtime = Runtime(
            pipeline,
            level=levelno if levelno is not None else previous.level,
            levels={} if levelno is not None else dict(previous.levels),
            callsite=previous.callsite,
            show_locals=previous.show_locals,
        )
        capture = _Capture(runtime, previous, (*enclosing, own), sink)
        _active.append(capture)
        install_runtime(runtime)
        apply_levels(runtime)  # the other front-ends' own level filters follow
    return capture


def _end(capture: _Capture) -> None:
    """Take *capture* off the stack and, if its runtime is in force, put back the one the stack
    says; one that ends before a later block hands that block what it had saved."""
    with _active_lock:
        capture.sink.open = False
        for index, live in enumerate(_active):
            if live is capture:
                del _active[index]
                if index < len(_active) and _active[index].saved is capture.runtime:
                    _active[index].saved = capture.saved
                break
        if current_runtime() is capture.runtime:  # else configure()/reset() ran: keep theirs
            install_runtime(capture.saved)
            apply_levels(capture.saved)


try:  # the pytest plugin part: only defined when pytest is importable
    import pytest

    @pytest.fixture
    def servicelog_logs() -> Iterator[CapturedLogs]:
        """The records logged during the test (a list of dicts, plus ``.lines``)."""
        with capture_logs() as logs:
            yield logs

except ImportError:  # pragma: no cover - pytest is not a runtime dependency
    pass
