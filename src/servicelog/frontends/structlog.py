"""structlog as a front-end: ``structlog.get_logger().info("x", k=v)`` feeds servicelog.

:func:`install` configures structlog so that its context (``structlog.contextvars``) is merged
and the final event dict goes, as one servicelog record, down servicelog's pipeline. structlog's
own filtering bound logger does the level check, so a filtered call stays cheap.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any

import structlog

from ..logger import current_runtime
from ._build import app_frame, emit_foreign

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


class _Output:
    """The "logger" at the end of structlog's chain: takes the final event dict."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _emit(self, method: str, event_dict: dict[str, Any]) -> None:
        ns = time.time_ns()
        levelno = _LEVELS.get(method, 20)
        message = event_dict.pop("event", "")
        exc_info = event_dict.pop("exc_info", None)
        if method == "exception" and exc_info is None:
            exc_info = True
        stack = event_dict.pop("stack", None)
        event_dict.pop("level", None)
        name = event_dict.pop("logger_name", None) or event_dict.pop("logger", None) or self.name
        emit_foreign(
            levelno,
            message,
            str(name),
            time_ns=ns,
            origin=app_frame(_SKIP) if current_runtime().callsite else None,
            fields=event_dict,
            exc_info=exc_info,
            stack=stack,
            where="structlog bridge",
        )

    def __getattr__(self, method: str) -> Any:
        if method.startswith("__"):
            raise AttributeError(method)

        def log(**event_dict: Any) -> None:
            self._emit(method, event_dict)

        return log


class _Factory:
    def __call__(self, *args: Any) -> _Output:
        return _Output(str(args[0]) if args else "structlog")


def _to_kwargs(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
    # The last processor returns the dict itself: structlog then calls logger.<method>(**dict).
    return event_dict


def install(level: int) -> None:
    """Configure structlog to feed servicelog (idempotent; :func:`reset` restores)."""
    if not _saved:
        _saved["config"] = structlog.get_config()
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, _to_kwargs],
        wrapper_class=structlog.make_filtering_bound_logger(max(level, 10)),
        logger_factory=_Factory(),
        # structlog's own advice for speed: without it every call on a module-level
        # ``structlog.get_logger()`` rebuilds the bound logger (~2 us even when filtered).
        # A logger used before configure() keeps the configuration it first saw.
        cache_logger_on_first_use=True,
    )


def reset() -> None:
    """Restore structlog's configuration from before :func:`install`."""
    if _saved:
        structlog.configure(**_saved.pop("config"))
