"""Log an exception the ASGI layer caught, formatting each distinct traceback once.

A service that fails the same way many times a second (a database down, a bug on a hot route)
would format the same traceback again and again: ~0.4 ms each on CPython 3.11, more than the
rest of the request (``bench/http_bench.py``, ``/boom``). Here the ``error.*`` fields of an
exception are cached under its *shape*: for each exception of its chain, the class, the
message, and per traceback entry the code object and the instruction it stopped at, which is
everything the standard library's formatter reads when no local variables are shown. The same
shape gives the same text, so a hit costs a walk of the traceback (a few microseconds) and hands
the redaction policy a string it has already found clean.

With ``show_locals`` (the debug profile), and for the exceptions whose text depends on more
than that (``SyntaxError``, exception groups, notes), the logger formats the traceback itself,
as for any ``exc_info``.
"""

from __future__ import annotations

import sys
from typing import Any

from ..logger import Logger, current_runtime
from ..record import add_exception

__all__ = ["log_exception"]

_MAX_ENTRIES = 256
_MAX_TEXT = 65536
_cache: dict[tuple[Any, ...], dict[str, Any]] = {}


def log_exception(log: Logger, message: str, exc: BaseException, fields: dict[str, Any]) -> None:
    """``log.error(message, exc_info=exc, **fields)``, with the ``error.*`` fields cached."""
    error = None if current_runtime().show_locals else _error_fields(exc)
    if error is None:
        log.error(message, exc_info=exc, **fields)
    else:
        log.error(message, **{**fields, **error})


def _error_fields(exc: BaseException) -> dict[str, Any] | None:
    try:
        key = _shape(exc, [])
    except Exception:  # a __str__ that raises, an odd traceback: let the logger cope
        return None
    if key is None:
        return None
    key = (key, getattr(sys, "tracebacklimit", None))
    error = _cache.get(key)
    if error is None:
        error = {}
        add_exception(error, exc)
        if len(error.get("error.stack_trace", "")) <= _MAX_TEXT:
            if len(_cache) >= _MAX_ENTRIES:
                _cache.clear()
            _cache[key] = error
    return error


def _shape(exc: BaseException, seen: list[BaseException]) -> tuple[Any, ...] | None:
    """What the formatted traceback of *exc* depends on, or ``None`` if not only on that."""
    for index, other in enumerate(seen):
        if other is exc:  # a cycle in the chain: the formatter shows it once
            return ("seen", index)
    seen.append(exc)
    cls = type(exc)
    if issubclass(cls, (SyntaxError, BaseExceptionGroup)) or hasattr(exc, "__notes__"):
        return None
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append((tb.tb_frame.f_code, tb.tb_lasti, tb.tb_lineno))
        tb = tb.tb_next
    cause = context = None
    if exc.__cause__ is not None:
        cause = _shape(exc.__cause__, seen)
        if cause is None:
            return None
    if exc.__context__ is not None:
        context = _shape(exc.__context__, seen)
        if context is None:
            return None
    return (cls, str(exc), tuple(frames), exc.__suppress_context__, cause, context)
