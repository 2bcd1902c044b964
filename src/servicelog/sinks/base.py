"""The sink interface, and a base class for sinks that write bytes in batches off the caller.

A departure from the architecture note, on purpose: the pipeline hands a sink one record at a
time (``emit``) and the sink batches internally, because a per-call batch object costs more on
the caller than it saves. ``write_batch`` is the batch interface the writer side uses.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from orjson import dumps as _dumps

from .. import _errors
from ..record import Record
from ..render.json import JsonRenderer
from ..render.json import default as _default

__all__ = ["BufferedSink", "JsonLinesSink", "Sink"]


@runtime_checkable
class Sink(Protocol):
    """What a sink must offer. Records are already redacted when they reach it."""

    name: str

    def emit(self, record: Record, levelno: int) -> None:
        """Accept one record (caller's thread; cheap; never raises)."""

    def flush(self) -> None:
        """Write out whatever is buffered."""

    def close(self, timeout: float | None = None) -> None:
        """Flush and release resources; safe to call twice."""


class BufferedSink:
    """Renders each record on the caller into one shared ``bytearray``; a writer thread writes
    the buffer out in batches of whole lines.

    Why a ``bytearray``: appending to it is a single C call, atomic under the GIL, so producers
    take no lock; and each rendered line is copied in and freed at once. Keeping hundreds of
    rendered ``bytes`` objects alive until a batch is written made ``orjson.dumps`` 4-6x slower
    here (fresh memory for every line), which a batch of ``bytes`` in a list or deque does.

    Why a writer thread: ``write(2)`` releases the GIL, so on a multi-core machine the copy into
    the page cache runs beside the application instead of on its request path.

    The writer wakes every ``flush_interval`` seconds, as soon as ``batch_bytes`` are buffered,
    and at once for a record at ``flush_level`` or above (ERROR by default). Everything buffered
    is written before a ``fork()`` and at exit. If the writer falls ``max_buffer_bytes`` behind,
    the caller writes the batch itself (back-pressure, not loss). On a terminal every line is
    written at once, on the caller.

    Subclasses implement :meth:`write_batch`.
    """

    name = "buffered"

    def __init__(
        self,
        renderer: Callable[[Record], bytes],
        *,
        batch_bytes: int = 65536,
        max_buffer_bytes: int = 8 * 1024 * 1024,
        flush_interval: float = 0.1,
        flush_level: int = 40,
        interactive: bool = False,
    ) -> None:
        self.renderer = renderer
        self.batch_bytes = batch_bytes
        self.max_buffer_bytes = max_buffer_bytes
        self.flush_interval = flush_interval
        self.flush_level = flush_level
        self.interactive = interactive
        self._buffer = bytearray()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.written = 0
        self.lost = 0
        _sinks.add(self)
        if not interactive:
            self._start_writer()

    def emit(self, record: Record, levelno: int) -> None:
        buffer = self._buffer
        buffer += self.renderer(record)
        self._after_append(buffer, levelno)

    def _after_append(self, buffer: bytearray, levelno: int) -> None:
        if self.interactive:
            self.flush()
        elif len(buffer) >= self.batch_bytes or levelno >= self.flush_level:
            if len(buffer) >= self.max_buffer_bytes:
                self.flush()  # the writer is behind: write on the caller rather than grow
            else:
                self._wake.set()

    def flush(self) -> None:
        """Write everything buffered now (any thread)."""
        if not self._buffer:
            return
        with self._flush_lock:
            buffer = self._buffer
            if not buffer:
                return
            # Only whole lines are ever in the buffer; take them and leave later appends.
            data = bytes(buffer)
            del buffer[: len(data)]
            try:
                self.write_batch(data)
            except Exception as exc:
                lost = data.count(b"\n")
                self.lost += lost
                _errors.report(f"sink {self.name}", exc, lost=lost)
            else:
                self.written += data.count(b"\n")

    def write_batch(self, data: bytes) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self, timeout: float | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout if timeout is not None else 5.0)
        self.flush()
        _sinks.discard(self)
        self.release()

    def release(self) -> None:
        """Release the underlying resource (after the final flush)."""

    @property
    def queued_bytes(self) -> int:
        return len(self._buffer)

    # --- the writer thread --------------------------------------------------------------------
    def _start_writer(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"servicelog-writer[{self.name}]", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        wake = self._wake
        while not self._closed:
            wake.wait(self.flush_interval)
            wake.clear()
            self.flush()

    def _after_fork_in_child(self) -> None:
        # The parent wrote its buffer before forking; anything here was appended concurrently
        # by another parent thread and belongs to the parent: never write it twice.
        self._buffer.clear()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        if not self.interactive and not self._closed:
            self._start_writer()


_sinks: weakref.WeakSet[BufferedSink] = weakref.WeakSet()


def flush_all() -> None:
    """Write out every buffered sink in the process."""
    for sink in list(_sinks):
        try:
            sink.flush()
        except Exception:  # pragma: no cover - flush() guards itself
            pass


def _after_fork_in_child() -> None:
    for sink in list(_sinks):
        sink._after_fork_in_child()


os.register_at_fork(before=flush_all, after_in_child=_after_fork_in_child)
atexit.register(flush_all)


class JsonLinesSink(BufferedSink):
    """A :class:`BufferedSink` of JSON lines, with the renderer's fast path inlined."""

    renderer: JsonRenderer

    def __init__(self, renderer: JsonRenderer, **options: Any) -> None:
        super().__init__(renderer, **options)
        self._max_body = renderer.max_line_bytes - len(renderer.tail) + 1
        self._tail = renderer.tail

    def bind_static(self, static: Mapping[str, Any]) -> None:
        """Take the pipeline's static fields (appended to every line)."""
        self.renderer.bind_static(static)
        self._tail = self.renderer.tail
        self._max_body = self.renderer.max_line_bytes - len(self._tail) + 1

    def emit(self, record: Record, levelno: int) -> None:
        try:
            body = _dumps(record, default=_default)
        except Exception:
            line = self.renderer.slow(record)
        else:
            if body.isascii() and len(body) <= self._max_body:
                line = body[:-1] + self._tail
            else:
                line = self.renderer.finish(record, body[:-1] + self._tail)
        buffer = self._buffer
        buffer += line
        if self.interactive or len(buffer) >= self.batch_bytes or levelno >= self.flush_level:
            self._after_append(buffer, levelno)
