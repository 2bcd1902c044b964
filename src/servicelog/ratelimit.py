"""A per-message rate limit, journald style: a flood of one message cannot fill the disk.

After ``burst`` records with the same key (logger, level, message) within ``interval`` seconds,
further ones are dropped until that window ends. Then **one** summary record is emitted, at
the original level and through the same pipeline (so it is redacted and routed like any
record), by the first record after it at the limit's level (of that key or of any other), or
else by a timer shortly after the window ends::

    {"message": "suppressed 41234 similar messages", "log.logger": "app.auth",
     "log.suppressed": 41234, "log.suppressed_message": "invalid token", ...}

Every dropped record is counted in ``servicelog.stats()["suppressed"]``.

Design notes:

* The limit is a pipeline processor, so it runs on the caller's thread before anything is
  rendered: a dropped record costs a dict lookup under a lock, not a JSON encoding and a write.
* A summary is *emitted* (re-entering the current pipeline) rather than returned in place of a
  record, because it is due when some other record arrives, and that record must pass too.
* Records below ``min_level`` never reach the limit (the pipeline skips it for them, so an
  INFO line pays nothing for it). So that a window followed only by INFO traffic, or by
  silence, still gets its summary, the first drop of a window arms a timer (one daemon thread
  at a time, only while something was dropped) that emits the summaries of the windows ended
  by then, at the latest one ``interval`` after they end. :meth:`RateLimit.flush` emits them
  all at once (``servicelog.flush()``, exit).
* Memory is bounded: at most ``max_keys`` keys, least recently seen evicted first (its pending
  summary is emitted then). The message part of a key is cut to 256 characters, and the
  message a window keeps for its summary to 1,024 (marked with ``…``).
* By default only WARNING and above are limited: the same INFO line many times a second is
  normal traffic (an access log), while an identical warning or error flood is what an attacker
  or a failing dependency produces (catalog item S4).

The anchor is systemd-journald's ``RateLimitIntervalSec=``/``RateLimitBurst=`` (10,000 per 30 s
per service, then "Suppressed N messages"); here the key is per message, and the defaults
(1,000 per 10 s) are tighter because one message is a narrower key than one service.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from . import _errors
from .levels import level_name, parse_level
from .record import Record, format_timestamp

__all__ = ["SUPPRESSED", "SUPPRESSED_MESSAGE", "RateLimit"]

#: The summary record's count of dropped records.
SUPPRESSED = "log.suppressed"
#: The summary record's copy of the message that was suppressed.
SUPPRESSED_MESSAGE = "log.suppressed_message"

_KEY_CHARS = 256
#: The longest message a window keeps for its summary (``log.suppressed_message``): a flood of
#: distinct huge messages must not hold ``max_keys`` copies of them.
_SUMMARY_CHARS = 1024

#: (logger, message, level, how many were dropped)
_Summary = tuple[Any, str, int, int]


def _default_key(record: Record, levelno: int) -> tuple[Any, ...]:
    message = record.get("message", "")
    if type(message) is not str:
        message = repr(message)
    return (record.get("log.logger"), levelno, message[:_KEY_CHARS])


class _Window:
    __slots__ = ("count", "dropped", "levelno", "logger", "message", "start")

    def __init__(self, start: float, record: Record, levelno: int) -> None:
        self.start = start
        self.count = 0
        self.dropped = 0
        self.levelno = levelno
        self.logger = record.get("log.logger")
        message = record.get("message", "")
        if type(message) is not str:
            message = repr(message)
        if len(message) > _SUMMARY_CHARS:
            message = message[:_SUMMARY_CHARS] + "…"
        self.message = message


class RateLimit:
    """Drop records beyond *burst* per *interval* seconds per message; then one summary.

    Args:
        burst: records of one key let through per window.
        interval: the window, in seconds.
        min_level: records below this level are never limited (default WARNING): a number
            or a level name (``"error"``).
        max_keys: keys remembered at most (least recently seen are forgotten first).
        key: ``(record, levelno) -> hashable``: what makes two records "the same message".
            Default: logger name, level and the first 256 characters of the message.
        emit: where summaries go, ``(record, levelno) -> None``. Default: the pipeline
            ``configure()`` installed (so they pass this limit, redaction and the routes).
        clock: seconds as a float, for tests (default ``time.monotonic``).
        exempt: logger names never limited. Default: ``servicelog.access``, whose records are
            one per request (already sampled where wanted); limiting them would lose requests.

    Raises:
        ValueError: for a burst, interval or max_keys below 1.
        ConfigError: for a *min_level* that is not a level.
    """

    __slots__ = (
        "__weakref__",
        "_clock",
        "_emit",
        "_key",
        "_lock",
        "_next_sweep",
        "_pending",
        "_timer",
        "_windows",
        "burst",
        "exempt",
        "interval",
        "max_keys",
        "min_level",
    )

    def __init__(
        self,
        burst: int = 1000,
        interval: float = 10.0,
        *,
        min_level: int | str = 30,
        max_keys: int = 10_000,
        key: Callable[[Record, int], Any] | None = None,
        emit: Callable[[Record, int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        exempt: Iterable[str] = ("servicelog.access",),
    ) -> None:
        if burst < 1 or interval <= 0 or max_keys < 1:
            raise ValueError(
                "RateLimit needs burst >= 1, interval > 0 and max_keys >= 1; "
                f"got burst={burst!r}, interval={interval!r}, max_keys={max_keys!r}"
            )
        self.burst = burst
        self.exempt = frozenset(exempt)
        self.interval = float(interval)
        self.min_level = parse_level(min_level, "RateLimit(min_level)")
        self.max_keys = max_keys
        self._key = key or _default_key
        self._emit = emit
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: OrderedDict[Any, _Window] = OrderedDict()
        self._pending: set[Any] = set()  # keys whose window has dropped records
        self._next_sweep = 0.0
        self._timer: threading.Timer | None = None
        _limits.add(self)

    def __repr__(self) -> str:
        return (
            f"RateLimit(burst={self.burst}, interval={self.interval}, "
            f"min_level={level_name(self.min_level)}, max_keys={self.max_keys})"
        )

    def __call__(self, record: Record, levelno: int) -> Record | None:
        """The processor: the record, or ``None`` when it is one too many."""
        if levelno < self.min_level or SUPPRESSED in record:
            return record  # below the limit's level, or our own summary coming back
        if self.exempt and record.get("log.logger") in self.exempt:
            return record
        try:
            key = self._key(record, levelno)
            now = self._clock()
            due: list[_Summary] = []
            with self._lock:
                if self._pending and now >= self._next_sweep:
                    self._sweep(now, due)
                window = self._windows.get(key)
                if window is None:
                    window = self._windows[key] = _Window(now, record, levelno)
                    if len(self._windows) > self.max_keys:
                        old_key, old = self._windows.popitem(last=False)
                        self._pending.discard(old_key)
                        if old.dropped:
                            due.append((old.logger, old.message, old.levelno, old.dropped))
                else:
                    self._windows.move_to_end(key)
                    if now - window.start >= self.interval:
                        if window.dropped:
                            due.append(self._close(key, window))
                        window.start, window.count = now, 0
                window.count += 1
                drop = window.count > self.burst
                if drop:
                    window.dropped += 1
                    self._pending.add(key)
                    if window.dropped == 1 or self._timer is None:
                        self._arm(window.start + self.interval - now)
            if drop:
                with _errors._lock:  # the counters' lock: stats() reads them under it
                    _errors.counters["suppressed"] += 1
            if due:
                self._send(due)
            return None if drop else record
        except Exception as exc:
            _errors.report("rate limit", exc)
            return record  # a broken limit must not lose records

    def _close(self, key: Any, window: _Window) -> _Summary:
        """Take a window's drop count for a summary (call with the lock held)."""
        summary = (window.logger, window.message, window.levelno, window.dropped)
        window.dropped = 0
        self._pending.discard(key)
        return summary

    def _arm(self, delay: float) -> None:
        """Make sure a timer will sweep ended windows (call with the lock held)."""
        timer = self._timer
        if timer is not None and timer.is_alive():  # not alive: it ended, or we forked
            return
        # A little late rather than early: the window must have ended when it runs.
        timer = threading.Timer(max(delay, 0.0) + 0.01, self._on_timer)
        timer.daemon = True  # never holds up the exit (whose drain flushes the summaries)
        timer.name = "servicelog-ratelimit"
        self._timer = timer
        timer.start()

    def _on_timer(self) -> None:
        """Emit the summaries of the windows that have ended; wait for the others."""
        due: list[_Summary] = []
        try:
            with self._lock:
                self._timer = None
                now = self._clock()
                self._sweep(now, due)
                ends = [w.start for k in self._pending if (w := self._windows.get(k))]
                if ends:
                    self._arm(min(ends) + self.interval - now)
            self._send(due)
        except Exception as exc:
            _errors.report("rate limit", exc)

    def _sweep(self, now: float, due: list[_Summary]) -> None:
        """Collect summaries of every window that has ended (call with the lock held)."""
        # At most once a second, and only over the keys that dropped something.
        self._next_sweep = now + min(1.0, self.interval)
        for key in list(self._pending):
            window = self._windows.get(key)
            if window is None:
                self._pending.discard(key)
            elif now - window.start >= self.interval:
                due.append(self._close(key, window))

    def flush(self, blocking: bool = True) -> None:
        """Emit a summary now for every key with dropped records, ended window or not.

        With ``blocking=False`` (a signal handler, which may have interrupted this limit's own
        thread inside it), nothing is done if the lock is taken: waiting would wait forever."""
        due: list[_Summary] = []
        if not self._lock.acquire(blocking):
            return
        try:
            for key in list(self._pending):
                window = self._windows.get(key)
                if window is not None and window.dropped:
                    due.append(self._close(key, window))
            self._pending.clear()
        finally:
            self._lock.release()
        self._send(due)

    def _send(self, due: list[_Summary]) -> None:
        emit = self._emit
        if emit is None:
            from .logger import current_runtime

            emit = current_runtime().pipeline.emit
        for logger, message, levelno, n in due:
            # No static fields (service, pid): the sinks add them to every record, as to this
            # one; here they would come twice in one JSON object.
            summary = {
                "@timestamp": format_timestamp(time.time_ns()),
                "log.level": level_name(levelno),
                "message": f"suppressed {n} similar message{'s' if n != 1 else ''}",
                "log.logger": logger,
                SUPPRESSED: n,
                SUPPRESSED_MESSAGE: message,
            }
            emit(summary, levelno)


_limits: weakref.WeakSet[RateLimit] = weakref.WeakSet()


def flush_all(blocking: bool = True) -> None:
    """Emit the pending summaries of every rate limit in the process: ``rate_limit=`` and any
    passed in ``processors=`` (``servicelog.flush()``, teardown, exit; ``blocking=False`` in a
    signal handler, see :meth:`RateLimit.flush`)."""
    for limit in list(_limits):
        try:
            limit.flush(blocking)
        except Exception as exc:
            _errors.report("rate limit", exc)


def _reset_in_child() -> None:
    # A forked child starts its own windows' drop counts (the parent reports its own drops),
    # with a lock no parent thread holds and no timer (the parent's thread is not in the child).
    for limit in list(_limits):
        limit._lock = threading.Lock()
        limit._timer = None
        limit._pending.clear()
        for window in limit._windows.values():
            window.dropped = 0


os.register_at_fork(after_in_child=_reset_in_child)
