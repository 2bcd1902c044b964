"""The pipeline a record travels once a front-end has built it: processors, then sinks.

::

    front-end ─► record ─► processors (redaction, ...) ─► routes ─► sink.emit ─► render ─► write

A :class:`Route` pairs a sink with a minimum level and an optional filter (the error file, the
performance channel, a custom selection). The pipeline is immutable once built; ``configure()``
builds a new one and swaps it in, so a log call never sees half a configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .record import Record

if TYPE_CHECKING:
    from .sinks.base import Sink

__all__ = ["Pipeline", "Processor", "Route"]

#: A processor takes a record and its level and returns the record (changed or not), or
#: ``None`` to drop it.
Processor = Callable[[Record, int], Record | None]


class Route:
    """Send records at *level* or above that pass *filter* to *sink*."""

    __slots__ = ("filter", "level", "sink")

    def __init__(
        self, sink: Sink, level: int = 0, filter: Callable[[Record], bool] | None = None
    ) -> None:
        self.sink = sink
        self.level = level
        self.filter = filter

    def __repr__(self) -> str:
        return f"Route({self.sink!r}, level={self.level}, filter={self.filter!r})"


class Pipeline:
    """Processors and routes, with ``emit(record, levelno)`` specialised for the common case.

    A processor that only acts from some level up (the rate limit: WARNING) says so with a
    ``min_level`` attribute, on itself or on the object its bound method belongs to;
    :meth:`emit_for` leaves it out of the path of lower levels altogether.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        processors: Sequence[Processor] = (),
        static: dict[str, Any] | None = None,
    ) -> None:
        self.routes = tuple(routes)
        self.processors = tuple(processors)
        # Static fields (service, ecs.version, pid) are not copied into every record: sinks that
        # render JSON append them pre-serialised (``bind_static``), which saves building and
        # encoding the same keys on every call.
        self.static: dict[str, Any] = dict(static or {})
        self._bind_static()
        self._by_level: dict[int, Callable[[Record, int], None]] = {}
        self.emit: Callable[[Record, int], None] = self._build(self.processors, self.routes)

    def _bind_static(self) -> None:
        for route in self.routes:
            bind = getattr(route.sink, "bind_static", None)
            if bind is not None:
                bind(self.static)

    def update_static(self, **fields: Any) -> None:
        """Change static fields (the pid after ``fork()``) and tell the sinks."""
        self.static.update(fields)
        self._bind_static()

    def emit_for(self, levelno: int) -> Callable[[Record, int], None]:
        """``emit`` for records of exactly *levelno* (a logger's level method calls this one):
        the processors and routes that cannot apply at that level are left out."""
        emit = self._by_level.get(levelno)
        if emit is None:
            processors = tuple(p for p in self.processors if _min_level(p) <= levelno)
            routes = tuple(r for r in self.routes if r.level <= levelno)
            emit = self._by_level[levelno] = self._build(processors, routes, checked=True)
        return emit

    @staticmethod
    def _build(
        processors: tuple[Processor, ...], routes: tuple[Route, ...], checked: bool = False
    ) -> Callable[[Record, int], None]:
        """The emit function; *checked*: every route's level is known to be met."""
        if not routes and not processors:
            return _discard
        if not processors and len(routes) == 1 and routes[0].filter is None:
            route = routes[0]
            if checked or route.level <= 0:
                return route.sink.emit  # the fast path: one sink, nothing in between
            sink_emit, floor = route.sink.emit, route.level

            def emit_one(record: Record, levelno: int) -> None:
                if levelno >= floor:
                    sink_emit(record, levelno)

            return emit_one

        if len(processors) == 1 and len(routes) == 1 and routes[0].filter is None:
            # The common production shape (redaction, one sink): no loops.
            only, sink_emit = processors[0], routes[0].sink.emit
            floor = -1 if checked else routes[0].level

            def emit_processed(record: Record, levelno: int) -> None:
                processed = only(record, levelno)
                if processed is not None and levelno >= floor:
                    sink_emit(processed, levelno)

            return emit_processed

        def emit(record: Record, levelno: int) -> None:
            for process in processors:
                processed = process(record, levelno)
                if processed is None:
                    return
                record = processed
            for route in routes:
                if levelno >= route.level and (route.filter is None or route.filter(record)):
                    route.sink.emit(record, levelno)

        return emit

    def flush(self) -> None:
        for route in self.routes:
            route.sink.flush()

    def close(self, timeout: float | None = None) -> None:
        seen: set[int] = set()
        for route in self.routes:
            if id(route.sink) not in seen:
                seen.add(id(route.sink))
                route.sink.close(timeout)


def _min_level(processor: Processor) -> int:
    """The level below which *processor* passes every record through unchanged (0: none)."""
    owner = getattr(processor, "__self__", processor)
    level = getattr(owner, "min_level", 0)
    return level if isinstance(level, int) else 0


def _discard(record: Record, levelno: int) -> None:
    """Nothing takes records of this level."""
