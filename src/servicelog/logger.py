"""servicelog's own logger: ``get_logger(name)`` and its level methods.

Speed is the design constraint here (see ``bench/``):

* A call below the logger's level must cost no more than an empty method call. So the level
  methods are *attributes* of each logger, swapped whenever the configuration changes: a
  filtered level is the no-op function ``_disabled``; an enabled one is a closure with
  everything it needs (level name, logger name, the pipeline) in its cells.
* An enabled call captures what belongs to the caller (time, thread, context, call site,
  exception) and builds the ECS record dict in its final key order in one go.
"""

from __future__ import annotations

import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping

from . import _errors
from .context import _local_get, _scope_get
from .levels import level_name, parse_level
from .pipeline import Pipeline
from .record import (
    _DIGITS,
    LOGGER,
    RESERVED_KEYS,
    THREAD,
    ExcInfo,
    Record,
    _tls,
    _ts_cache,
    add_exception,
    add_origin,
    add_stack,
    format_timestamp,
    merge_fields,
    safe_keys,
    safe_repr,
    safe_str,
    thread_name,
)

TYPE_CHECKING = False  # typing is imported only by type checkers: it costs ~8 ms at import

if TYPE_CHECKING:
    from typing import Any

__all__ = ["Logger", "Runtime", "get_logger"]

_time_ns = time.time_ns
_getframe = sys._getframe
# Keys that need a closer look: reserved record keys, and the call options.
_plain_isdisjoint = (RESERVED_KEYS | {"exc_info", "stack_info", "stacklevel"}).isdisjoint


class Runtime:
    """What the loggers need from the configuration (built by ``configure()``)."""

    __slots__ = ("callsite", "level", "levels", "pipeline", "show_locals")

    def __init__(
        self,
        pipeline: Pipeline,
        level: int = 20,
        levels: Mapping[str, int] | None = None,
        callsite: bool = False,
        show_locals: bool = False,
    ) -> None:
        self.pipeline = pipeline
        self.level = level
        self.levels: Mapping[str, int] = levels or {}
        self.callsite = callsite
        self.show_locals = show_locals

    def level_for(self, name: str) -> int:
        """The effective level of logger *name*: its own, its nearest parent's, or the default."""
        levels = self.levels
        probe = name
        while probe:
            if probe in levels:
                return levels[probe]
            dot = probe.rfind(".")
            probe = probe[:dot] if dot > 0 else ""
        return self.level


def _disabled(*args: Any, **kwargs: Any) -> None:
    """A filtered level: do nothing, as cheaply as Python can."""
    return


LevelMethod = Callable[..., None]
#: A level method called without a positional message (``log.info(event="...")``).
_NO_MESSAGE: Any = object()


def _make_method(
    levelno: int, logger: Logger, runtime: Runtime, *, default_exc: bool = False
) -> LevelMethod:
    general = _make_general(levelno, logger, runtime, default_exc=default_exc)
    if default_exc or runtime.callsite:
        return general
    return _make_lean(levelno, logger, runtime, general)


def _make_lean(levelno: int, logger: Logger, runtime: Runtime, general: LevelMethod) -> LevelMethod:
    """The level method for the common case (no call site, no exception by default), which is
    most calls in production. Anything unusual in the fields (``exc_info``, ``stack_info``, a
    reserved key) goes to *general*, with ``stacklevel`` raised by one for this frame."""
    lvl = level_name(levelno)
    name = logger.name
    bound = logger._bound
    emit = runtime.pipeline.emit_for(levelno)
    ts_cache = _ts_cache
    digits = _DIGITS

    def method(event: object = _NO_MESSAGE, /, *args: object, **fields: Any) -> None:
        try:
            if event is _NO_MESSAGE:  # log.info(event=...): the structlog way
                event = fields.pop("event", "")
            if fields and not _plain_isdisjoint(fields):
                fields["stacklevel"] = fields.get("stacklevel", 1) + 1
                return general(event, *args, **fields)
            message = event if type(event) is str else safe_str(event)
            if args:
                message = _interpolate(message, args)
            try:
                thread = _tls.name
            except AttributeError:
                thread = thread_name()
            # format_timestamp(), inlined: the call alone was a tenth of the whole.
            ns = _time_ns()
            start, end, prefix = ts_cache[0]
            if not start <= ns < end:
                format_timestamp(ns)
                start, end, prefix = ts_cache[0]
            us = (ns - start) // 1000
            timestamp = f"{prefix}{digits[us // 1000]}{digits[us % 1000]}Z"
            # The context (keys were checked against RESERVED_KEYS when bound), then the fields.
            # The usual cases are built in one expression: no method calls, at most one resize.
            scope = _scope_get()
            local = _local_get()
            record: Record
            if scope or bound:
                record = {
                    "@timestamp": timestamp,
                    "log.level": lvl,
                    "message": message,
                    LOGGER: name,
                    THREAD: thread,
                }
                if scope:
                    record.update(scope)
                if local:
                    record.update(local)
                if bound:
                    record.update(bound)
                record.update(fields)
            elif local:
                record = {
                    "@timestamp": timestamp,
                    "log.level": lvl,
                    "message": message,
                    LOGGER: name,
                    THREAD: thread,
                    **local,
                    **fields,
                }
            else:
                record = {
                    "@timestamp": timestamp,
                    "log.level": lvl,
                    "message": message,
                    LOGGER: name,
                    THREAD: thread,
                    **fields,
                }
            emit(record, levelno)
        except Exception as exc:
            _errors.report("log call", exc, lost=1)
        return None

    return method


