"""The sink interface, and a base class for sinks that write bytes in batches off the caller.

A departure from the architecture note, on purpose: the pipeline hands a sink one record at a
time (``emit``) and the sink batches internally, because a per-call batch object costs more on
the caller than it saves. ``write_batch`` is the batch interface the writer side uses.

Accounting is exact, per sink: every record handed to ``emit`` is either written or dropped,
and every drop is counted by reason (``produced == written + sum(dropped.values()) +
queued_records`` at any moment, and ``queued_records == 0`` after a drain)::

    queue_full      the buffer was full and the overflow policy is "drop"
    block_timeout   the buffer stayed full for block_timeout seconds (policy "block")
    write_error     the write failed (full disk, read-only or deleted directory, ...)
    closed          a record arrived after close()

After drops, a ``log.dropped`` summary record per reason (``servicelog.dropped.count`` and
``.reason``) is written as soon as a write succeeds again, the way journald reports what its
rate limit suppressed. Every drop also counts in ``servicelog.stats()["lost"]`` and is
reported on stderr, at most once a minute per sink and reason.
"""

from __future__ import annotations

import atexit
import itertools
import os
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from orjson import dumps as _dumps

from .. import _errors
from ..exceptions import ConfigError
from ..record import Record, format_timestamp
from ..render.json import SAFE as _SAFE
from ..render.json import JsonRenderer
from ..render.json import default as _default

if TYPE_CHECKING:
    import signal
    from types import FrameType

    _Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

__all__ = [
    "DRAIN_TIMEOUT",
    "BufferedSink",
    "JsonLinesSink",
    "PartialWrite",
    "Sink",
    "drain_all",
    "install_signal_handlers",
]

#: The longest, in seconds, that draining every sink may take at exit or on a signal.
DRAIN_TIMEOUT = 5.0

Overflow = Literal["block", "drop"]


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


class PartialWrite(OSError):
    """``write_batch`` failed after the first *written* lines of the batch reached the file.

    Sinks raise it so that the accounting stays exact: those lines count as written, the rest
    of the batch as lost.
    """

    def __init__(self, written: int, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror, cause.filename)
        self.written = written


