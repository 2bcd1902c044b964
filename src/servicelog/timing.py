"""``log_execution_time``: time a block or a function and log it to the performance channel.

Records carry ``servicelog.channel: "performance"`` so a sink can route them (the guide's
``performance`` log file), the ECS ``event.duration`` in nanoseconds, and ``duration_ms``.
A failing block is logged too (``outcome: "failure"`` and the exception type) and the
exception propagates unchanged.
"""

from __future__ import annotations

import functools
import sys
import threading
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
_WARNING = 30
# Field names that a logger call would take as its own options: bound to the logger instead.
_CALL_OPTIONS = frozenset({"exc_info", "stack_info", "stacklevel"})
# Every ``_log`` caller is one frame below the user's code: ``__exit__`` / ``__aexit__`` (the
# ``with`` line) or a decorator's wrapper (the code that called, awaited or iterated it).
_USER_FRAME = 3
# Guards every timer's list of open blocks (one lock for all: they are held for a list
# operation, and a timer is made per block).
_lock = threading.Lock()


#: The fields the timer writes itself.
_TIMER_FIELDS = frozenset(
    {CHANNEL, "operation", "event.duration", "duration_ms", "outcome", "failure.type"}
)


class log_execution_time:
    """Log how long *operation* took, as a context manager or a decorator (sync or async).

    >>> with log_execution_time("load catalogue", rows=120):
    ...     load()
    >>> @log_execution_time("charge card")
    ... async def charge(...): ...

    A decorated generator or async generator function is timed from the first item asked for
    to the end of the iteration (exhausted, failed, or closed early); an async callable (an
    object with an ``async def __call__``) is timed until its awaitable is done. A plain
    function is timed for the call, whatever it returns (a coroutine handed back by a sync
    decorator, a Future, a Task). One instance may time any number of blocks at once (nested,
    or in other tasks and threads).

    Args:
        operation: what was timed (the ``operation`` field).
        level: the level of the record, as a name (any case), a number or a
            :class:`~servicelog.LogLevel` (default INFO). A failure is logged at this level
            or WARNING, whichever is higher.
        **fields: more fields for the record (any name; one named like a field the timer
            writes, such as ``outcome``, is kept as ``fields.<name>``).

    Raises:
        ConfigError: for a *level* that is not a level (here, not when the block ends).
    """

    __slots__ = ("_fields", "_level", "_open", "_options", "operation")

    def __init__(self, operation: str, /, *, level: int | str = "info", **fields: Any) -> None:
        self.operation = operation
        self._level = parse_level(level)
        # A field named like one the timer writes (``outcome``, ``event.duration``) is kept
        # beside it as ``fields.<name>``, as a record keeps servicelog's own names: the measure
        # is never replaced.
        self._fields = {
            f"fields.{k}" if k in _TIMER_FIELDS else k: v
            for k, v in fields.items()
            if k not in _CALL_OPTIONS
        }
        self._options = {k: v for k, v in fields.items() if k in _CALL_OPTIONS}
        # The open blocks, oldest first: (thread and task that entered, start). Kept on the
        # timer, so that they go with it, and one timer can time blocks that overlap (other
        # tasks, other threads).
        self._open: list[tuple[tuple[int, object], int]] = []

    def __enter__(self) -> log_execution_time:
        entry = (_where(), time.perf_counter_ns())
        with _lock:
            self._open.append(entry)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._log(self._pop_start(), exc_type, _USER_FRAME)

    async def __aenter__(self) -> log_execution_time:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._log(self._pop_start(), exc_type, _USER_FRAME)

    def _pop_start(self) -> int:
        """The start of this timer's innermost block open in this thread and task; if none
        (a block ended elsewhere: an abandoned async generator closed by another task), the
        latest block's. Each exit takes one entry, so nothing accumulates."""
        where = _where()
        with _lock:
            blocks = self._open
            for index in range(len(blocks) - 1, -1, -1):
                if blocks[index][0] == where:
                    return blocks.pop(index)[1]
            return blocks.pop()[1] if blocks else time.perf_counter_ns()

    def _log(self, start: int, exc_type: type[BaseException] | None, stacklevel: int) -> None:
        """Log the record of a run that started at *start*; *stacklevel* is as for a logger
        call made by this method's caller (``2``: the caller's caller)."""
        elapsed = time.perf_counter_ns() - start
        levelno = self._level if exc_type is None else max(self._level, _WARNING)
        log = get_logger(PERFORMANCE_LOGGER)
        if levelno < log._levelno:  # filtered out: build nothing
            return
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
        if self._options:  # fields named like a call option: bound, so taken as fields
            log = log.bind(**self._options)
        message = f"{self.operation} took {elapsed / 1e6:.3f} ms"
        if levelno in _NAMED:  # the level method: cheaper than log(), which builds one per call
            getattr(log, level_name(levelno))(message, stacklevel=stacklevel, **fields)
        else:
            log.log(levelno, message, stacklevel=stacklevel, **fields)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        import inspect

        target = _call_target(func)
        wrapped: Callable[P, R]
        if inspect.isasyncgenfunction(target):
            wrapped = self._wrap_async_generator(func)
        elif inspect.isgeneratorfunction(target):
            wrapped = self._wrap_generator(func)
        elif inspect.iscoroutinefunction(target):
            wrapped = self._wrap_coroutine(func)
        else:
            wrapped = self._wrap_sync(func)
        return wrapped

    # The sync and async wrappers below are twins on purpose: a per-call context manager
    # shared by both doubles the cost of a filtered-out call (334 -> 630 ns, measured).
    def _wrap_sync(self, func: Callable[P, R]) -> Any:
        """Time each call. (What it returns is returned as it is: a coroutine a sync decorator
        hands back is timed for the call only, as are a Future and a Task.)"""

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            start = time.perf_counter_ns()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                self._log(start, type(exc), _USER_FRAME)
                raise
            self._log(start, None, _USER_FRAME)
            return result

        return wrapper

    def _wrap_coroutine(self, func: Callable[P, Any]) -> Any:
        """Time each call to an async function (or async callable) until its result."""

        @functools.wraps(func)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            start = time.perf_counter_ns()
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                self._log(start, type(exc), _USER_FRAME)
                raise
            self._log(start, None, _USER_FRAME)
            return result

        return async_wrapper

    def _wrap_generator(self, func: Callable[P, Any]) -> Any:
        """Time each iteration of a generator, from its first item to its end."""

        @functools.wraps(func)
        def generator_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            start = time.perf_counter_ns()
            try:
                result = yield from func(*args, **kwargs)  # forwards send(), throw(), close()
            except GeneratorExit:  # closed before its end: not a failure
                self._log(start, None, _USER_FRAME)
                raise
            except BaseException as exc:
                self._log(start, type(exc), _USER_FRAME)
                raise
            self._log(start, None, _USER_FRAME)
            return result

        return generator_wrapper

    def _wrap_async_generator(self, func: Callable[P, Any]) -> Any:
        """Time each iteration of an async generator, from its first item to its end."""

        @functools.wraps(func)
        async def async_generator_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            start = time.perf_counter_ns()
            generator = func(*args, **kwargs)
            try:  # ``yield from`` by hand: asend(), athrow() and aclose() reach *generator*
                item = await generator.__anext__()
                while True:
                    try:
                        sent = yield item
                    except GeneratorExit:
                        await generator.aclose()
                        raise
                    except BaseException as thrown:
                        item = await generator.athrow(thrown)
                    else:
                        item = await generator.asend(sent)
            except StopAsyncIteration:  # its end
                self._log(start, None, _USER_FRAME)
            except GeneratorExit:  # closed before its end: not a failure
                self._log(start, None, _USER_FRAME)
                raise
            except BaseException as exc:
                self._log(start, type(exc), _USER_FRAME)
                raise

        return async_generator_wrapper


def _where() -> tuple[int, object]:
    """The thread and the asyncio task (``None`` outside one) running now. (asyncio is not
    imported for this: if nothing imported it, no task runs.)"""
    asyncio: Any = sys.modules.get("asyncio")
    loop = None if asyncio is None else asyncio.events._get_running_loop()
    return threading.get_ident(), None if loop is None else asyncio.current_task(loop)


def _call_target(func: object) -> object:
    """What runs when *func* is called, to tell its kind: a partial's function, an object's
    ``__call__`` (as Starlette does for async callables)."""
    import inspect

    while isinstance(func, functools.partial):
        func = func.func
    if inspect.isroutine(func) or isinstance(func, type) or not callable(func):
        return func
    return type(func).__call__
