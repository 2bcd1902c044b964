"""loguru as a front-end: ``from loguru import logger; logger.info(...)`` feeds servicelog.

:func:`install` replaces loguru's handlers with one sink that forwards the level, message,
exception, call site and every ``bind()`` / ``contextualize()`` field. The guide's
``logger.info("msg", extra={...})`` gives top-level fields, not a nested ``extra.extra``.
"""

from __future__ import annotations

from typing import Any

from loguru import logger

from ._build import emit_foreign

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
        record["name"] or "loguru",
        time_ns=_ns(record["time"]),
        thread=record["thread"].name,
        origin=(record["file"].path, record["line"], record["function"]),
        fields=fields,
        exc_info=exception.value if exception is not None else None,
        where="loguru bridge",
    )


def install(level: int) -> None:
    """Replace loguru's handlers with servicelog's sink (idempotent; :func:`reset` restores
    loguru's default stderr handler)."""
    reset()
    logger.remove()
    _state["id"] = logger.add(_sink, level=level, format="{message}", catch=False)


def reset() -> None:
    """Remove servicelog's sink and give loguru back its default stderr handler."""
    handler_id = _state.pop("id", None)
    if handler_id is not None:
        try:
            logger.remove(handler_id)
        except ValueError:
            pass
        import sys

        logger.add(sys.stderr)