class BufferedSink:
    """Renders each record on the caller into one line (``bytes``) appended to a shared list;
    a writer thread takes the lines in batches and writes each batch with one call.

    Why a list: ``list.append`` is a single C call, atomic under the GIL, so producers take no
    lock; the writer takes the first *n* lines with a slice and deletes exactly those, so lines
    appended meanwhile stay; and *n* is the exact number of records taken. (A shared
    ``bytearray`` was used first: counting the newlines of each batch and the reallocations of
    a buffer that shrinks to nothing after every batch cost ~0.35 us per record here.)

    Why a writer thread: ``write(2)`` releases the GIL, so on a multi-core machine the copy into
    the page cache runs beside the application instead of on its request path.

    The writer wakes every ``flush_interval`` seconds, as soon as ``batch_bytes`` are buffered,
    and at once for a record at ``flush_level`` or above (ERROR by default). The buffer is
    bounded: at most ``max_records`` records and ``max_buffer_bytes`` bytes (plus one line per
    thread appending at the same instant). When it is full, ``overflow="block"`` makes the
    caller wait up to ``block_timeout`` seconds for the writer, then drop the record (and,
    until the writer takes a batch again, drop the next records at once: a hung disk costs a
    thread one timeout, not one per record); ``overflow="drop"`` drops it at once. Drops are
    counted (see the module docstring).

    Everything buffered is written before a ``fork()`` and drained at exit (at most
    ``DRAIN_TIMEOUT`` seconds in all; what is left is reported on stderr); after the exit
    drain, records are written at once, on the caller. A forked child starts empty and never
    writes its parent's records. On a terminal every line is written at once, on the caller.

    Subclasses implement :meth:`write_batch`.
    """

    name = "buffered"

    def __init__(
        self,
        renderer: Callable[[Record], bytes],
        *,
        batch_bytes: int = 1 << 20,
        max_buffer_bytes: int = 8 * 1024 * 1024,
        max_records: int = 100_000,
        overflow: Overflow = "block",
        block_timeout: float = 1.0,
        flush_interval: float = 0.1,
        flush_level: int = 40,
        interactive: bool = False,
    ) -> None:
        if overflow not in ("block", "drop"):
            raise ConfigError("overflow", overflow, "'block' or 'drop'")
        if max_records < 1 or max_buffer_bytes < 1:
            raise ConfigError(
                "max_records/max_buffer_bytes", (max_records, max_buffer_bytes), "positive sizes"
            )
        self.renderer = renderer
        self.batch_bytes = batch_bytes
        self.max_buffer_bytes = max_buffer_bytes
        self.max_records = max_records
        self.overflow = overflow
        self.block_timeout = block_timeout
        self.flush_interval = flush_interval
        self.flush_level = flush_level
        self.interactive = interactive
        self._lines: list[bytes] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        self._reset_state()
        _sinks.add(self)
        # A multiprocessing child that makes its sinks itself ("forkserver", "spawn": the main
        # module's configure() runs again there) registers its own exit drain; a forkserver
        # child ends with os._exit(), and no fork hook of its parent's ran for it.
        _watch_multiprocessing()
        if not interactive:
            self._start_writer()

    def _reset_state(self) -> None:
        """Fresh locks, events and counters (at start, and in a forked child)."""
        self._flush_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._wake = threading.Event()
        self._space = threading.Event()
        # Notified when the writer has written a batch: a drain waits on it (no polling).
        # Re-entrant: a signal handler's drain may interrupt a drain holding it (waiting on
        # it releases every level, so the writer can still notify).
        self._taken = threading.Condition(threading.RLock())
        # Records the writer took from the queue, and of those, the ones whose write is over
        # (written or failed): set by whoever writes (under the flush lock) only. A drain
        # waits for the second to reach the first plus the queue's length at its call.
        self._taken_n = 0
        self._done_n = 0
        # The fast path admits record number n while n <= _admit and the buffer has room:
        # ``itertools.count`` is one C call, exact under the GIL (a ``+= 1`` is not).
        self._seq = itertools.count(1)
        self._left = 0  # records that left the queue: taken by the writer, or dropped
        self._drain_stuck_at = -1  # _done_n when a drain last waited in vain for the writer
        self._timeout_said_at = 0.0  # when a drain's timeout was last reported on stderr
        self._admit = self.max_records
        # Lines are appended while below _room; the writer is woken at _wake_bytes. _bytes counts
        # the bytes waiting. Producers add to it without a lock, so it is approximate (a
        # producer preempted mid-update may add a line the writer already took, or undo a
        # reset): the writer sets it again at every batch, so the error never builds up.
        self._bytes = 0
        self._room = self.max_buffer_bytes
        self._wake_bytes = 0 if self.interactive or self._closed else self.batch_bytes
        self.written = 0
        self.dropped: Counter[str] = Counter()
        self._pending: Counter[str] = Counter()  # drops not yet summarised in the output
        self._reported: Counter[str] = Counter()  # the drops already in stats()["lost"]
        self._stalled = False  # a blocked caller timed out; cleared when the writer takes data
        self._flusher = 0  # the thread writing a batch now (threading.get_ident), else 0

    @property
    def deferrable(self) -> bool:
        """Records may reach this sink a little later, in bursts (:meth:`Pipeline.defer`): its
        lines wait for the writer thread anyway. Not when interactive (written at once)."""
        return not self.interactive

    # --- the caller's side --------------------------------------------------------------------
    def emit(self, record: Record, levelno: int) -> None:
        self._add(self.renderer(record), levelno)

    def _add(self, line: bytes, levelno: int) -> None:
        n = next(self._seq)
        if n <= self._admit and self._bytes < self._wake_bytes and levelno < self.flush_level:
            self._lines.append(line)
            self._bytes += len(line)
        else:
            self._add_slow(n, line, levelno)

    def _add_slow(self, n: int, line: bytes, levelno: int) -> None:
        """Record number *n* needs more than an append: a wake-up, a flush, or room."""
        if n <= self._admit and self._bytes < self._room:
            self._lines.append(line)
            self._bytes += len(line)
            self._after_append()
        else:
            self._overflow(n, line)

    def _after_append(self) -> None:
        if self.interactive or self._closed:
            # Not when logged by code the batch's write calls (a custom rotation function):
            # the flush lock is ours already, so flushing would deadlock. The next batch (or
            # close()'s last one) takes the record.
            if self._flusher != threading.get_ident():
                self.flush()
            return
        self._ensure_writer()  # a dead writer is restarted (the slow path: cheap here)
        if not self._wake.is_set():
            # Event.set() takes a lock even when already set. No wake-up is lost: the line is
            # appended before this check, and the writer clears the event before taking lines.
            self._wake.set()

    def _overflow(self, n: int, line: bytes) -> None:
        """The buffer is full: wait for room (policy "block"), or drop the record."""
        reason = "queue_full"
        if self._room < 0:
            reason = "closed"
        elif self.interactive and self._flusher != threading.get_ident():
            # (Not when logged by code the write calls, see _after_append: that would deadlock.)
            self.flush()  # no writer thread: write on the caller, then take the record
            self._lines.append(line)
            self.flush()
            return
        elif self._stalled:
            reason = "block_timeout"  # one caller already waited in vain: do not wait again
            self._ensure_writer()
        elif (
            self.overflow == "block"
            and threading.current_thread() is not self._thread
            and self._flusher != threading.get_ident()  # it would wait for itself
        ):
            deadline = time.monotonic() + self.block_timeout
            self._ensure_writer()
            while True:
                self._space.clear()
                self._wake.set()
                # _admit moves up as the writer takes records (or others are dropped).
                if n <= self._admit and self._bytes < self._room:
                    self._lines.append(line)
                    self._bytes += len(line)
                    self._wake.set()
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._space.wait(remaining)
            reason = "block_timeout"
            # The writer is stuck (a hung disk, a lock held elsewhere): later records are
            # dropped at once until it takes a batch again, so a stall costs the application
            # one block_timeout per thread, not one per record.
            self._stalled = True
        self._drop(1, reason)

    def _drop(self, count: int, reason: str) -> None:
        with self._count_lock:
            # The writer reports drops (see _report_drops); a caller reports the first drop
            # since the last log.dropped summary itself, in case the writer cannot (stuck on a
            # hung disk, or closed). Not every drop: that would take a global lock each time.
            first = not self._pending
            self.dropped[reason] += count
            self._pending[reason] += count
            self._left += count
            self._admit = self._left + self.max_records
        if first:
            self._report_drops()
        if not self._wake.is_set():  # Event.set() takes a lock even when already set
            self._wake.set()

    # --- the writer's side --------------------------------------------------------------------
    def flush(self) -> None:
        """Write everything buffered now (any thread), including a batch the writer thread has
        taken and is still writing. While the writer thread runs, it writes and the caller
        waits for it :data:`DRAIN_TIMEOUT` seconds at most (:meth:`drain`): a write that never
        returns (a pipe nobody reads, a hung disk) must not hang the application's
        ``servicelog.flush()`` or a server's shutdown; then the records still queued are
        reported on stderr. (The caller never writes itself then: a pipe with a little room
        left would take the writer's batch and block the caller's.)"""
        thread = self._thread
        if (
            not self.interactive
            and thread is not None
            and thread is not threading.current_thread()
            and thread.is_alive()
        ):
            self.drain(DRAIN_TIMEOUT)
            return
        with self._flush_lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        self._flusher = threading.get_ident()
        try:
            self._take_and_write()
            if self.dropped:
                self._report_drops()
        finally:
            self._flusher = 0

    def _report_drops(self) -> None:
        """Count the drops made since the last call in ``servicelog.stats()["lost"]`` and
        report them (at most once a minute): here, on the writer or in :meth:`counters`, not in
        :meth:`_drop`, where a global lock would slow every caller of a full buffer."""
        with self._count_lock:
            unreported = self.dropped - self._reported
            self._reported.update(unreported)
        for reason, count in unreported.items():
            _errors.dropped(f"sink {self.name}", reason, count)

    def _take_and_write(self) -> None:
        queue = self._lines
        lines = len(queue)
        if lines:
            # Take the first *lines* lines; lines appended meanwhile stay for the next batch.
            # (Counted taken before they leave the queue: a drain that reads the queue's length
            # first, then this count, never counts them out.)
            self._taken_n += lines
            batch = queue[:lines]
            del queue[:lines]
            self._bytes = sum(map(len, queue)) if queue else 0
            data = b"".join(batch)
            del batch
            with self._count_lock:
                self._left += lines
                self._admit = self._left + self.max_records
            self._stalled = False
            self._space.set()
            delivered = self._deliver(data, lines)
            with self._taken:
                self._done_n += lines
                self._taken.notify_all()
            if not delivered:
                return
        if self._pending:
            self._write_summary()

    def _deliver(self, data: bytes, lines: int) -> bool:
        """Write one batch and count it; ``False`` if the write failed."""
        try:
            self.write_batch(data)
        except Exception as exc:
            written = exc.written if isinstance(exc, PartialWrite) else 0
            lost = lines - written
            self.written += written
            with self._count_lock:
                self.dropped["write_error"] += lost
                self._pending["write_error"] += lost
                self._reported["write_error"] += lost  # report() just below counts them
            _errors.report(f"sink {self.name}", exc, lost=lost)
            return False
        self.written += lines
        return True

    def _write_summary(self) -> None:
        """Write a ``log.dropped`` record per reason, now that writing works."""
        with self._count_lock:
            pending = list(self._pending.items())
            self._pending.clear()
        # One write per line: a write that fails after an earlier line reached the file (a disk
        # filling up) puts back only the reasons not yet written, so none is reported twice.
        for done, (reason, count) in enumerate(pending):
            try:
                self.write_batch(self.renderer(summary_record(self.name, reason, count)))
            except OSError:
                with self._count_lock:  # still failing: summarise later, with what came since
                    for left, number in pending[done:]:
                        self._pending[left] += number
                return

    def write_batch(self, data: bytes) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- lifecycle ----------------------------------------------------------------------------
    def drain(self, timeout: float = DRAIN_TIMEOUT) -> bool:
        """Write everything buffered when called, within *timeout* seconds: by the writer
        thread while it runs (the caller waits at most *timeout*, even if a write never
        returns), else on the calling thread.

        Records other threads add meanwhile are left to the writer thread: waiting for an
        empty buffer would never end while one thread logs without pause (a fork would wait
        out the whole timeout). Called by a signal handler that interrupted this thread's own
        write, it returns at once (the lock it would wait for is its own).

        Returns:
            ``True`` if every record buffered at the call was taken (written, or counted as
            lost); ``False`` if the time ran out (for example while the writer thread is stuck
            on a hung disk), in which case the number of records still queued is reported on
            stderr.
        """
        start = time.monotonic()
        deadline = start + timeout
        queued = len(self._lines)  # (before _taken_n: see _take_and_write)
        target = self._left + queued
        written_target = self._taken_n + queued
        if self._flusher == threading.get_ident():
            # A signal handler that interrupted this thread's own write: the lock is ours, and
            # waiting for it would only run out the clock.
            return self._left >= target
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and thread.is_alive():
            if self._drain_by_writer(written_target, deadline):
                return True
            left = written_target - self._taken_n  # not even taken (else: being written)
        else:
            # No writer thread (a terminal, after close): write here. A plain acquire could
            # wait forever on another thread stuck in write(2).
            while self._flush_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                try:
                    self._flush_locked()  # takes every line buffered: one pass normally does
                finally:
                    self._flush_lock.release()
                if self._left >= target or time.monotonic() >= deadline:
                    break
            if self._left >= target:
                return True
            left = target - self._left
        what = f"{left} record(s) still queued" if left > 0 else "a batch still being written"
        now = time.monotonic()
        if now - self._timeout_said_at >= 60 or self._timeout_said_at == 0:  # once a minute
            self._timeout_said_at = now
            _errors._write_stderr(
                f"servicelog: sink {self.name}: drain timed out after {now - start:.1f}s; {what}\n"
            )
        return False

    def _drain_by_writer(self, target: int, deadline: float) -> bool:
        """Have the writer thread write the first *target* records it takes (``_done_n``);
        ``False`` if that is not done by *deadline*. The caller never writes itself: a
        write(2) that never returns (a pipe nobody reads, a hung disk) holds the writer, not
        the process's exit or its signal handler. Once one caller waited in vain (the writer
        wrote nothing since), the next ones do not wait again: a crash's drain, then the
        exit's, cost one timeout, not two. (It waited for the writer's lock once the records
        were taken: a writer kept busy by another thread's logging takes that lock back at
        once, every time, and a flush waited out its whole timeout.)"""
        if self._drain_stuck_at == self._done_n and self._flush_lock.locked():
            return False  # a drain waited in vain, and the writer has written nothing since
        with self._taken:
            while self._done_n < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._drain_stuck_at = self._done_n
                    return False
                self._wake.set()
                # Woken when the writer has written a batch (checked again every 50 ms).
                self._taken.wait(min(remaining, 0.05))
        return True

    def close(self, timeout: float | None = None) -> None:
        """Stop the writer, drain (at most *timeout* seconds, default ``DRAIN_TIMEOUT``) and
        release the sink's resources. Safe to call twice; records emitted afterwards are
        counted as dropped ("closed")."""
        if self._closed:
            return
        budget = DRAIN_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + budget
        self._closed = True
        self._wake_bytes = 0
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(budget)
        drained = self.drain(max(0.0, deadline - time.monotonic()))
        _sinks.discard(self)
        # Whatever is still buffered now can no longer be written: count it. Without the lock
        # (a writer stuck in write(2)) the file is left open rather than closed under it.
        locked = self._flush_lock.acquire(timeout=0.1)
        try:
            self._room = -1  # every later record is dropped, as "closed"
            if locked and drained and self._lines:
                # Logged while the drain wrote (by a custom rotation function, say): write
                # them too. What this last write logs in turn is counted "closed".
                self._flush_locked()
            left = len(self._lines)
            if left:
                self._lines.clear()
                self._bytes = 0
                with self._count_lock:
                    self._left += left
                    self.dropped["closed"] += left
            self._report_drops()
            if locked:
                self.release()
        finally:
            if locked:
                self._flush_lock.release()

    def release(self) -> None:
        """Release the underlying resource (after the final flush)."""

    def _write_on_caller(self) -> None:
        """From now on, write each record at once on the caller (after the exit drain: a
        record logged later, by an ``atexit`` handler that runs after ours, would otherwise
        wait for a writer thread that never runs again). The flush lock keeps the order."""
        self.interactive = True
        self._wake_bytes = 0

    def _write_by_writer(self) -> None:
        """Undo :meth:`_write_on_caller`: records wait for the writer thread again."""
        self.interactive = False
        self._wake_bytes = 0 if self._closed else self.batch_bytes
        self._ensure_writer()

    def _at_exit(self, timeout: float) -> None:
        """At interpreter exit, after the drain: finish helper work within *timeout* seconds
        (a rotating file set stops compressing and applies retention)."""

    # --- counters -----------------------------------------------------------------------------
    @property
    def produced(self) -> int:
        """Records handed to :meth:`emit` so far."""
        # ``count`` has no public reader; its repr is ``count(N)`` with N the next value.
        return int(repr(self._seq)[6:-1]) - 1

    @property
    def lost(self) -> int:
        """Records dropped for any reason (see :attr:`dropped` for the reasons)."""
        return sum(self.dropped.values())

    @property
    def queued_bytes(self) -> int:
        return sum(map(len, list(self._lines)))

    @property
    def queued_records(self) -> int:
        return len(self._lines)

    def counters(self) -> dict[str, Any]:
        """``produced``, ``written``, ``dropped`` (by reason) and ``queued`` records."""
        self._report_drops()  # so that stats()["lost"], read next, counts every drop so far
        return {
            "produced": self.produced,
            "written": self.written,
            "dropped": dict(self.dropped),
            "queued": self.queued_records,
        }

    # --- the writer thread --------------------------------------------------------------------
    def _start_writer(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"servicelog-writer[{self.name}]", daemon=True
        )
        self._thread.start()

    def _ensure_writer(self) -> None:
        """Restart the writer thread if it died (it only can through a bug of ours)."""
        thread = self._thread
        if not self.interactive and not self._closed and (thread is None or not thread.is_alive()):
            with self._count_lock:
                if self._thread is thread:
                    self._start_writer()

    def _run(self) -> None:
        wake = self._wake
        while not self._closed:
            wake.wait(self.flush_interval)
            wake.clear()
            try:
                self.flush()
            except Exception as exc:  # a bug of ours: report it, and keep the writer alive
                _errors.report(f"sink {self.name} writer", exc)

    def _after_fork_in_child(self) -> None:
        # The parent wrote its buffer before forking; anything here was appended concurrently
        # by another parent thread and belongs to the parent: never write it twice. The child
        # keeps its own accounting from zero.
        self._lines.clear()
        self._thread = None
        self._reset_state()
        if not self.interactive and not self._closed:
            self._start_writer()


