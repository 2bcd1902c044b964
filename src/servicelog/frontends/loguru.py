"""loguru as a front-end: ``from loguru import logger; logger.info(...)`` feeds servicelog.

:func:`install` replaces loguru's handlers with one sink that forwards the level, message,
exception, call site and every ``bind()`` / ``contextualize()`` field. The guide's
``logger.info("msg", extra={...})`` gives top-level fields, not a nested ``extra.extra``.

Levels follow servicelog's rule, per logger name: a loguru record's name is the module that
logged (``record["name"]``), so ``levels={"myapp.jobs": "WARNING"}`` applies to loguru calls
in ``myapp.jobs`` too. The sink's own loguru level is the lowest configured level, so a call
below every level is dropped by loguru before it builds a record; the sink checks the name.
When the levels change, the sink is added again with the new lowest level.
"""

from __future__ import annotations

from typing import Any

from loguru import logger

from ..logger import Runtime, current_runtime
from ._build import emit_foreign, lowest_level, on_levels

__all__ = ["install", "reset"]

_LEVELS = {"TRACE": 5, "DEBUG": 10, "INFO": 20, "SUCCESS": 20, "WARNING": 30, "ERROR": 40}
_state: dict[str, Any] = {}


def _ns(when: Any) -> int:
    """Nanoseconds since the epoch, exact to the microsecond (``timestamp() * 1e9`` is not)."""
    return int(when.timestamp()) * 1_000_000_000 + int(when.microsecond) * 1000


def _sink(message: Any) -> None:
    record = message.record
    level = record["level"]
    levelno = _LEVELS.get(level.name, level.no if level.no < 50 else 50)
    name = record["name"] or "loguru"
    if levelno < current_runtime().level_for(name):  # servicelog's rule, before any work
        return
    extra = record["extra"]
    fields: dict[str, Any] = {}
    for key, value in extra.items():
        if key == "extra" and isinstance(value, dict):
            fields.update(value)  # the guide's extra={...}: flatten, don't nest
        else:
            fields[key] = value
    exception = record["exception"]
    emit_foreign(
        levelno,
        record["message"],
        name,
        time_ns=_ns(record["time"]),
        thread=record["thread"].name,
        origin=(record["file"].path, record["line"], record["function"]),
        fields=fields,
        exc_info=exception.value if exception is not None else None,
        where="loguru bridge",
        checked=True,
    )


def install(level: int | None = None) -> None:
    """Replace loguru's handlers with servicelog's sink (idempotent; :func:`reset` restores
    loguru's default stderr handler). The levels are those of the runtime in force (*level*
    is not used; kept for callers)."""
    reset()
    logger.remove()
    _add_sink(lowest_level(current_runtime()))
    on_levels("loguru", _apply_levels)


def _add_sink(level: int) -> None:
    _state["id"] = logger.add(_sink, level=level, format="{message}", catch=False)
    _state["level"] = level


def _apply_levels(runtime: Runtime) -> None:
    """loguru has no way to change a handler's level: add the sink again with the new one.
    The new handler first: a record another thread logs at that instant may reach both
    (written twice), but none reaches neither."""
    level = lowest_level(runtime)
    old = _state.get("id")
    if old is None or level == _state.get("level"):
        return
    _add_sink(level)
    try:
        logger.remove(old)
    except ValueError:  # removed meanwhile by the application
        pass


def reset() -> None:
    """Remove servicelog's sink and give loguru back its default stderr handler."""
    on_levels("loguru", None)
    _state.pop("level", None)
    handler_id = _state.pop("id", None)
    if handler_id is not None:
        try:
            logger.remove(handler_id)
        except ValueError:
            pass
        import sys

        logger.add(sys.stderr)
