"""Failures inside logging: counted, reported on stderr at most once a minute, never raised.

A logging library must never take down the service it observes. Every stage of the pipeline
(a front-end building a record, a processor, a renderer, a sink) is guarded; what goes wrong is
counted here (``servicelog.stats()["errors"]``) and reported on the real stderr, at most once a
minute per kind, with the count so far. Records a sink drops (a full buffer, a closed sink) are
counted as lost (``stats()["lost"]``) and reported the same way (:func:`dropped`).

The exception: in *strict* mode (on by default while pytest runs a test, see
``configure(strict=...)``) an unexpected exception inside servicelog is re-raised, so our own
bugs stay visible in tests. Environmental faults (``OSError`` from a full disk, a closed pipe)
are never raised, strict or not.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter

TYPE_CHECKING = False  # typing is imported only by type checkers: it costs ~8 ms at import

if TYPE_CHECKING:
    from typing import Any

__all__ = ["counters", "dropped", "report", "set_strict", "snapshot"]

_lock = threading.Lock()
_errors: Counter[str] = Counter()
_dropped: Counter[str] = Counter()  # records dropped, by sink and reason (for the reports)
counters: Counter[str] = Counter()
_last_report: dict[str, float] = {}
_strict: bool | None = None
REPORT_INTERVAL = 60.0


def set_strict(value: bool | None) -> None:
    """``True``/``False`` force strict mode; ``None`` means "while pytest runs a test"."""
    global _strict
    _strict = value


def is_strict() -> bool:
    if _strict is not None:
        return _strict
    return "PYTEST_CURRENT_TEST" in os.environ


def report(where: str, exc: BaseException, *, lost: int = 0) -> None:
    """Count a failure in *where* (``"sink file:app.jsonl"``, ``"render"``, ...).

    Raises:
        the exception itself, in strict mode, unless it is an ``OSError``.
    """
    with _lock:
        _errors[where] += 1
        if lost:
            counters["lost"] += lost
        count = _errors[where]
        due = _due(where)
    if due:
        _write_stderr(
            f"servicelog: {where} failed ({type(exc).__name__}: {exc}); "
            f"{count} failure(s) so far; logging continues, see servicelog.stats()\n"
        )
    if is_strict() and not isinstance(exc, OSError):
        raise exc


def dropped(where: str, reason: str, count: int) -> None:
    """Count *count* records a sink dropped for *reason* (``queue_full``, ``closed``, ...) as
    lost, and say so on stderr at most once a minute per sink and reason.

    Not an error of servicelog's (the buffer is full, the sink was closed): never raised, and
    not in ``errors``. Write errors go through :func:`report` instead.
    """
    key = f"{where} dropped {reason}"
    with _lock:
        counters["lost"] += count
        _dropped[key] += count
        total = _dropped[key]
        due = _due(key)
    if due:
        _write_stderr(
            f"servicelog: {where} dropped {total} record(s) so far ({reason}); "
            "logging continues, see servicelog.stats()\n"
        )


def _due(key: str) -> bool:
    """Whether *key* may be reported now (once per ``REPORT_INTERVAL``); hold ``_lock``."""
    now = time.monotonic()
    if now - _last_report.get(key, -REPORT_INTERVAL) < REPORT_INTERVAL:
        return False
    _last_report[key] = now
    return True


def _write_stderr(text: str) -> None:
    """Write *text* on stderr, never blocking for more than half a second: stderr may be the
    very pipe nobody reads that a sink is stuck on (``2>&1``, a journal stream), and a report
    about it must not hang the caller in turn. Then the text is not written."""
    stream = sys.__stderr__ or sys.stderr
    try:
        if stream is None:
            return
        fd = stream.fileno()
    except Exception:  # no descriptor (a StringIO in tests): a plain write cannot block
        try:
            stream.write(text)
            stream.flush()
        except Exception:
            pass
        return
    try:
        import select

        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        if not poller.poll(500):  # no room within 0.5 s: a pipe nobody reads
            return
        stream.flush()  # what the application wrote first keeps its place (there is room)
        data = text.encode("utf-8", "backslashreplace")
        if len(data) >= select.PIPE_BUF:
            # One write of less than PIPE_BUF bytes goes whole or not at all; cut at a
            # character's start, and still end the line.
            cut = select.PIPE_BUF - 5
            while cut and (data[cut] & 0xC0) == 0x80:
                cut -= 1
            data = data[:cut] + b"...\n"
        os.write(fd, data)
    except Exception:
        pass


def snapshot() -> dict[str, Any]:
    with _lock:
        # "lost" and "suppressed" are always there (0 until something is), so they can be read
        # as stats()["lost"] without a KeyError.
        return {"errors": dict(_errors), "lost": 0, "suppressed": 0, **dict(counters)}


def clear() -> None:
    with _lock:
        _errors.clear()
        _dropped.clear()
        counters.clear()
        _last_report.clear()


def _reset_lock_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a parent thread (a writer reporting drops) may have held it


os.register_at_fork(after_in_child=_reset_lock_in_child)
