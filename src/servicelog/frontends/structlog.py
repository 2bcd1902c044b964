"""structlog as a front-end: ``structlog.get_logger().info("x", k=v)`` feeds servicelog.

:func:`install` configures structlog so that its context (``structlog.contextvars``) is merged
and the final event dict goes, as one servicelog record, down servicelog's pipeline.

Levels follow servicelog's rule, per logger name (``level``, ``levels={...}``), and a change
reaches loggers already in use. structlog caches a module-level logger on first use (its own
advice for speed, and ours), so the bound-logger class cannot be swapped: servicelog keeps one
class, a filtering bound logger whose level methods are replaced in place whenever the levels
change. A method below the lowest configured level is a no-op (a filtered call stays as cheap
as structlog's own); the per-name check happens when the record is emitted. After
:func:`reset`, the methods of loggers cached meanwhile hand each call to a logger from the
structlog configuration restored.
"""

from __future__ import annotations

import re
import time
from collections.abc import MutableMapping
from typing import Any

import structlog

from ..logger import Runtime, current_runtime
from ._build import app_frame, emit_foreign, lowest_level, on_levels

__all__ = ["install", "reset"]

_LEVELS = {
    "debug": 10,
    "info": 20,
    "msg": 20,
    "warning": 30,
    "warn": 30,
    "error": 40,
    "exception": 40,
    "critical": 50,
    "fatal": 50,
}
_SKIP = ("structlog", "servicelog.frontends")
_saved: dict[str, Any] = {}
#: The lowest level a method of :class:`_BoundLogger` is live for; ``None``: not installed.
_floor: list[int | None] = [None]


def _name(context: MutableMapping[str, Any], default: str) -> str:
    """The logger name a record gets: a bound ``logger_name`` / ``logger``, else the one the
    logger was created with."""
    return str(context.get("logger_name") or context.get("logger") or default)


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # terminal escape sequences (colours, styles)


