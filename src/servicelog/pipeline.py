"""The pipeline a record travels once a front-end has built it: processors, then sinks.

::

    front-end ─► record ─► processors (redaction, ...) ─► routes ─► sink.emit ─► render ─► write

A :class:`Route` pairs a sink with a minimum level and an optional filter (the error file, the
performance channel, a custom selection). The pipeline is immutable once built; ``configure()``
builds a new one and swaps it in, so a log call never sees half a configuration.

A front-end that runs in an event loop may hand records over with :meth:`Pipeline.defer`
instead: they travel the pipeline together, at the end of the loop's iteration (the access log
does this). Run once between two requests' framework code, the pipeline's code and data are
cold every time; run for a burst of records, they stay warm.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from contextvars import Context, copy_context

from . import _errors
from .record import Record

TYPE_CHECKING = False  # typing is imported only by type checkers: it costs ~8 ms at import

if TYPE_CHECKING:
    from typing import Any, Protocol

    from .sinks.base import Sink

    class EventLoop(Protocol):
        """Where a burst is scheduled (an asyncio event loop)."""

        def call_soon(self, callback: Callable[..., object], *args: Any) -> object: ...

        def is_running(self) -> bool: ...


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
    """Processors and routes, run as one chain of functions built per level.

    :meth:`emit_for` builds, once per level, the chain a record of that level takes: the
    processors that can act at that level, then the routes that take it. A processor that only
    acts from some level up (the rate limit: WARNING) says so with a ``min_level`` attribute, on
    itself or on the object its bound ``__call__`` belongs to. An object whose ``__call__`` is
    the processor may also offer ``fuse_emit(after) -> emit``, the processor and the rest of the
    chain as one function (redaction does: a Python call less per record).
    """

    def __init__(
        self,
        routes: Sequence[Route],
        processors: Sequence[Processor] = (),
        static: dict[str, Any] | None = None,
    ) -> None:
        self.routes = tuple(routes)
        self.processors = tuple(processors)
        # Deferring is allowed only when no sink shows a record before its writer thread writes
        # it anyway (buffered sinks; not a memory sink, not an interactive console).
        self.deferrable = bool(self.routes) and all(
            getattr(route.sink, "deferrable", False) is True for route in self.routes
        )
        self._deferred: list[tuple[Context, int, Callable[..., Record | None] | None, Any]] = []
        # Per thread (of this pipeline), the burst it scheduled last: ``[loop]`` until the burst
        # runs, then ``[]``. Per thread: a loop that is busy must not hold back another
        # thread's records. (Not the running loop asked per record: on Python 3.11
        # ``asyncio.get_running_loop()`` makes a getpid(2) system call.)
        self._local = threading.local()
        # One burst at a time, whole, and one taker of the deferred records at a time (producers
        # only append): flush() from another thread returns only once what was deferred before
        # it is emitted, and bursts keep their records' order (re-entrant: a processor or sink
        # may flush).
        self._run_lock = threading.RLock()
        _pipelines.add(self)
        # Static fields (service, ecs.version, pid) are not copied into every record: sinks that
        # render JSON append them pre-serialised (``bind_static``), which saves building and
        # encoding the same keys on every call.
        self.static: dict[str, Any] = dict(static or {})
        self._bind_static()
        by_level: dict[int, Callable[[Record, int], None]] = {}
        self._by_level = by_level
        emit_for = self.emit_for

        def emit(record: Record, levelno: int) -> None:
            """Send a record of any level down its level's chain."""
            chain = by_level.get(levelno)
            if chain is None:
                chain = emit_for(levelno)
            chain(record, levelno)

        self.emit: Callable[[Record, int], None] = emit

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
        """The chain for records of exactly *levelno* (a logger's level method calls it)."""
        chain = self._by_level.get(levelno)
        if chain is None:
            routes = tuple(r for r in self.routes if r.level <= levelno)
            chain = _fan_out(routes)
            for processor in reversed(self.processors):
                if _min_level(processor) <= levelno:
                    chain = _link(processor, chain)
            self._by_level[levelno] = chain
        return chain

    def defer(
        self,
        record: Record,
        levelno: int,
        running_loop: Callable[[], EventLoop],
    ) -> None:
        """Emit *record* a little later, in one burst with the others deferred meanwhile.

        The burst is scheduled with ``call_soon`` on the event loop *running_loop* returns
        (``asyncio.get_running_loop``); it is asked only when this thread has no burst pending
        on a running loop, and if it raises (no running loop), the burst runs now. The record
        travels the pipeline in the context it was deferred in (processors and filters see the
        same context variables). :meth:`flush`, :meth:`close`, ``servicelog.flush()`` and the
        exit drain run pending bursts first; a pipeline without :attr:`deferrable` sinks emits
        at once. Each thread schedules its own bursts: a loop that blocks holds back no other
        thread's records, and one that stops before its burst runs none of its own thread's
        later ones. (One case is left: a loop stopped with its burst pending and then run by
        another thread takes this thread's records into that burst, which waits for that
        thread's loop; :meth:`flush` and 1,024 waiting records still emit them.)
        """
        self.defer_build(None, record, levelno, running_loop)

    def defer_build(
        self,
        build: Callable[..., Record | None] | None,
        args: Any,
        levelno: int,
        running_loop: Callable[[], EventLoop],
    ) -> None:
        """:meth:`defer` for a record that ``build(*args)`` makes in the burst, in the context
        of this call (with *build* ``None``, *args* is the record). A builder that returns
        ``None`` emits nothing (it reports its own failure)."""
        if not self.deferrable:
            self._emit_built(levelno, build, args)
            return
        deferred = self._deferred
        deferred.append((copy_context(), levelno, build, args))
        try:
            burst = self._local.burst
        except AttributeError:  # this thread's first
            burst = None
        # A burst pending on a loop that runs: it takes this record too. (On a loop that
        # stopped first, it may never run: another is scheduled.)
        if burst and burst[0].is_running():
            if len(deferred) >= _MAX_DEFERRED:  # a loop that never ran the burst: do not hoard
                self.run_deferred()
            return
        try:
            loop = running_loop()
            burst = [loop]
            loop.call_soon(self._run_burst, burst)
        except Exception:  # no running loop (or a closed one): now
            self._local.burst = None
            self.run_deferred()
        else:
            self._local.burst = burst

    def _run_burst(self, burst: list[EventLoop]) -> None:
        """The scheduled burst: its thread may schedule the next one, then the records go."""
        burst.clear()
        self.run_deferred()

    def _emit_built(
        self, levelno: int, build: Callable[..., Record | None] | None, args: Any
    ) -> None:
        record = args if build is None else build(*args)
        if record is not None:  # a builder that failed has reported it already
            # The level's chain itself (what self.emit looks up): a Python call less.
            (self._by_level.get(levelno) or self.emit_for(levelno))(record, levelno)

    def run_deferred(self) -> None:
        """Emit the deferred records now, in order (any thread; safe to call at any time)."""
        deferred = self._deferred
        emit_built = self._emit_built
        with self._run_lock:
            while deferred:
                # Take a copy, then delete what was copied: records deferred meanwhile
                # (producers append without the lock) stay for the next round.
                burst = deferred[:]
                del deferred[: len(burst)]
                for context, levelno, build, args in burst:
                    try:
                        context.run(emit_built, levelno, build, args)
                    except Exception as exc:  # a builder, or a processor or filter of the user's
                        _errors.report("pipeline", exc)

    def flush(self) -> None:
        self.run_deferred()
        for route in self.routes:
            route.sink.flush()

    def drain(self, timeout: float) -> bool:
        """:meth:`flush`, within *timeout* seconds in all, even if a sink cannot write (a pipe
        nobody reads): each sink once, by its ``drain`` if it has one. ``True`` if every sink
        took its records in time."""
        self.run_deferred()
        deadline = time.monotonic() + timeout
        ok = True
        for sink in self._sinks():
            drain = getattr(sink, "drain", None)
            if drain is None:
                sink.flush()
            else:
                ok = drain(max(0.0, deadline - time.monotonic())) and ok
        return ok

    def close(self, timeout: float | None = None, keep: Iterable[object] = ()) -> None:
        """Emit the deferred records, then close each sink once, except those in *keep* (sinks
        a new configuration uses again)."""
        self.run_deferred()
        for sink in self._sinks(keep):
            sink.close(timeout)

    def _sinks(self, leave: Iterable[object] = ()) -> list[Any]:
        """The routes' sinks, each once, in route order, without those in *leave*."""
        seen = {id(sink) for sink in leave}
        sinks = []
        for route in self.routes:
            if id(route.sink) not in seen:
                seen.add(id(route.sink))
                sinks.append(route.sink)
        return sinks


