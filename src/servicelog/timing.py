"""``log_execution_time``: time a block or a function and log it to the performance channel.

Records carry ``servicelog.channel: "performance"`` so a sink can route them (the guide's
``performance`` log file), the ECS ``event.duration`` in nanoseconds, and ``duration_ms``.
A failing block is logged too (``outcome: "failure"`` and the exception type) and the
exception propagates unchanged.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from types import TracebackType

from .levels import LogLevel, level_name, parse_level
from .logger import get_logger
from .record import CHANNEL

TYPE_CHECKING = False  # typing is imported only by type checkers: it costs ~8 ms at import

if TYPE_CHECKING:
    from typing import Any, ParamSpec, TypeVar

    P = ParamSpec("P")
    R = TypeVar("R")

__all__ = ["PERFORMANCE_LOGGER", "log_execution_time"]


PERFORMANCE_LOGGER = "servicelog.performance"
_NAMED = frozenset(LogLevel)  # levels with a method of their own on a Logger


class log_execution_time:
    """Log how long *operation* took, as a context manager or a decorator (sync or async).

    >>> with log_execution_time("load catalogue", rows=120):
    ...     load()
    >>> @log_execution_time("charge card")
    ... async def charge(...): ...

    Args:
        operation: what was timed (the ``operation`` field).
        level: the level of the record, as a name (any case), a number or a
            :class:`~servicelog.LogLevel` (default INFO). A failure is logged at WARNING.
        **fields: more fields for the record.

    Raises:
        ConfigError: for a *level* that is not a level (here, not when the block ends).
    """

    __slots__ = ("_fields", "_level", "_stacklevel", "_start", "operation")

    def __init__(self, operation: str, *, level: int | str = "info", **fields: Any) -> None:
        self.operation = operation
        self._level = parse_level(level)
        self._fields = fields
        self._start = 0
        self._stacklevel = 2  # __exit__ is called from the user's ``with`` line

    def __enter__(self) -> log_execution_time:
        self._start = time.perf_counter_ns()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        elapsed = time.perf_counter_ns() - self._start
        fields: dict[str, Any] = {
            CHANNEL: "performance",
            "operation": self.operation,
            "event.duration": elapsed,
            "duration_ms": round(elapsed / 1e6, 3),
            "outcome": "success" if exc_type is None else "failure",
            **self._fields,
        }
        if exc_type is not None:
            fields["failure.type"] = exc_type.__name__
        log = get_logger(PERFORMANCE_LOGGER)
        levelno = 30 if exc_type is not None else self._level
        message = f"{self.operation} took {elapsed / 1e6:.3f} ms"
        if levelno in _NAMED:  # the level method: cheaper than log(), which builds one per call
            getattr(log, level_name(levelno))(message, stacklevel=self._stacklevel, **fields)
        else:
            log.log(levelno, message, stacklevel=self._stacklevel, **fields)

    async def __aenter__(self) -> log_execution_time:
        self._stacklevel = 3  # __aexit__ -> __exit__, called from the ``async with`` line
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        operation, level, extra = self.operation, self._level, self._fields

        import inspect

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                timer = log_execution_time(operation, level=level, **extra)
                timer._stacklevel = 3  # the code that awaited the decorated function
                with timer:
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            timer = log_execution_time(operation, level=level, **extra)
            timer._stacklevel = 3  # the code that called the decorated function
            with timer:
                return func(*args, **kwargs)

        return wrapper
