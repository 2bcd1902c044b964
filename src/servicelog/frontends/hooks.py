"""``warnings``, uncaught exceptions (main thread, other threads, asyncio) into the pipeline.

Installed by ``configure()`` and undone by ``reset()``. Uncaught exceptions are logged once
(at CRITICAL for the main thread, ERROR elsewhere) with the full traceback, and the sinks are
flushed, since the process may be about to end.

Each hook *chains*: after logging, it calls the hook it replaced (Sentry's, an APM agent's, an
IDE's), except the interpreter's default when a console or JSON sink on stdout or stderr was
handed the record, where that hook would print the traceback a second time; otherwise
(``stream="none"``: files only; a filtered route; a processor that dropped it) the traceback is
printed on stderr too, as Python does without servicelog, but redacted as the record is. A hook
another library installs after ours usually chains to ours the same way; ``reset()`` then leaves
that chain alone (restoring ours would drop theirs) and turns ours into a pass-through.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import warnings
import weakref
from types import TracebackType
from typing import Any

from ..context import raised_in
from ._build import emit_foreign

__all__ = ["asyncio_exception_handler", "install", "install_asyncio_handler", "reset"]

_saved: dict[str, Any] = {}


def _losses() -> int:
    """Records lost so far, by any sink of the configuration in force, for any reason (a
    broken pipe, a closed stdout, a full buffer): counted before and after a crash's record."""
    from .. import _errors
    from ..logger import current_runtime

    try:
        total = int(_errors.snapshot()["lost"])
        for route in current_runtime().pipeline.routes:
            dropped = getattr(route.sink, "dropped", None)
            if isinstance(dropped, dict):
                total += sum(dropped.values())
        return total
    except Exception:
        return -1


def _flush(losses_before: int) -> bool:
    """Write out what the crash logged, within ``DRAIN_TIMEOUT`` (a sink that cannot write, a
    pipe nobody reads, must not hang the exit); ``True`` if every sink took its records and
    nothing was lost since *losses_before* (then the interpreter's hook need not print it)."""
    from ..logger import current_runtime
    from ..sinks.base import DRAIN_TIMEOUT

    try:
        delivered = current_runtime().pipeline.drain(DRAIN_TIMEOUT)
        return delivered and losses_before >= 0 and _losses() == losses_before
    except Exception:
        return False


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


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> bool:
    if issubclass(exc_type, KeyboardInterrupt):
        return False  # not an error: the previous hook (the default one prints it) handles it
    losses = _losses()
    emit_foreign(
        50,
        f"Uncaught exception: {exc_type.__name__}",
        "servicelog.uncaught",
        time_ns=time.time_ns(),
        fields=raised_in(exc),  # what was bound where it was raised: left since
        exc_info=exc.with_traceback(tb) if tb is not None else exc,
        where="sys.excepthook",
        checked=True,  # never filtered by level: the hook replaced would have printed it
    )
    # Not written (a broken, closed or stalled stdout): the interpreter's hook prints it too.
    return _flush(losses)


def _log_thread_uncaught(args: threading.ExceptHookArgs) -> bool:
    if args.exc_type is SystemExit:
        return False  # how a thread ends on purpose; the default hook ignores it too
    name = args.thread.name if args.thread is not None else "unknown"
    exc = args.exc_value if args.exc_value is not None else args.exc_type()
    losses = _losses()
    emit_foreign(
        40,
        f"Uncaught exception in thread {name}: {args.exc_type.__name__}",
        "servicelog.uncaught",
        time_ns=time.time_ns(),
        thread=name,
        fields=raised_in(exc),  # what was bound where it was raised: left since
        exc_info=exc,
        where="threading.excepthook",
        checked=True,  # never filtered by level: the hook replaced would have printed it
    )
    return _flush(losses)