def summary_record(sink: str, reason: str, count: int) -> Record:
    """The ``log.dropped`` record that reports *count* records dropped for *reason*."""
    return {
        "@timestamp": format_timestamp(time.time_ns()),
        "log.level": "warning",
        "message": f"log.dropped: {count} record(s) dropped ({reason})",
        "log.logger": "servicelog",
        "event.action": "log.dropped",
        "servicelog.dropped.count": count,
        "servicelog.dropped.reason": reason,
        "servicelog.sink": sink,
    }


_sinks: weakref.WeakSet[BufferedSink] = weakref.WeakSet()


def flush_all() -> None:
    """Write out every buffered sink in the process."""
    for sink in list(_sinks):
        try:
            sink.flush()
        except Exception:  # pragma: no cover - flush() guards itself
            pass


def drain_all(timeout: float = DRAIN_TIMEOUT) -> bool:
    """Drain every buffered sink in the process within *timeout* seconds in all.

    Returns:
        ``True`` if everything was written.
    """
    deadline = time.monotonic() + timeout
    ok = True
    for sink in list(_sinks):
        try:
            ok = sink.drain(max(0.0, deadline - time.monotonic())) and ok
        except Exception:  # pragma: no cover - drain() guards itself
            ok = False
    return ok


def _before_fork() -> None:
    drain_all()
    _watch_multiprocessing()


