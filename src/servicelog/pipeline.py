"""The pipeline a record travels once a front-end has built it: processors, then sinks.

::

    front-end ─► record ─► processors (redaction, ...) ─► routes ─► sink.emit ─► render ─► write

A :class:`Route` pairs a sink with a minimum level and an optional filter (the error file, the
performance channel, a custom selection). The pipeline is immutable once built; ``configure()``
builds a new one and swaps it in, so a log call never sees half a configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .record import Record
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
    """Processors and routes, with ``emit(record, levelno)`` specialised for the common case."""

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
        self.emit: Callable[[Record, int], None] = self._build()

    def _bind_static(self) -> None:
        for route in self.routes:
            bind = getattr(route.sink, "bind_static", None)
            if bind is not None:
                bind(self.static)

    def update_static(self, **fields: Any) -> None:
        """Change static fields (the pid after ``fork()``) and tell the sinks."""
        self.static.update(fields)
        self._bind_static()

    def _build(self) -> Callable[[Record, int], None]:
        routes, processors = self.routes, self.processors
        if not processors and len(routes) == 1 and routes[0].filter is None:
            route = routes[0]
            if route.level <= 0:
                return route.sink.emit  # the fast path: one sink, nothing in between
            sink_emit, floor = route.sink.emit, route.level

            def emit_one(record: Record, levelno: int) -> None:
                if levelno >= floor:
                    sink_emit(record, levelno)

            return emit_one

        if len(processors) == 1 and len(routes) == 1 and routes[0].filter is None:
            # The common production shape (redaction, one sink): no loops.
            only, sink_emit, floor = processors[0], routes[0].sink.emit, routes[0].level

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
