from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Iterator
from typing import Any

import pytest

import servicelog
from servicelog.sinks import MemorySink


def test_context_manager_logs_to_the_performance_channel(configure_memory: Any) -> None:
    sink: MemorySink = configure_memory()
    with servicelog.log_execution_time("load catalogue", rows=120):
        pass
    (record,) = sink.records
    assert record["servicelog.channel"] == "performance"
    assert record["log.logger"] == "servicelog.performance"
    assert record["operation"] == "load catalogue"
    assert record["rows"] == 120
    assert record["outcome"] == "success"
    assert isinstance(record["event.duration"], int) and record["event.duration"] >= 0
    assert record["duration_ms"] == pytest.approx(record["event.duration"] / 1e6, abs=1e-3)


def test_fields_may_have_any_name_and_never_replace_the_measure(configure_memory: Any) -> None:
    """``self`` and ``operation`` are fields like any other; one named like a field the timer
    writes is kept beside it as ``fields.<name>``."""
    sink: MemorySink = configure_memory()
    fields = {"self": "me", "operation": "theirs", "outcome": "success", "event.duration": 5}
    with pytest.raises(KeyError), servicelog.log_execution_time("lookup", **fields):
        raise KeyError("x")
    (record,) = sink.records
    assert record["self"] == "me"
    assert record["operation"] == "lookup"
    assert record["outcome"] == "failure"
    assert record["event.duration"] != 5
    assert record["fields.operation"] == "theirs"
    assert record["fields.outcome"] == "success"
    assert record["fields.event.duration"] == 5


def test_decorator_sync_and_async(configure_memory: Any) -> None:
    sink: MemorySink = configure_memory()

    @servicelog.log_execution_time("sync op")
    def add(a: int, b: int) -> int:
        return a + b

    @servicelog.log_execution_time("async op")
    async def mul(a: int, b: int) -> int:
        await asyncio.sleep(0.01)
        return a * b

    assert add(2, 3) == 5
    assert asyncio.run(mul(2, 3)) == 6
    first, second = sink.records
    assert first["operation"] == "sync op"
    assert second["operation"] == "async op"
    assert second["event.duration"] >= 10_000_000


def test_failure_is_logged_and_reraised(configure_memory: Any) -> None:
    sink: MemorySink = configure_memory()
    with pytest.raises(KeyError), servicelog.log_execution_time("lookup"):
        raise KeyError("x")
    (record,) = sink.records
    assert record["outcome"] == "failure"
    assert record["failure.type"] == "KeyError"
    assert record["log.level"] == "warning"


async def test_async_with(configure_memory: Any) -> None:
    sink: MemorySink = configure_memory()
    async with servicelog.log_execution_time("async block"):
        await asyncio.sleep(0)
    assert sink.records[0]["operation"] == "async block"
    assert sink.records[0]["log.origin.function"] == "test_async_with"


def test_call_site_is_the_users_code(configure_memory: Any) -> None:
    sink: MemorySink = configure_memory(callsite=True)

    @servicelog.log_execution_time("decorated")
    def work() -> None:
        pass

    with servicelog.log_execution_time("block"):
        pass
    work()
    assert {r["log.origin.function"] for r in sink.records} == {"test_call_site_is_the_users_code"}
    assert {r["log.origin.file.name"] for r in sink.records} == {"test_timing.py"}


@pytest.mark.parametrize(
    ("level", "logged"),
    [("INFO", "info"), ("debug", "debug"), (20, "info"), (servicelog.LogLevel.ERROR, "error")],
)
def test_level_takes_names_numbers_and_loglevel(
    configure_memory: Any, level: Any, logged: str
) -> None:
    """Any spelling of a level that configure() accepts; the call site stays the user's."""
    sink: MemorySink = configure_memory(callsite=True, level="DEBUG")
    with servicelog.log_execution_time("load", level=level):
        pass
    (record,) = sink.records
    assert record["log.level"] == logged
    assert record["log.origin.function"] == "test_level_takes_names_numbers_and_loglevel"


def test_a_level_between_the_named_ones_keeps_the_call_site(configure_memory: Any) -> None:
    sink: MemorySink = configure_memory(callsite=True)

    @servicelog.log_execution_time("decorated", level=25)
    def work() -> None:
        pass

    work()
    (record,) = sink.records
    assert record["log.level"] == "info"  # 25 rounds down, as for stdlib custom levels
    assert (
        record["log.origin.function"] == "test_a_level_between_the_named_ones_keeps_the_call_site"
    )


def test_a_bad_level_is_refused_where_the_timer_is_made() -> None:
    with pytest.raises(servicelog.ConfigError, match="chatty"):
        servicelog.log_execution_time("load", level="chatty")