class _ChainedHook:
    """One installation of ``sys.excepthook`` or ``threading.excepthook``: log, then call the
    hook it replaced, unless that is the interpreter's default and the record surely went to
    stdout or stderr (it would print a second traceback there; see :func:`_terminal_took_it`).

    A new one per :func:`install`, so that an old one left inside another library's chain
    (see :func:`reset`) forwards without logging, and a record is never logged twice.
    """

    __slots__ = ("active", "default", "level", "log", "previous")

    def __init__(self, log: Any, previous: Any, default: Any, level: int) -> None:
        self.log = log
        self.previous = previous
        self.default = default
        self.level = level  # the level *log* records the crash at
        self.active = True

    def __call__(self, *args: Any) -> None:
        if self.active:
            before = _terminal_counts(self.level)
            try:
                logged = self.log(*args)
            except Exception:  # counted by emit_foreign; a hook must not raise, whatever mode
                logged = False
            if self.previous is self.default:
                if not (logged and _terminal_took_it(before)):
                    _print_redacted(args)
                return
        # Outside the guard: a failing third-party hook is reported by the interpreter, as it
        # would be without servicelog.
        self.previous(*args)


def _print_redacted(args: tuple[Any, ...]) -> None:
    """What the interpreter's own hook prints for *args* (``sys.excepthook``'s three, or
    ``threading.excepthook``'s one), on stderr, redacted as the log record is: a secret in
    the exception's message or a source line must not reach the console (or a journal that
    keeps stderr) when the record went to a file only."""
    import traceback

    head = ""
    if len(args) == 1:  # threading.ExceptHookArgs
        hook_args = args[0]
        if hook_args.exc_type is SystemExit:
            return  # the default hook prints nothing for it either
        name = hook_args.thread.name if hook_args.thread is not None else "unknown"
        head = f"Exception in thread {name}:\n"
        exc_type, exc, tb = hook_args.exc_type, hook_args.exc_value, hook_args.exc_traceback
    else:
        exc_type, exc, tb = args
    stream = sys.stderr
    if stream is None:
        return
    try:
        from ..redaction import redact_text

        text = redact_text(head + "".join(traceback.format_exception(exc_type, exc, tb)))
    except Exception:  # never the raw text: the type, and why the rest is missing
        kind = getattr(exc_type, "__name__", "exception")
        text = f"{head}{kind} (its traceback could not be redacted; see the log)\n"
    try:
        stream.write(text)
        stream.flush()
    except Exception:  # a closed stderr: as the interpreter's hook, nothing more to do
        pass


def _terminal_counts(levelno: int) -> list[tuple[Any, int]]:
    """The console and JSON stream sinks writing to the process's stdout or stderr (file
    descriptor 1 or 2: not a stream swapped in for ``sys.stdout``, a ``StringIO`` or
    ``/dev/null`` opened by the program) on a route that takes *levelno* with no filter of its
    own, each with the number of records handed to it so far."""
    from ..logger import current_runtime
    from ..sinks.stream import ConsoleSink, StreamSink

    counts: list[tuple[Any, int]] = []
    try:
        for route in current_runtime().pipeline.routes:
            sink = route.sink
            if (
                isinstance(sink, (StreamSink, ConsoleSink))
                and route.level <= levelno
                and route.filter is None
                and _on_fd_1_or_2(sink.stream)
            ):
                counts.append((sink, sink.produced))
    except Exception:
        return []
    return counts


def _on_fd_1_or_2(stream: Any) -> bool:
    try:
        return stream is not None and stream.fileno() in (1, 2)
    except Exception:  # no descriptor (io.StringIO), or a closed stream
        return False


def _terminal_took_it(before: list[tuple[Any, int]]) -> bool:
    """Whether the crash just logged surely reached stdout or stderr, where the interpreter's
    default hook would print its traceback: one of the sinks of :func:`_terminal_counts`
    (taken before the crash was logged) was handed a record since, so no processor or rate
    limit dropped it on the way (what the sink could not write is counted as lost, and then
    the traceback is printed too). If not (``stream="none"``: files only; a filtered route; a
    processor that dropped it), :func:`_print_redacted` prints it on stderr. A crash is never
    silent for whoever runs the program; at worst its traceback shows twice."""
    try:
        return any(sink.produced > count for sink, count in before)
    except Exception:
        return False


def asyncio_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """An asyncio loop exception handler (``loop.set_exception_handler``) that logs to
    servicelog, with the task or future named in the record."""
    exc = context.get("exception")
    fields: dict[str, Any] = dict(raised_in(exc) or ())  # bound where it was raised
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