class _Output:
    """The "logger" at the end of structlog's chain: takes the final event dict."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.args: tuple[Any, ...] = ()

    def _emit(self, method: str, event_dict: dict[str, Any]) -> None:
        ns = time.time_ns()
        levelno = _LEVELS.get(method, 20)
        runtime = current_runtime()
        name = str(
            event_dict.pop("logger_name", None) or event_dict.pop("logger", None) or self.name
        )
        if levelno < runtime.level_for(name):  # servicelog's rule, per logger name
            return
        message = event_dict.pop("event", "")
        exc_info = event_dict.pop("exc_info", None)
        if method == "exception" and exc_info is None:
            exc_info = True
        stack = event_dict.pop("stack", None)
        event_dict.pop("level", None)
        emit_foreign(
            levelno,
            message,
            name,
            time_ns=ns,
            origin=app_frame(_SKIP) if runtime.callsite else None,
            fields=event_dict,
            exc_info=exc_info,
            stack=stack,
            where="structlog bridge",
            checked=True,
        )

    def __getattr__(self, method: str) -> Any:
        if method.startswith("__"):
            raise AttributeError(method)

        def log(*rendered: Any, **event_dict: Any) -> None:
            if rendered:  # a structlog.configure() made later ends in a renderer: its text
                text = rendered[0]
                if isinstance(text, (bytes, bytearray)):
                    text = bytes(text).decode("utf-8", "replace")
                text = text if isinstance(text, str) else repr(text)
                # Without ConsoleRenderer's colours: between a key and its "=" they hide
                # "password=..." from redaction (and they are noise in a JSON line).
                event_dict = {**event_dict, "event": _ANSI.sub("", text)}
            self._emit(method, event_dict)

        return log


class _Factory:
    def __call__(self, *args: Any) -> _Output:
        out = _Output(str(args[0]) if args else "structlog")
        out.args = args
        return out


def _nop(self: Any, event: str, *args: Any, **kw: Any) -> None:
    return None


async def _anop(self: Any, event: str, *args: Any, **kw: Any) -> None:
    return None


#: structlog's filtering bound logger at NOTSET: every method live, servicelog filters.
_Live: Any = structlog.make_filtering_bound_logger(0)


def _restored(self: Any) -> Any:
    """The logger *self* would be under the structlog configuration in force (after reset)."""
    args = getattr(self._logger, "args", ())
    restored = structlog.get_logger(*args, **self._context).bind()
    if isinstance(restored, _BoundLogger):
        # The configuration put back still names this class (saved while servicelog was
        # configured): forwarding again would never end. Its plain base logs as configured.
        return _Live(restored._logger, restored._processors, restored._context)
    return restored


def _forward(method: str) -> Any:
    if method.startswith("a"):

        async def ameth(self: Any, *args: Any, **kw: Any) -> Any:
            return await getattr(_restored(self), method)(*args, **kw)

        return ameth

    def meth(self: Any, *args: Any, **kw: Any) -> Any:
        return getattr(_restored(self), method)(*args, **kw)

    return meth


class _BoundLogger(_Live):  # type: ignore[misc]  # a class structlog builds at run time
    """The wrapper class servicelog configures; :func:`_set_floor` swaps its level methods."""

    def log(self, level: int, event: str, *args: Any, **kw: Any) -> Any:
        floor = _floor[0]
        if floor is None:
            return _restored(self).log(level, event, *args, **kw)
        if level < floor:
            return None
        return _Live.log(self, level, event, *args, **kw)

    async def alog(self, level: int, event: str, *args: Any, **kw: Any) -> Any:
        floor = _floor[0]
        if floor is None:
            return await _restored(self).alog(level, event, *args, **kw)
        if level < floor:
            return None
        return await _Live.alog(self, level, event, *args, **kw)

    def is_enabled_for(self, level: int) -> bool:
        if _floor[0] is None:
            return bool(_restored(self).is_enabled_for(level))
        return level >= self.get_effective_level()

    def get_effective_level(self) -> int:
        if _floor[0] is None:
            return int(_restored(self).get_effective_level())
        return current_runtime().level_for(_name(self._context, self._logger.name))


def _set_floor(floor: int | None) -> None:
    """Make :class:`_BoundLogger`'s methods live from *floor* up (no-ops below), or, with
    ``None``, forward every call to the structlog configuration in force."""
    _floor[0] = floor
    for method, levelno in _LEVELS.items():
        if method == "exception":  # structlog's calls self.error(..., exc_info=True)
            continue
        for name in (method, f"a{method}"):
            if floor is None:
                value = _forward(name)
            elif levelno < floor:
                value = _anop if name.startswith("a") else _nop
            else:
                value = _Live.__dict__[name]
            setattr(_BoundLogger, name, value)


def _apply_levels(runtime: Runtime) -> None:
    floor = lowest_level(runtime)
    if floor != _floor[0]:
        _set_floor(floor)


def _to_kwargs(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
    # The last processor returns the dict itself: structlog then calls logger.<method>(**dict).
    return event_dict


def install(level: int | None = None) -> None:
    """Configure structlog to feed servicelog (idempotent; :func:`reset` restores).

    The levels are those of the runtime in force (*level* is not used; kept for callers).
    """
    if not _saved:
        _saved["config"] = structlog.get_config()
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, _to_kwargs],
        wrapper_class=_BoundLogger,
        logger_factory=_Factory(),
        # structlog's own advice for speed: without it every call on a module-level
        # ``structlog.get_logger()`` rebuilds the bound logger (~2 us even when filtered).
        # A cached logger keeps its class, hence the methods swapped in place (see above).
        cache_logger_on_first_use=True,
    )
    # The levels of the runtime in force (configure() installs it before the front-ends).
    _apply_levels(current_runtime())
    on_levels("structlog", _apply_levels)


def reset() -> None:
    """Restore structlog's configuration from before :func:`install`; loggers cached meanwhile
    then log through it."""
    on_levels("structlog", None)
    if _saved:
        structlog.configure(**_saved.pop("config"))
    if _floor[0] is not None:
        _set_floor(None)