def _after_fork_in_child() -> None:
    for sink in list(_sinks):
        sink._after_fork_in_child()


# --- multiprocessing children -----------------------------------------------------------------
# A child started by multiprocessing's "fork" or "forkserver" method ends with os._exit(), so
# atexit never runs in it (measured: 2 of 2,000 queued records written; a forkserver child,
# whose sinks the main module's configure() makes in the child: none). multiprocessing runs its
# own finalizers first, so register one there, in each child, after multiprocessing has cleared
# the registry it inherited (``BaseProcess._after_fork``). Only if the application imported it
# already: from the fork hook, and from every new sink (in a forkserver child, at its import).
class _Token:
    pass


_mp_token = _Token()
_mp_watched = False


def _watch_multiprocessing() -> None:
    global _mp_watched
    util = sys.modules.get("multiprocessing.util")
    if util is None or _mp_watched:
        return
    _mp_watched = True
    util.register_after_fork(_mp_token, _register_mp_finalizer)


def _register_mp_finalizer(_: object) -> None:
    util = sys.modules["multiprocessing.util"]
    util.Finalize(None, _drain_at_exit, exitpriority=-100)


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


#: Called at exit before the sinks' final drain: whatever is still held upstream of the sinks
#: (the rate limit's summaries, deferred records) must reach them in time.
before_exit_drain: list[Callable[[bool], None]] = []