class _ChainedAsyncioHandler:
    """:func:`asyncio_exception_handler`, then the loop's handler it replaced."""

    __slots__ = ("previous",)

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        try:
            asyncio_exception_handler(loop, context)
        except Exception:  # counted by emit_foreign; the previous handler must still run
            pass
        self.previous(loop, context)


def install_asyncio_handler(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Log the event loop's unhandled exceptions through servicelog (the running loop by
    default). Without it they still arrive, through the stdlib ``asyncio`` logger.

    A handler the loop already had is called after ours (asyncio's default one, which logs
    through ``asyncio``, is not: the record would come twice). Calling it again does nothing.
    """
    loop = loop or asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    if previous is asyncio_exception_handler or isinstance(previous, _ChainedAsyncioHandler):
        return
    handler = asyncio_exception_handler if previous is None else _ChainedAsyncioHandler(previous)
    loop.set_exception_handler(handler)
    _loops.add(loop)


#: The loops :func:`install_asyncio_handler` set a handler on. (Weakly: the handler it replaced
#: is found in ours, not kept here, where a handler holding its loop would keep it alive.)
_loops: weakref.WeakSet[Any] = weakref.WeakSet()


#: The loops :func:`reset` put back, for an :func:`install` that follows (a reconfiguration):
#: a loop running in another thread gets ours again too.
_unhooked: weakref.WeakSet[Any] = weakref.WeakSet()


def _unhook_loops() -> None:
    """Put back each loop's previous exception handler, where ours is still the one set."""
    for loop in list(_loops):
        try:
            if loop.is_closed():
                continue
            ours = loop.get_exception_handler()
            if ours is asyncio_exception_handler:
                loop.set_exception_handler(None)
            elif isinstance(ours, _ChainedAsyncioHandler):
                loop.set_exception_handler(ours.previous)
            else:  # another handler was set after ours: it stays
                continue
            _unhooked.add(loop)
        except Exception:  # half torn down: leave it
            pass
    _loops.clear()


def _rehook_loops() -> None:
    """Install the handler again on the loops :func:`reset` unhooked (still open)."""
    for loop in list(_unhooked):
        try:
            if not loop.is_closed():
                install_asyncio_handler(loop)
        except Exception:  # half torn down: leave it
            pass
    _unhooked.clear()


def install(*, warnings_: bool = True, excepthooks: bool = True) -> None:
    """Install the hooks (idempotent; :func:`reset` restores the previous ones)."""
    reset()
    if warnings_:
        _saved["showwarning"] = warnings.showwarning
        warnings.showwarning = _showwarning
    if excepthooks:
        hook = _ChainedHook(_log_uncaught, sys.excepthook, sys.__excepthook__, 50)
        thread_hook = _ChainedHook(
            _log_thread_uncaught, threading.excepthook, threading.__excepthook__, 40
        )
        _saved["excepthook"], _saved["threading_excepthook"] = hook, thread_hook
        sys.excepthook = hook
        threading.excepthook = thread_hook
        try:
            install_asyncio_handler()
        except RuntimeError:  # no running loop: asyncio's default handler logs via stdlib
            pass
        _rehook_loops()  # a reconfiguration: the loops that had ours keep it


def reset() -> None:
    """Restore the hooks :func:`install` replaced, where ours is still the one installed.

    A hook installed after ours (``sentry_sdk.init()`` after ``configure()``) stays: it calls
    ours, which from now on only forwards to the hook before it.
    """
    showwarning = _saved.pop("showwarning", None)
    if showwarning is not None and warnings.showwarning is _showwarning:
        warnings.showwarning = showwarning
    _unhook(sys, _saved.pop("excepthook", None))
    _unhook(threading, _saved.pop("threading_excepthook", None))
    _unhook_loops()
    # (install() hooks them again when it follows: a reconfiguration; else they stay as the
    # application had them.)


def _unhook(module: Any, hook: _ChainedHook | None) -> None:
    """Put back the ``excepthook`` of *module* (``sys`` or ``threading``) that *hook* replaced."""
    if hook is None:
        return
    hook.active = False
    if module.excepthook is hook:
        module.excepthook = hook.previous
