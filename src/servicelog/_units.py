"""Parsing of the human-friendly option values of file sinks: sizes, durations, times of day.

The spellings follow the guide (and loguru, which it uses): ``"100 MB"``, ``"1 week"``,
``"00:00"``, ``"30 days"``. Sizes use SI units (``MB`` = 1,000,000 bytes) and IEC units
(``MiB`` = 1,048,576 bytes), as ``ls --si`` and ``ls -h`` do; a bare number is bytes. A value
that cannot be parsed raises :class:`~servicelog.exceptions.ConfigError` naming the option, the
value and what is allowed.
"""

from __future__ import annotations

import re
from datetime import time, timedelta

from .exceptions import ConfigError

__all__ = ["parse_duration", "parse_size", "parse_time_of_day"]

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE_ALLOWED = "a size such as '100 MB', '1.5 GiB', '512 KB' or a number of bytes"
# re.ASCII: \d is [0-9] only, as in the other spellings ('٣ MB' is not a size).
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$", re.ASCII)
#: The largest size accepted: 1 PiB (larger is a typo, and past float precision).
MAX_SIZE = 1024**5
#: The longest duration accepted: 100 years (``timedelta`` itself stops at 999,999,999 days).
MAX_DURATION = timedelta(days=36525)

_DURATION_UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
}
_DURATION_ALLOWED = (
    "a duration such as '30 days', '1 week', '6 hours', '90 min' or '1 second' "
    "(units: s, min, h, day, week; several parts may be combined: '1 h 30 min')"
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]+)", re.ASCII)
_TIME_RE = re.compile(r"^\s*(?:at\s+)?(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$", re.IGNORECASE | re.ASCII)


def parse_size(value: object, option: str = "size") -> int:
    """Parse a size into bytes.

    Args:
        value: ``"100 MB"``, ``"1.5GiB"``, ``"512 KB"``, or an int (bytes). A unit needs
            its ``B`` (``"100 M"`` is refused: it reads as 100 minutes just as well).
        option: the option's name, for the error message.

    Returns:
        The size in bytes (at least 1, at most 1 PiB).

    Raises:
        ConfigError: for anything else, or a size of zero.
    """
    if isinstance(value, bool):
        raise ConfigError(option, value, _SIZE_ALLOWED)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        match = _SIZE_RE.match(value)
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _SIZE_UNITS:
            raise ConfigError(option, value, _SIZE_ALLOWED)
        amount = float(match.group(1)) * _SIZE_UNITS[unit]  # inf for 400 digits: no overflow
        if amount > MAX_SIZE:
            raise ConfigError(option, value, f"{_SIZE_ALLOWED}, at most 1 PiB")
        number = int(amount)
    else:
        raise ConfigError(option, value, _SIZE_ALLOWED)
    if number < 1:
        raise ConfigError(option, value, f"{_SIZE_ALLOWED}, greater than zero")
    if number > MAX_SIZE:
        raise ConfigError(option, value, f"{_SIZE_ALLOWED}, at most 1 PiB")
    return number


def is_size(value: str) -> bool:
    """Whether *value* reads as a size (``"100 MB"``), as opposed to a duration or a time."""
    match = _SIZE_RE.match(value)
    return match is not None and match.group(2).lower() in _SIZE_UNITS


def parse_duration(value: object, option: str = "duration") -> timedelta:
    """Parse a duration.

    Args:
        value: ``"30 days"``, ``"1 week"``, ``"1 h 30 min"``, ``"1 second"``, or a
            :class:`~datetime.timedelta`.
        option: the option's name, for the error message.

    Returns:
        A positive :class:`~datetime.timedelta`, at most 100 years.

    Raises:
        ConfigError: for anything else, or a duration that is not positive.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        text = value.strip().lower()
        parts = _DURATION_PART.findall(text)
        rest = _DURATION_PART.sub("", text).replace(",", "").strip()
        if not parts or rest or any(unit not in _DURATION_UNITS for _, unit in parts):
            raise ConfigError(option, value, _DURATION_ALLOWED)
        seconds = sum(float(n) * _DURATION_UNITS[unit] for n, unit in parts)
    else:
        raise ConfigError(option, value, _DURATION_ALLOWED)
    if seconds <= 0:
        raise ConfigError(option, value, f"{_DURATION_ALLOWED}, greater than zero")
    # Checked before timedelta(), which raises OverflowError past 999,999,999 days.
    if seconds > MAX_DURATION.total_seconds():
        raise ConfigError(option, value, f"{_DURATION_ALLOWED}, at most 100 years")
    return timedelta(seconds=seconds)


def parse_time_of_day(value: object, option: str = "time") -> time:
    """Parse a time of day, ``"HH:MM"`` or ``"HH:MM:SS"`` (24-hour clock).

    Args:
        value: ``"00:00"``, ``"13:30"``, ``"at 02:00"``, or a :class:`~datetime.time`.
        option: the option's name, for the error message.

    Returns:
        A naive :class:`~datetime.time`.

    Raises:
        ConfigError: for anything else.
    """
    allowed = "a time of day 'HH:MM' or 'HH:MM:SS', such as '00:00' or '13:30'"
    if isinstance(value, time):
        return value.replace(tzinfo=None)
    match = _TIME_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(option, value, allowed)
    hour, minute, second = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ConfigError(option, value, allowed)
    return time(hour, minute, second)


def is_time_of_day(value: str) -> bool:
    """Whether *value* reads as a time of day (``"00:00"``)."""
    return _TIME_RE.match(value) is not None