def _emit_held(blocking: bool = True) -> None:
    """Run the :data:`before_exit_drain` hooks (rate-limit summaries, deferred records);
    ``blocking=False`` from a signal handler (they take no lock they would wait for)."""
    for hook in list(before_exit_drain):
        try:
            hook(blocking)
        except Exception as exc:  # pragma: no cover - the hooks guard themselves
            _errors.report("exit", exc)


def drain_to_caller(timeout: float = DRAIN_TIMEOUT) -> list[BufferedSink]:
    """Emit what is held upstream, drain every sink (*timeout* seconds at most in all), and
    from then on write each record at once on the caller, on every sink whose drain finished
    (a caller would wait for a writer stuck on a hung disk). For the end of a process: at exit,
    and at the end of a server's lifespan (what the server logs after it, uvicorn's last
    lines, is written even if the process then dies of a re-raised SIGTERM).

    Returns:
        The sinks this call switched (to hand back to :func:`write_by_writer`).
    """
    deadline = time.monotonic() + timeout
    _emit_held()
    switched = []
    for sink in list(_sinks):
        try:
            if sink.drain(max(0.0, deadline - time.monotonic())):
                if not sink.interactive:
                    switched.append(sink)
                sink._write_on_caller()
        except Exception as exc:  # pragma: no cover - drain() guards itself
            _errors.report(f"sink {sink.name} drain", exc)
    return switched


