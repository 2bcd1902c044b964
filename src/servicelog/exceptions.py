"""servicelog's own errors.

These are raised by servicelog itself, never by the logging calls of an application (a failure
inside logging is counted in :func:`servicelog.stats` and reported, not raised). The tree::

    ServicelogError
     └── ConfigError (also a ValueError): bad configuration, raised by ``configure()``

The exception hierarchy for *your API's* error responses lives in ``servicelog.errors``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~8 ms at import: only for type checkers

if TYPE_CHECKING:
    from typing import Any

__all__ = ["ConfigError", "ServicelogError"]


class ServicelogError(Exception):
    """Base class of every error servicelog raises on purpose."""


class ConfigError(ServicelogError, ValueError):
    """A configuration option has a value servicelog cannot use.

    The message names the option, the value received and what is allowed, for example::

        servicelog.configure(level='LOUD'): option 'level' got 'LOUD'; expected one of
        TRACE, DEBUG, INFO, WARNING, ERROR, CRITICAL or an integer 0-50
    """

    def __init__(self, option: str, value: object, allowed: str, *, source: str = "") -> None:
        self.option = option
        self.value = value
        self.allowed = allowed
        self.source = source
        where = f" (from {source})" if source else ""
        super().__init__(f"servicelog: option {option!r}{where} got {value!r}; expected {allowed}")

    def __reduce__(self) -> tuple[Any, ...]:
        # The default rebuilds with ConfigError(message): __init__ needs its four parts.
        return (_config_error, (self.option, self.value, self.allowed, self.source))


def _config_error(option: str, value: object, allowed: str, source: str) -> ConfigError:
    return ConfigError(option, value, allowed, source=source)