#: Records a pipeline holds at most while it waits for its burst to be run.
_MAX_DEFERRED = 1024
_pipelines: weakref.WeakSet[Pipeline] = weakref.WeakSet()


def run_all_deferred() -> None:
    """Emit the records every pipeline deferred (at exit, before the sinks' final drain)."""
    for pipeline in list(_pipelines):
        pipeline.run_deferred()


def _forget_deferred_in_child() -> None:
    # The parent emits what it deferred; a forked child must not emit the same records again.
    for pipeline in list(_pipelines):
        pipeline._deferred.clear()
        pipeline._local = threading.local()  # the parent's loop runs none of the child's bursts
        pipeline._run_lock = threading.RLock()  # another parent thread may have held it


os.register_at_fork(after_in_child=_forget_deferred_in_child)


def _owner(processor: Processor) -> object:
    """The object a processor belongs to: the instance of a bound ``__call__``, else itself."""
    owner = getattr(processor, "__self__", None)
    if owner is not None and getattr(processor, "__name__", "") == "__call__":
        return owner
    return processor


def _min_level(processor: Processor) -> int:
    """The level below which *processor* passes every record through unchanged (0: none)."""
    level = getattr(_owner(processor), "min_level", 0)
    return level if isinstance(level, int) and not isinstance(level, bool) else 0


def _link(
    processor: Processor, after: Callable[[Record, int], None]
) -> Callable[[Record, int], None]:
    """*processor*, then *after* with what it returns (nothing if it returns ``None``)."""
    owner = _owner(processor)
    # Looked up on the class: a mock or an object with __getattr__ offers every name.
    if callable(getattr(type(owner), "fuse_emit", None)):
        fused: Callable[[Record, int], None] = owner.fuse_emit(after)  # type: ignore[attr-defined]
        return fused

    def step(record: Record, levelno: int) -> None:
        processed = processor(record, levelno)
        if processed is not None:
            after(processed, levelno)

    return step


def _fan_out(routes: tuple[Route, ...]) -> Callable[[Record, int], None]:
    """Hand a record to every route (whose level it is known to meet) that takes it."""
    if len(routes) == 1 and routes[0].filter is None:
        return routes[0].sink.emit  # the fast path: one sink, nothing in between
    if not routes:
        return _discard

    def fan_out(record: Record, levelno: int) -> None:
        for route in routes:
            if route.filter is None or route.filter(record):
                route.sink.emit(record, levelno)

    return fan_out


def _discard(record: Record, levelno: int) -> None:
    """No route takes records of this level."""