def write_by_writer(sinks: Iterable[BufferedSink]) -> None:
    """Undo :func:`drain_to_caller` on *sinks* (a server's lifespan starts again)."""
    for sink in sinks:
        sink._write_by_writer()


def _drain_at_exit(timeout: float = DRAIN_TIMEOUT) -> None:
    """At exit: emit what is held upstream, drain every sink, then let sinks with helper work
    (compression, retention) finish it within what is left of *timeout*."""
    deadline = time.monotonic() + timeout
    # atexit runs handlers registered before servicelog's import after this one: their
    # records are written at once.
    drain_to_caller(timeout)
    for sink in list(_sinks):
        try:
            sink._at_exit(max(0.0, deadline - time.monotonic()))
        except Exception as exc:  # pragma: no cover - _at_exit guards itself
            _errors.report(f"sink {sink.name} at exit", exc)


atexit.register(_drain_at_exit)


# --- signals ----------------------------------------------------------------------------------
# (``signal`` is imported on use: importing servicelog stays cheap for those who never call it.)
_previous: dict[int, _Handler] = {}


def install_signal_handlers(
    signals: Iterable[int] | None = None, timeout: float = DRAIN_TIMEOUT
) -> None:
    """Drain every sink when one of *signals* arrives, then hand the signal on.

    Nothing is installed unless you call this (servicelog never replaces an application's
    handlers behind its back), and calling it again does not stack handlers. The handler
    drains (at most *timeout* seconds), then chains to the handler that was installed before:
    a Python handler is called; ``SIG_IGN`` is honoured; the default action is restored and
    the signal re-raised, so the exit status still says "killed by SIGTERM".

    Servers that handle signals themselves (uvicorn, gunicorn's workers, hypercorn) exit
    normally after SIGTERM, and the ``atexit`` drain covers them: they need no call.

    Args:
        signals: the signals to handle (default: SIGTERM and SIGINT).
        timeout: the longest the drain may take, in seconds.

    Raises:
        ValueError: when called from a thread other than the main thread (a Python rule).
    """
    import signal

    for signum in signals if signals is not None else (signal.SIGTERM, signal.SIGINT):
        current = signal.getsignal(signum)
        if current is _on_signal:
            continue
        _previous[signum] = current
        signal.signal(signum, _on_signal)
    global _drain_timeout
    _drain_timeout = timeout


