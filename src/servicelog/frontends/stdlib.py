"""The bridge from the standard library's ``logging`` into servicelog's pipeline.

``configure()`` puts one :class:`ServicelogHandler` on the root logger. Every library that logs
through ``logging`` (uvicorn, SQLAlchemy, httpx, asyncio, ...) then comes out in servicelog's
shape, with the bound context, and ``extra={...}`` fields as top-level fields.

To print nothing twice, ``configure()`` also takes console output away from other handlers:
it removes ``StreamHandler``s writing to stdout/stderr from the root and from every existing
logger (a logger that had one and did not propagate, as Hugging Face's libraries set theirs up,
is made to propagate), and makes uvicorn's and gunicorn's loggers propagate to the root instead
of printing on their own. File handlers an application set up itself are left alone.
:func:`reset` (and ``servicelog.reset()``) puts everything back as it was.

If uvicorn is started from code after ``configure()``, pass ``log_config=uvicorn_log_config()``
(or ``log_config=None``) so that uvicorn does not install its own handlers again.

Levels: one rule for every front-end. A record from logger *N* is written when its level is at
least the level servicelog gives *N* (``levels={...}`` by dotted prefix, else ``level``).
``configure()`` also sets the root logger's level to ``level`` and each ``levels`` name's logger
to its level, so that ``isEnabledFor()`` agrees and filtered calls stay cheap. A stdlib
logger's own level can only filter more: a library that sets its logger to INFO or DEBUG
(uvicorn's ``dictConfig``, SQLAlchemy's ``echo=True``) does not undercut ``level``; to open up
a name, use ``levels={"myapp.db": "DEBUG"}``. The levels follow ``capture_logs(level=...)``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from .. import _errors
from ..context import current as _context
from ..levels import level_name
from ..logger import Runtime, args_repr, current_runtime
from ..record import (
    LOGGER,
    ORIGIN_FILE,
    ORIGIN_FUNCTION,
    ORIGIN_LINE,
    THREAD,
    Record,
    add_exception,
    format_timestamp,
    merge_fields,
    safe_str,
)
from ._build import on_levels

__all__ = ["ServicelogHandler", "install", "reset", "uvicorn_log_config"]

#: Loggers that print on their own by default; made to propagate to the root instead.
TAKEN_OVER = ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error", "gunicorn.access")

#: Loggers a library gives a console handler of its own later, if they have none then:
#: SQLAlchemy's ``create_engine(echo=True)`` (and ``echo_pool``) prints every statement to stdout
#: a second time. A ``NullHandler`` there while servicelog is configured keeps it from doing so;
#: the records still reach the root (``levels={"sqlalchemy.engine": "INFO"}`` writes them).
PRINT_LATER = (
    "sqlalchemy.engine.Engine",
    "sqlalchemy.pool.impl.QueuePool",
    "sqlalchemy.pool.impl.SingletonThreadPool",
    "sqlalchemy.pool.impl.StaticPool",
    "sqlalchemy.pool.impl.NullPool",
)

#: A server's loggers that get their console handler after the application (hence
#: ``configure()``) was imported: hypercorn makes them as it starts serving. A filter on each
#: takes the handler away at its first record, before any handler prints it (see
#: :func:`_take_late_console`).
LATE_CONSOLE = ("hypercorn.error", "hypercorn.access")

#: Loggers whose records are dropped: uvicorn's (and hypercorn's) access line, once servicelog
#: writes its own.
SILENCED: set[str] = set()

# A LogRecord's own attributes; anything else in its __dict__ came from ``extra=`` (or a filter).
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}
_N_STANDARD = len(logging.makeLogRecord({}).__dict__)


class ServicelogHandler(logging.Handler):
    """A ``logging.Handler`` that sends records into servicelog's pipeline.

    It runs on the thread that logged, so the context read is the caller's. It takes no lock:
    the pipeline is thread-safe, and stdlib's per-handler lock would serialise every thread.
    """

    def handle(self, record: logging.LogRecord) -> bool:
        if self.filters and not self.filter(record):
            return False
        if SILENCED and record.name in SILENCED:
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            runtime = current_runtime()
            levelno = record.levelno
            if levelno < runtime.level_for(record.name):
                # A library's own logger level (uvicorn's dictConfig: INFO; SQLAlchemy's
                # echo=True) must not undercut configure(level=...): one rule for every
                # front-end, and levels={...} is the way to open up a name.
                return
            try:
                message = record.getMessage()
            except Exception:  # a bad %-format in a library's log call
                message = f"{safe_str(record.msg)} {args_repr(record.args)}"
            out: Record = {
                "@timestamp": format_timestamp(int(record.created * 1e9)),
                "log.level": level_name(levelno),
                "message": message,
                LOGGER: record.name,
                THREAD: record.threadName or "",
            }
            if runtime.callsite:
                out[ORIGIN_FILE] = record.filename
                out[ORIGIN_LINE] = record.lineno
                out[ORIGIN_FUNCTION] = record.funcName
            ctx = _context()
            if ctx:
                out.update(ctx)  # context keys were checked against RESERVED_KEYS when bound
            attrs = record.__dict__
            if len(attrs) > _N_STANDARD:
                # ``extra=`` keys are set after the standard attributes, so only the tail of
                # __dict__ needs looking at (a formatter may have added message/asctime).
                extra = {k: attrs[k] for k in list(attrs)[_N_STANDARD:] if k not in _STANDARD}
                if extra:
                    merge_fields(out, extra)
            if record.exc_info:
                add_exception(out, record.exc_info, show_locals=runtime.show_locals)
            elif record.exc_text:
                out["error.stack_trace"] = record.exc_text
            if record.stack_info:
                out["log.origin.stack"] = record.stack_info
            runtime.pipeline.emit(out, levelno)
        except Exception as exc:
            _errors.report("stdlib bridge", exc, lost=1)


# --- install / reset --------------------------------------------------------------------------
_saved: dict[str, Any] = {}
ACCESS_LOGGERS = ("uvicorn.access", "gunicorn.access")


def _turned_off(name: str) -> bool:
    """Whether the logger *name* exists without a handler and without propagating (a server's
    way to turn its access log off), so that nothing it logs is written anywhere."""
    existing = logging.Logger.manager.loggerDict.get(name)
    return isinstance(existing, logging.Logger) and not existing.handlers and not existing.propagate


def _is_console(handler: logging.Handler) -> bool:
    if isinstance(handler, (ServicelogHandler, logging.FileHandler)):
        return False
    if not isinstance(handler, logging.StreamHandler):
        return False
    stream = getattr(handler, "stream", None)
    return stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)


def install(level: int, levels: dict[str, int], *, callsite: bool = True) -> ServicelogHandler:
    """Route all of ``logging`` into servicelog (idempotent; :func:`reset` undoes it)."""
    # An access logger its server turned off has no handler and does not propagate (uvicorn's
    # --no-access-log or access_log=False; gunicorn without --access-logfile): it stays off.
    # Made to propagate, uvicorn would log (and format, on every request) the lines it was
    # told not to.
    turned_off = {name for name in ACCESS_LOGGERS if _turned_off(name)}
    reset()
    root = logging.getLogger()
    manager = logging.Logger.manager
    saved_handlers: list[tuple[logging.Logger, logging.Handler]] = []
    saved_propagate: list[tuple[logging.Logger, bool]] = []
    loggers: list[logging.Logger] = [root]
    loggers += [lg for lg in manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    for lg in loggers:
        removed = False
        for handler in list(lg.handlers):
            if _is_console(handler) or (lg.name in TAKEN_OVER):
                lg.removeHandler(handler)
                saved_handlers.append((lg, handler))
                removed = True
        if removed and not lg.propagate and lg.name not in TAKEN_OVER:
            # A library that prints on its own and stops propagation (transformers, datasets,
            # huggingface_hub): without its handler, its records would reach no handler at all.
            saved_propagate.append((lg, lg.propagate))
            lg.propagate = True
    for name in TAKEN_OVER:
        lg = logging.getLogger(name)
        saved_propagate.append((lg, lg.propagate))
        # A replaced access log stays off (see asgi.request_context.replace_uvicorn_access_log).
        lg.propagate = name not in SILENCED and name not in turned_off
    for name in LATE_CONSOLE:
        lg = logging.getLogger(name)
        if _take_late_console not in lg.filters:
            lg.addFilter(_take_late_console)
    placeholders: list[tuple[logging.Logger, logging.Handler]] = []
    for name in PRINT_LATER:
        lg = logging.getLogger(name)
        if not lg.handlers:
            placeholder = logging.NullHandler()
            lg.addHandler(placeholder)
            placeholders.append((lg, placeholder))
    # NOTSET here: the levels are checked per name in emit() (see the module docstring).
    handler = ServicelogHandler(level=logging.NOTSET)
    root.addHandler(handler)
    _saved.update(
        handler=handler,
        handlers=saved_handlers,
        placeholders=placeholders,
        levels={},
        propagate=saved_propagate,
        srcfile=logging._srcfile,
    )
    _set_levels(level, levels)
    on_levels("stdlib", _apply_levels)
    if not callsite and not _other_handlers(loggers, handler):
        # The logging docs' own optimisation: without a source file, Logger.findCaller() does not
        # walk the stack on every call (about 1 us). Records then carry no pathname/lineno, which
        # servicelog does not use when call sites are off. Not when the application kept handlers
        # of its own (a FileHandler formatting %(filename)s would write "(unknown file)").
        logging._srcfile = None
    return handler


def _take_late_console(record: logging.LogRecord) -> bool:
    """A filter on each :data:`LATE_CONSOLE` logger: its console handlers, added since
    ``configure()``, are taken away (given back by :func:`reset`) before they print this
    record, and the logger propagates to the root, where servicelog's handler writes it. A
    replaced access log's records are dropped (:data:`SILENCED`); a file handler stays."""
    name = record.name
    if name in SILENCED:
        return False
    lg = logging.getLogger(name)
    if lg.handlers and _saved:
        taken = False
        for handler in list(lg.handlers):
            if _is_console(handler):
                lg.removeHandler(handler)
                _saved["handlers"].append((lg, handler))
                taken = True
        # (hypercorn's access logger does not propagate; one that writes to a file only stays
        # as it is)
        if taken and not lg.propagate:
            _saved["propagate"].append((lg, lg.propagate))
            lg.propagate = True
    return True


