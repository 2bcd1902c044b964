"""Log levels, and when to use each one.

The numbers are the standard library's, so a ``LogLevel`` can be passed anywhere ``logging``
expects a level, plus ``TRACE`` (5) below ``DEBUG`` for the very chatty.
"""

from __future__ import annotations

import enum

from .exceptions import ConfigError

__all__ = ["LogLevel", "level_name", "parse_level"]


class LogLevel(enum.IntEnum):
    """The levels servicelog knows, with the guide's advice on when to use each.

    Read a member's ``__doc__`` (``LogLevel.WARNING.__doc__``) for its advice.
    """

    def __new__(cls, value: int, doc: str) -> LogLevel:
        member = int.__new__(cls, value)
        member._value_ = value
        member.__doc__ = doc
        return member

    TRACE = (
        5,
        "Step-by-step detail for chasing one bug: loop iterations, raw payloads. Never on in "
        "production.",
    )
    DEBUG = (
        10,
        "Detailed diagnostic information for developers: variable values, function entry and "
        "exit, SQL statements, cache hits. Off in production, on while developing.",
    )
    INFO = (
        20,
        "Confirmation that things work as expected: a request completed, a user signed in, an "
        "order was placed, a job finished. The level a production service runs at.",
    )
    WARNING = (
        30,
        "Something unexpected that the service handled, or a sign of trouble ahead: a retry, a "
        "deprecated call, a slow query, a rate limit near its ceiling, a 4xx answer.",
    )
    ERROR = (
        40,
        "An operation failed and someone should look: an unhandled exception, a failed payment, "
        "a 5xx answer, a dependency that did not respond. Include the exception.",
    )
    CRITICAL = (
        50,
        "The service itself is in danger: it cannot start, lost its database, or is about to "
        "crash. Page someone.",
    )


_BY_NAME: dict[str, int] = {m.name: int(m) for m in LogLevel}
_BY_NAME.update({"WARN": 30, "FATAL": 50, "NOTSET": 0})
_NAMES: dict[int, str] = {int(m): m.name.lower() for m in LogLevel}


def level_name(levelno: int) -> str:
    """Return the lowercase ECS ``log.level`` value for a level number."""
    name = _NAMES.get(levelno)
    if name is not None:
        return name
    # Levels between the named ones (stdlib custom levels such as 25) round down.
    below = [n for n in _NAMES if n <= levelno]
    return _NAMES[max(below)] if below else "trace"


def parse_level(value: object, option: str = "level", *, source: str = "") -> int:
    """Turn ``"info"``, ``"INFO"``, ``20`` or ``LogLevel.INFO`` into a level number.

    Raises:
        ConfigError: naming *option* when the value is not a level.
    """
    if isinstance(value, bool):
        pass  # bool is an int subclass, and never a level anyone meant
    elif isinstance(value, int):
        if 0 <= value <= 50:
            return int(value)
    elif isinstance(value, str):
        key = value.strip().upper()
        if key in _BY_NAME:
            return _BY_NAME[key]
        # ASCII digits only: str.isdigit() is also true for '²' (int() refuses it) and '٣٠'.
        if key.isascii() and key.isdigit() and 0 <= int(key) <= 50:
            return int(key)
    raise ConfigError(
        option,
        value,
        "one of TRACE, DEBUG, INFO, WARNING, ERROR, CRITICAL (any case) or an integer 0-50",
        source=source,
    )