async def _sleep_then_yield() -> Any:
    await asyncio.sleep(0.03)
    yield 1
    await asyncio.sleep(0.03)
    yield 2


async def test_an_async_generator_is_timed_over_its_iteration(configure_memory: Any) -> None:
    sink: MemorySink = configure_memory(callsite=True)
    timed = servicelog.log_execution_time("stream")(_sleep_then_yield)
    assert inspect.isasyncgenfunction(timed)
    items = []
    async for item in timed():
        items.append(item)
    assert items == [1, 2]
    (record,) = sink.records
    assert record["outcome"] == "success"
    assert record["event.duration"] >= 60_000_000
    assert record["log.origin.function"] == "test_an_async_generator_is_timed_over_its_iteration"


async def test_an_async_generator_failure_is_logged(configure_memory: Any) -> None:
    sink: MemorySink = configure_memory()

    @servicelog.log_execution_time("stream")
    async def failing() -> Any:
        yield 1
        await asyncio.sleep(0.05)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        async for _ in failing():
            pass
    (record,) = sink.records
    assert (record["outcome"], record["failure.type"]) == ("failure", "ValueError")
    assert record["event.duration"] >= 50_000_000


async def test_an_async_generator_passes_thrown_exceptions_in(configure_memory: Any) -> None:
    """asynccontextmanager throws the block's exception into the generator (athrow)."""
    sink: MemorySink = configure_memory()
    seen: list[str] = []

    @contextlib.asynccontextmanager
    @servicelog.log_execution_time("resource")
    async def resource() -> Any:
        try:
            yield "r"
        except KeyError as exc:
            seen.append(repr(exc))
            raise

    with pytest.raises(KeyError):
        async with resource():
            raise KeyError("in block")
    assert seen == ["KeyError('in block')"]
    assert sink.records[0]["failure.type"] == "KeyError"


async def test_an_async_generator_closed_early_is_logged_once(configure_memory: Any) -> None:
    sink: MemorySink = configure_memory()
    timed = servicelog.log_execution_time("stream")(_sleep_then_yield)
    stream = timed()
    assert await stream.__anext__() == 1
    await stream.aclose()
    (record,) = sink.records
    assert record["outcome"] == "success"
    assert record["event.duration"] >= 30_000_000


def test_a_generator_is_timed_over_its_iteration(configure_memory: Any) -> None:
    sink: MemorySink = configure_memory(callsite=True)

    @servicelog.log_execution_time("rows")
    def rows() -> Iterator[int]:
        time.sleep(0.05)
        yield 1
        raise ValueError("boom in gen")

    assert inspect.isgeneratorfunction(rows)
    with pytest.raises(ValueError, match="boom in gen"):
        for _ in rows():
            pass
    (record,) = sink.records
    assert (record["outcome"], record["failure.type"]) == ("failure", "ValueError")
    assert record["event.duration"] >= 50_000_000
    assert record["log.origin.function"] == "test_a_generator_is_timed_over_its_iteration"


def test_a_generator_forwards_send_throw_and_its_return_value(configure_memory: Any) -> None:
    sink: MemorySink = configure_memory()

    @servicelog.log_execution_time("echo")
    def echo() -> Generator[int, int, str]:
        got = yield 0
        try:
            yield got * 2
        except KeyError:
            return "caught"
        return "not caught"

    gen = echo()
    assert next(gen) == 0
    assert gen.send(21) == 42
    with pytest.raises(StopIteration) as stop:
        gen.throw(KeyError("x"))
    assert stop.value.value == "caught"
    (record,) = sink.records
    assert record["outcome"] == "success"


def test_a_generator_closed_early_is_logged_as_success(configure_memory: Any) -> None:
    sink: MemorySink = configure_memory()

    @servicelog.log_execution_time("rows")
    def rows() -> Iterator[int]:
        yield from range(10)

    gen = rows()
    next(gen)
    gen.close()
    (record,) = sink.records
    assert record["outcome"] == "success"


class _AsyncCallable:
    async def __call__(self, fail: bool) -> str:
        await asyncio.sleep(0.05)
        if fail:
            raise KeyError("x")
        return "done"


async def test_an_object_with_an_async_call_is_timed_when_awaited(configure_memory: Any) -> None:
    sink: MemorySink = configure_memory()
    timed = servicelog.log_execution_time("call")(_AsyncCallable())
    assert inspect.iscoroutinefunction(timed)
    assert await timed(False) == "done"
    with pytest.raises(KeyError):
        await timed(True)
    first, second = sink.records
    assert first["outcome"] == "success" and first["event.duration"] >= 50_000_000
    assert (second["outcome"], second["failure.type"]) == ("failure", "KeyError")
    assert second["event.duration"] >= 50_000_000