def _other_handlers(loggers: list[logging.Logger], ours: logging.Handler) -> bool:
    """Whether a logger holds a handler that is neither servicelog's nor a placeholder."""
    return any(
        handler is not ours and type(handler) is not logging.NullHandler
        for lg in loggers
        for handler in lg.handlers
    )


def _set_levels(level: int, levels: dict[str, int]) -> None:
    """Give the root logger *level* and each named logger its level in *levels*; a logger
    servicelog set before and *levels* no longer names gets its own level back."""
    saved: dict[logging.Logger, int] = _saved["levels"]
    root = logging.getLogger()
    wanted = {root: level}
    for name, lvl in levels.items():
        wanted[logging.getLogger(name)] = lvl
    for lg, original in list(saved.items()):
        if lg not in wanted:
            lg.setLevel(original)
            del saved[lg]
    for lg, lvl in wanted.items():
        saved.setdefault(lg, lg.level)
        if lg.level != lvl:
            lg.setLevel(lvl)  # clears the stdlib's isEnabledFor cache: costly, so only on change


def _apply_levels(runtime: Runtime) -> None:
    if _saved:
        _set_levels(runtime.level, dict(runtime.levels))


def reset() -> None:
    """Remove servicelog's handler and restore what :func:`install` changed."""
    on_levels("stdlib", None)
    if not _saved:
        return
    root = logging.getLogger()
    root.removeHandler(_saved["handler"])
    logging._srcfile = _saved["srcfile"]
    for lg, lvl in _saved["levels"].items():
        lg.setLevel(lvl)
    # An access log its server turned off since install() stays off: not made to propagate
    # again, nor given back the handler it had before.
    off = {name for name in ACCESS_LOGGERS if _turned_off(name)}
    for lg, prop in _saved["propagate"]:
        if lg.name not in off:
            lg.propagate = prop
    for lg, handler in _saved["handlers"]:
        if lg.name not in off and handler not in lg.handlers:
            lg.addHandler(handler)
    for lg, placeholder in _saved["placeholders"]:
        lg.removeHandler(placeholder)
    for name in LATE_CONSOLE:
        logging.getLogger(name).removeFilter(_take_late_console)
    _saved.clear()


def uvicorn_log_config() -> dict[str, Any]:
    """A ``log_config`` for ``uvicorn.run()`` that leaves all output to servicelog."""
    names = ("uvicorn", "uvicorn.error", "uvicorn.access")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {name: {"handlers": [], "propagate": True} for name in names},
    }
