"""``warnings``, uncaught exceptions (main thread, other threads, asyncio) into the pipeline.

Installed by ``configure()`` and undone by ``reset()``. Uncaught exceptions are logged once
(at CRITICAL for the main thread, ERROR elsewhere) with the full traceback, and the sinks are
flushed, since the process may be about to end.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import warnings
from types import TracebackType
from typing import Any

from ._build import emit_foreign

__all__ = ["asyncio_exception_handler", "install", "install_asyncio_handler", "reset"]

_saved: dict[str, Any] = {}


def _flush() -> None:
    from ..logger import current_runtime

    try:
        current_runtime().pipeline.flush()
    except Exception:
        pass


def _showwarning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    emit_foreign(
        30,
        str(message),
        "py.warnings",
        time_ns=time.time_ns(),
        origin=(filename, lineno, "<module>"),
        fields={"warning.category": category.__name__, "warning.file": f"{filename}:{lineno}"},
        where="warnings hook",
    )


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        _saved.get("excepthook", sys.__excepthook__)(exc_type, exc, tb)
        return
    emit_foreign(
        50,
        f"Uncaught exception: {exc_type.__name__}",
        "servicelog.uncaught",
        time_ns=time.time_ns(),
        exc_info=exc.with_traceback(tb) if tb is not None else exc,
        where="sys.excepthook",
    )
    _flush()


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "unknown"
    exc = args.exc_value if args.exc_value is not None else args.exc_type()
    emit_foreign(
        40,
        f"Uncaught exception in thread {name}: {args.exc_type.__name__}",
        "servicelog.uncaught",
        time_ns=time.time_ns(),
        thread=name,
        exc_info=exc,
        where="threading.excepthook",
    )
    _flush()


def asyncio_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """An asyncio loop exception handler (``loop.set_exception_handler``) that logs to
    servicelog, with the task or future named in the record."""
    exc = context.get("exception")
    fields: dict[str, Any] = {}
    for key in ("task", "future", "handle"):
        if key in context:
            name = "task" if isinstance(context[key], asyncio.Task) else key
            fields[f"asyncio.{name}"] = _short_repr(context[key])
    emit_foreign(
        40,
        str(context.get("message") or "Unhandled exception in event loop"),
        "asyncio",
        time_ns=time.time_ns(),
        fields=fields,
        exc_info=exc if isinstance(exc, BaseException) else None,
        where="asyncio exception handler",
    )


def _short_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 300 else text[:300] + "..."


def install_asyncio_handler(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Log the event loop's unhandled exceptions through servicelog (the running loop by
    default). Without it they still arrive, through the stdlib ``asyncio`` logger."""
    loop = loop or asyncio.get_running_loop()
    loop.set_exception_handler(asyncio_exception_handler)


def install(*, warnings_: bool = True, excepthooks: bool = True) -> None:
    """Install the hooks (idempotent; :func:`reset` restores the previous ones)."""
    reset()
    if warnings_:
        _saved["showwarning"] = warnings.showwarning
        warnings.showwarning = _showwarning
    if excepthooks:
        _saved["excepthook"] = sys.excepthook
        _saved["threading_excepthook"] = threading.excepthook
        sys.excepthook = _excepthook
        threading.excepthook = _thread_excepthook
        try:
            install_asyncio_handler()
        except RuntimeError:  # no running loop: asyncio's default handler logs via stdlib
            pass


def reset() -> None:
    if "showwarning" in _saved:
        warnings.showwarning = _saved.pop("showwarning")
    if "excepthook" in _saved:
        sys.excepthook = _saved.pop("excepthook")
    if "threading_excepthook" in _saved:
        threading.excepthook = _saved.pop("threading_excepthook")
