"""The sink interface, and a base class for sinks that write batches of bytes.

A departure from the architecture note, on purpose: the pipeline hands a sink one record at a
time (``emit``) and the sink batches internally, because a per-call batch object costs more on
the caller than it saves. ``write_batch`` is the batch interface the writer side uses.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from .. import _errors
from ..record import Record

__all__ = ["BufferedSink", "Sink"]


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
    """Renders records to bytes on the caller, buffers them, writes whole lines in batches.

    A batch is written when ``batch_records`` lines are buffered, at once for records at
    ``flush_level`` or above (ERROR by default, so a crash right after an error loses nothing
    that mattered), every ``flush_interval`` seconds from a shared background thread, before a
    ``fork()`` and at exit. Producers only append to a ``deque`` (atomic under the GIL), so
    emitting takes no lock.

    Subclasses implement :meth:`write_batch`.
    """

    name = "buffered"

    def __init__(
        self,
        renderer: Callable[[Record], bytes],
        *,
        batch_records: int = 256,
        flush_level: int = 40,
        interactive: bool = False,
    ) -> None:
        self.renderer = renderer
        self.batch_records = batch_records
        self.flush_level = 0 if interactive else flush_level
        self._buffer: deque[bytes] = deque()
        self._flush_lock = threading.Lock()
        self._closed = False
        self.written = 0
        self.lost = 0
        _register(self)

    def emit(self, record: Record, levelno: int) -> None:
        buffer = self._buffer
        buffer.append(self.renderer(record))
        if levelno >= self.flush_level or len(buffer) >= self.batch_records:
            self.flush()

    def flush(self) -> None:
        buffer = self._buffer
        if not buffer:
            return
        with self._flush_lock:
            n = len(buffer)
            if not n:
                return
            popleft = buffer.popleft
            lines = [popleft() for _ in range(n)]
            try:
                self.write_batch(b"".join(lines))
            except Exception as exc:
                self.lost += n
                _errors.report(f"sink {self.name}", exc, lost=n)
            else:
                self.written += n

    def write_batch(self, data: bytes) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self, timeout: float | None = None) -> None:
        if self._closed:
            return
        self.flush()
        self._closed = True
        _unregister(self)
        self.release()

    def release(self) -> None:
        """Release the underlying resource (after the final flush)."""

    def _after_fork_in_child(self) -> None:
        # The parent flushed before forking; anything here was appended concurrently by another
        # parent thread and belongs to the parent: never write it twice.
        self._buffer.clear()
        self._flush_lock = threading.Lock()


# --- one background flusher for every buffered sink in the process ----------------------------
_sinks: weakref.WeakSet[BufferedSink] = weakref.WeakSet()
_state_lock = threading.Lock()
_wake = threading.Event()
_thread: threading.Thread | None = None
FLUSH_INTERVAL = 0.2


def _register(sink: BufferedSink) -> None:
    global _thread
    with _state_lock:
        _sinks.add(sink)
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="servicelog-flusher", daemon=True)
            _thread.start()


def _unregister(sink: BufferedSink) -> None:
    with _state_lock:
        _sinks.discard(sink)


def flush_all() -> None:
    for sink in list(_sinks):
        try:
            sink.flush()
        except Exception:  # pragma: no cover - flush() guards itself
            pass


def _run() -> None:
    while not _wake.wait(FLUSH_INTERVAL):
        flush_all()


def _before_fork() -> None:
    flush_all()


def _after_fork_in_child() -> None:
    global _thread, _state_lock
    _state_lock = threading.Lock()
    _thread = None
    sinks = list(_sinks)
    for sink in sinks:
        sink._after_fork_in_child()
    if sinks:
        _thread = threading.Thread(target=_run, name="servicelog-flusher", daemon=True)
        _thread.start()


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
atexit.register(flush_all)