_drain_timeout = DRAIN_TIMEOUT


def _on_signal(signum: int, frame: FrameType | None) -> None:
    import signal

    _emit_held(blocking=False)  # what is still upstream of the sinks, as at exit
    drain_all(_drain_timeout)
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def uninstall_signal_handlers() -> None:
    """Put back the handlers :func:`install_signal_handlers` replaced (for tests)."""
    import signal

    for signum, previous in list(_previous.items()):
        if signal.getsignal(signum) is _on_signal:
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        del _previous[signum]


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
            # Without ``default``: passing it costs every call; a record holding a type orjson
            # does not know (Decimal, a set, an object, a datetime: see SAFE) takes
            # ``_render_other`` instead.
            body = _dumps(record, option=_SAFE)
        except Exception:
            line = self._render_other(record)
        else:
            if body.isascii() and len(body) <= self._max_body:
                line = body[:-1] + self._tail
            else:
                line = self.renderer.finish(record, body[:-1] + self._tail)
        # BufferedSink._add, inlined: one Python call less on every record.
        n = next(self._seq)
        if n <= self._admit and self._bytes < self._wake_bytes and levelno < self.flush_level:
            self._lines.append(line)
            self._bytes += len(line)
        else:
            self._add_slow(n, line, levelno)

    def _render_other(self, record: Record) -> bytes:
        """Render a record the plain ``orjson.dumps`` refused."""
        try:
            body = _dumps(record, default=_default, option=_SAFE)
        except Exception:
            return self.renderer.slow(record)
        return self.renderer.finish(record, body[:-1] + self._tail)