async def test_a_partial_of_an_async_callable_object(configure_memory: Any) -> None:
    sink: MemorySink = configure_memory()
    timed = servicelog.log_execution_time("call")(functools.partial(_AsyncCallable(), False))
    assert inspect.iscoroutinefunction(timed)
    assert await timed() == "done"
    assert sink.records[0]["event.duration"] >= 50_000_000


async def test_a_sync_function_returning_a_coroutine_is_timed_for_the_call(
    configure_memory: Any,
) -> None:
    """An async function behind a plain sync decorator: its coroutine is handed back as it is
    (so a task cancelled before its first step closes it, with no "never awaited" warning), and
    the call is what is timed."""
    sink: MemorySink = configure_memory()

    def plain(func: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[int]]:
        def inner() -> Awaitable[int]:
            return func()

        return inner

    @servicelog.log_execution_time("decorated")
    @plain
    async def work() -> int:
        await asyncio.sleep(0)
        return 7

    coroutine = work()
    assert inspect.iscoroutine(coroutine) and coroutine.cr_code.co_name == "work"
    assert await coroutine == 7
    asyncio.ensure_future(work()).cancel()  # cancelled before it ran: closed, no warning
    await asyncio.sleep(0)
    assert [r["outcome"] for r in sink.records] == ["success", "success"]


async def test_one_timer_shared_by_concurrent_tasks(configure_memory: Any) -> None:
    sink: MemorySink = configure_memory()
    shared = servicelog.log_execution_time("db query")

    async def long() -> None:
        async with shared:
            await asyncio.sleep(0.1)

    async def short() -> None:
        await asyncio.sleep(0.06)  # enters while the long one is inside
        async with shared:
            pass

    await asyncio.gather(long(), short())
    assert max(r["event.duration"] for r in sink.records) >= 100_000_000


def test_one_timer_shared_by_threads(configure_memory: Any) -> None:
    sink: MemorySink = configure_memory()
    shared = servicelog.log_execution_time("db query")
    entered = threading.Event()

    def long() -> None:
        with shared:
            entered.set()
            time.sleep(0.1)

    def short() -> None:
        entered.wait()
        time.sleep(0.06)
        with shared:
            pass

    threads = [threading.Thread(target=long), threading.Thread(target=short)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(r["event.duration"] for r in sink.records) >= 100_000_000


def test_a_timer_reused_after_async_with_keeps_the_call_site(configure_memory: Any) -> None:
    sink: MemorySink = configure_memory(callsite=True)
    timer = servicelog.log_execution_time("reused")

    async def use() -> None:
        async with timer:
            pass

    asyncio.run(use())
    with timer:
        pass
    assert [r["log.origin.function"] for r in sink.records] == [
        "use",
        "test_a_timer_reused_after_async_with_keeps_the_call_site",
    ]


@pytest.mark.parametrize(
    ("level", "failure_level"),
    [("debug", "warning"), ("info", "warning"), ("error", "error"), ("critical", "critical")],
)
def test_a_failure_is_logged_at_warning_or_the_timer_level_if_higher(
    configure_memory: Any, level: str, failure_level: str
) -> None:
    sink: MemorySink = configure_memory(level="debug")
    with pytest.raises(RuntimeError), servicelog.log_execution_time("op", level=level):
        raise RuntimeError
    assert sink.records[0]["log.level"] == failure_level


def test_fields_named_like_the_logger_call_options(configure_memory: Any) -> None:
    """stacklevel/exc_info/stack_info are plain fields here, and never replace the error."""
    sink: MemorySink = configure_memory(callsite=True)
    fields = {"stacklevel": 5, "exc_info": "no", "stack_info": "none"}
    with pytest.raises(ValueError, match="original"), servicelog.log_execution_time("x", **fields):
        raise ValueError("original")
    with servicelog.log_execution_time("x", **fields):
        pass
    for record in sink.records:
        assert {k: record[k] for k in fields} == fields
        assert record["log.origin.function"] == "test_fields_named_like_the_logger_call_options"
        assert "error.type" not in record


async def test_a_sync_function_returning_a_task_returns_that_task(configure_memory: Any) -> None:
    # A Future or Task returned on purpose stays one: the caller may cancel it.
    memory = configure_memory()

    async def work() -> int:
        await asyncio.sleep(0)
        return 7

    @servicelog.log_execution_time("schedule")
    def schedule() -> asyncio.Task[int]:
        return asyncio.ensure_future(work())

    task = schedule()
    assert isinstance(task, asyncio.Task)
    assert await task == 7
    assert [r["operation"] for r in memory.records] == ["schedule"]
