"""Build a record from a foreign front-end's pieces (stdlib, structlog, loguru, hooks)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from .. import _errors
from ..context import current as _context
from ..levels import level_name
from ..logger import Runtime, current_runtime
from ..record import (
    LOGGER,
    ORIGIN_FILE,
    ORIGIN_FUNCTION,
    ORIGIN_LINE,
    THREAD,
    ExcInfo,
    Record,
    add_exception,
    format_timestamp,
    merge_fields,
    safe_str,
    thread_name,
)

__all__ = ["app_frame", "apply_levels", "emit_foreign", "lowest_level", "on_levels"]

#: What each installed front-end does when the levels change: ``configure()`` installs the
#: front-ends after the new runtime, and ``capture_logs(level=...)`` swaps the runtime for a
#: block; both then call :func:`apply_levels`.
_level_listeners: dict[str, Callable[[Runtime], None]] = {}


def on_levels(frontend: str, listener: Callable[[Runtime], None] | None) -> None:
    """Register (or, with ``None``, remove) *frontend*'s reaction to a change of levels."""
    if listener is None:
        _level_listeners.pop(frontend, None)
    else:
        _level_listeners[frontend] = listener


def apply_levels(runtime: Runtime) -> None:
    """Make every installed front-end filter by *runtime*'s levels from now on."""
    for listener in list(_level_listeners.values()):
        listener(runtime)


def lowest_level(runtime: Runtime) -> int:
    """The lowest level any logger name can have under *runtime*: a front-end's own cheap
    filter may drop what is below it, and leaves the per-name check to servicelog."""
    return min([runtime.level, *runtime.levels.values()])


def emit_foreign(
    levelno: int,
    message: object,
    logger: str,
    *,
    time_ns: int,
    thread: str | None = None,
    origin: tuple[str, int, str] | None = None,
    fields: Mapping[str, Any] | None = None,
    exc_info: ExcInfo = None,
    stack: str | None = None,
    where: str = "front-end",
    checked: bool = False,
) -> None:
    """Build the ECS record and send it down the pipeline; never raises (outside strict mode).

    The record is dropped when *levelno* is below the level servicelog gives *logger* (the
    same rule as servicelog's own loggers), unless the caller says it has *checked* that.
    """
    try:
        runtime = current_runtime()
        if not checked and levelno < runtime.level_for(logger):
            return
        record: Record = {
            "@timestamp": format_timestamp(time_ns),
            "log.level": level_name(levelno),
            "message": message if type(message) is str else safe_str(message),
            LOGGER: logger,
            THREAD: thread or thread_name(),
        }
        if origin is not None and runtime.callsite:
            record[ORIGIN_FILE] = os.path.basename(origin[0])
            record[ORIGIN_LINE] = origin[1]
            record[ORIGIN_FUNCTION] = origin[2]
        ctx = _context()
        if ctx:
            record.update(ctx)  # context keys were checked against RESERVED_KEYS when bound
        if fields:
            merge_fields(record, fields)
        if exc_info:
            add_exception(record, exc_info, show_locals=runtime.show_locals)
        if stack:
            record["log.origin.stack"] = stack
        runtime.pipeline.emit(record, levelno)
    except Exception as exc:
        _errors.report(where, exc, lost=1)


def app_frame(skip: tuple[str, ...]) -> tuple[str, int, str] | None:
    """The first frame outside the modules named in *skip* (module name prefixes)."""
    frame: Any = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not module.startswith(skip):
            code = frame.f_code
            return code.co_filename, frame.f_lineno, code.co_name
        frame = frame.f_back
    return None
