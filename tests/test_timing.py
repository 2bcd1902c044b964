from __future__ import annotations

import asyncio
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