def _make_general(
    levelno: int, logger: Logger, runtime: Runtime, *, default_exc: bool = False
) -> LevelMethod:
    lvl = level_name(levelno)
    name = logger.name
    bound = logger._bound
    emit = runtime.pipeline.emit_for(levelno)
    callsite = runtime.callsite
    show_locals = runtime.show_locals

    # One signature, ``(event, *args, **fields)``: named keyword-only parameters next to
    # ``**fields`` make CPython match every keyword against them, which cost ~0.3 us per call
    # here. exc_info / stack_info / stacklevel are picked out of ``fields`` only when present,
    # by the same set test that guards the reserved keys.
    def method(event: object = _NO_MESSAGE, /, *args: object, **fields: Any) -> None:
        try:
            if event is _NO_MESSAGE:  # log.info(event=...): the structlog way
                event = fields.pop("event", "")
            message = event if type(event) is str else safe_str(event)
            if args:
                message = _interpolate(message, args)
            try:
                thread = _tls.name
            except AttributeError:
                thread = thread_name()
            record: Record = {
                "@timestamp": format_timestamp(_time_ns()),
                "log.level": lvl,
                "message": message,
                LOGGER: name,
                THREAD: thread,
            }
            exc_info: ExcInfo = default_exc
            stack_info = False
            stacklevel = 1
            special = fields and not _plain_isdisjoint(fields)
            if special:
                exc_info = fields.pop("exc_info", default_exc)
                stack_info = fields.pop("stack_info", False)
                stacklevel = fields.pop("stacklevel", 1)
            if callsite:
                add_origin(record, _getframe(stacklevel))
            # The context: keys were checked against RESERVED_KEYS when bound.
            scope = _scope_get()
            if scope:
                record.update(scope)
            local = _local_get()
            if local:
                record.update(local)
            if bound:
                record.update(bound)
            if fields:
                if special:
                    merge_fields(record, fields)
                else:
                    record.update(fields)
            if exc_info:
                add_exception(record, exc_info, show_locals=show_locals)
            if stack_info:
                add_stack(record, _getframe(stacklevel))
            emit(record, levelno)
        except Exception as exc:
            _errors.report("log call", exc, lost=1)

    return method


def _interpolate(message: str, args: tuple[object, ...]) -> str:
    """``%``-style arguments, as the stdlib does; a mismatch is shown, not raised."""
    values: object = args
    if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
        # logging.LogRecord's rule: one non-empty mapping fills "%(user)s"-style formats.
        values = args[0]
    try:
        return message % values
    except Exception:  # a mismatch, or an argument whose __str__/__repr__ raises
        return f"{message} {args_repr(args)}"


def args_repr(args: object) -> str:
    """``repr(args)`` that never raises: a tuple's items are shown one by one, so that one
    argument whose ``__repr__`` raises hides only itself."""
    if type(args) is not tuple:
        return safe_repr(args)
    items = ", ".join(safe_repr(arg) for arg in args)
    return f"({items},)" if len(args) == 1 else f"({items})"


class Logger:
    """A named logger. Get one with :func:`get_logger`; never instantiate directly.

    Methods: ``trace``, ``debug``, ``info``, ``warning``, ``error``, ``exception``,
    ``critical`` (each ``(message, /, *args, exc_info=None, stack_info=False, stacklevel=1,
    **fields)``), and ``log(level, message, /, ...)``. The message (and the level) are
    positional only, so any name is free for a field (``event=``, ``message=`` and ``level=``
    among them; see the records' naming rules for what they become). ``exception`` logs at
    ERROR with the current exception. ``stacklevel`` works as in the standard library: a helper
    that logs for its caller passes 2, so ``log.origin.*`` names the caller.
    """

    __slots__ = (
        "__weakref__",
        "_bound",
        "_levelno",
        "critical",
        "debug",
        "error",
        "exception",
        "info",
        "name",
        "trace",
        "warning",
    )

    trace: LevelMethod
    debug: LevelMethod
    info: LevelMethod
    warning: LevelMethod
    error: LevelMethod
    exception: LevelMethod
    critical: LevelMethod

    def __init__(self, name: str, bound: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self._bound: dict[str, Any] = safe_keys(bound) if bound else {}
        self._levelno = 20
        _all_loggers.add(self)
        self._refresh(_runtime)

    def _refresh(self, runtime: Runtime) -> None:
        self._levelno = threshold = runtime.level_for(self.name)
        for attr, levelno in _METHOD_LEVELS:
            if levelno >= threshold:
                method = _make_method(levelno, self, runtime, default_exc=attr == "exception")
            else:
                method = _disabled
            object.__setattr__(self, attr, method)

    @property
    def warn(self) -> LevelMethod:
        """Alias of :attr:`warning`."""
        return self.warning

    def log(
        self, level: int | str, event: object = _NO_MESSAGE, /, *args: object, **fields: Any
    ) -> None:
        """Log at a level given as a number or a name."""
        try:
            levelno = parse_level(level)
            if levelno < self._levelno:
                return
            # One frame more than a level method's: this one, between it and the caller.
            fields["stacklevel"] = fields.get("stacklevel", 1) + 1
        except Exception as exc:  # a bad level or stacklevel
            _errors.report("log call", exc, lost=1)
            return
        _make_method(levelno, self, _runtime)(event, *args, **fields)

    def is_enabled_for(self, level: int | str) -> bool:
        """Whether a call at *level* would be logged (guard expensive argument building)."""
        return parse_level(level) >= self._levelno

    def bind(self, **fields: Any) -> Logger:
        """A new logger with the same name whose every line also carries *fields*."""
        return _BoundLogger(self.name, {**self._bound, **fields})

    def __repr__(self) -> str:
        return f"<servicelog.Logger {self.name!r} level={level_name(self._levelno)}>"


class _BoundLogger(Logger):
    """A logger made by :meth:`Logger.bind`, often one per request or job: its level methods
    are built on first use, so it builds the one or two it calls instead of all seven
    (``bind()`` ~1 us instead of ~6.6 us). Named loggers build theirs at once: a class with
    ``__getattr__`` pays ~10 ns more on every attribute read, which a filtered call feels."""

    __slots__ = ()

    def __init__(self, name: str, bound: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self._bound = safe_keys(bound) if bound else {}
        self._levelno = _runtime.level_for(name)
        _all_loggers.add(self)

    def _refresh(self, runtime: Runtime) -> None:
        """A new configuration: the new level, and every level method built again on use."""
        self._levelno = runtime.level_for(self.name)
        for attr, _ in _METHOD_LEVELS:
            try:
                object.__delattr__(self, attr)
            except AttributeError:  # never used: nothing to forget
                pass

    if not TYPE_CHECKING:  # to type checkers, the methods are the annotated attributes

        def __getattr__(self, attr: str) -> LevelMethod:
            levelno = _LEVEL_OF_METHOD.get(attr)
            if levelno is None:
                raise AttributeError(f"'Logger' object has no attribute {attr!r}")
            while True:
                runtime = _runtime
                if levelno >= self._levelno:
                    default_exc = attr == "exception"
                    method = _make_method(levelno, self, runtime, default_exc=default_exc)
                else:
                    method = _disabled
                object.__setattr__(self, attr, method)
                # Reconfigured meanwhile: its refresh may have run before this method was
                # stored, so build it again for the new configuration.
                if _runtime is runtime:
                    return method


_METHOD_LEVELS = (
    ("trace", 5),
    ("debug", 10),
    ("info", 20),
    ("warning", 30),
    ("error", 40),
    ("exception", 40),
    ("critical", 50),
)
_LEVEL_OF_METHOD = dict(_METHOD_LEVELS)

_registry_lock = threading.Lock()
_named: dict[str, Logger] = {}
_all_loggers: weakref.WeakSet[Logger] = weakref.WeakSet()
_runtime: Runtime


def get_logger(name: str | None = None) -> Logger:
    """Return the logger called *name* (the calling module's ``__name__`` is the usual choice).

    Loggers are cached per name; any number of them is cheap.
    """
    if name is None:
        name = _caller_module()
    logger = _named.get(name)
    if logger is None:
        with _registry_lock:
            logger = _named.get(name)
            if logger is None:
                logger = _named[name] = Logger(name)
    return logger


def _caller_module() -> str:
    try:
        return str(_getframe(2).f_globals.get("__name__", "app"))
    except ValueError:  # pragma: no cover - no caller frame
        return "app"


def install_runtime(runtime: Runtime) -> None:
    """Swap in a new configuration and refresh every live logger's level methods."""
    global _runtime
    _runtime = runtime
    for logger in list(_all_loggers):
        logger._refresh(runtime)


def current_runtime() -> Runtime:
    return _runtime


class _UnconfiguredSink:
    """Before configure(): readable lines on stderr at INFO, touching nothing else in the
    process (no stdlib handlers, no hooks). Built on first use, so importing stays cheap."""

    name = "unconfigured"

    def __init__(self) -> None:
        self._console: Any = None

    def emit(self, record: Record, levelno: int) -> None:
        if self._console is None:
            from .render.console import ConsoleRenderer, should_color
            from .sinks.stream import ConsoleSink

            renderer = ConsoleRenderer(color=should_color(sys.stderr))
            self._console = ConsoleSink(renderer, "stderr")
        self._console.emit(record, levelno)

    def flush(self) -> None:
        if self._console is not None:
            self._console.flush()

    def close(self, timeout: float | None = None) -> None:
        self.flush()


def _initial_runtime() -> Runtime:
    from .pipeline import Route

    return Runtime(Pipeline([Route(_UnconfiguredSink())]))


_runtime = _initial_runtime()
