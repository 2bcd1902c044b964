from __future__ import annotations

import asyncio
import logging
import threading
import time

import servicelog
from servicelog.logger import current_runtime
from servicelog.sinks import MemorySink
from servicelog.testing import CapturedLogs, capture_logs

from .conftest import NO_CAPTURE


def test_capture_logs_collects_records_and_lines() -> None:
    with capture_logs() as logs:
        servicelog.get_logger("shop").info("order placed", order_id=7)
        servicelog.get_logger("shop").warning("low stock")
    assert logs.messages() == ["order placed", "low stock"]
    assert logs[0]["order_id"] == 7
    assert [r["message"] for r in logs.at("warning")] == ["low stock"]
    assert logs.lines[0].startswith(b'{"@timestamp":')


def test_capture_logs_sees_stdlib_after_configure() -> None:
    servicelog.configure(stream="none")
    with capture_logs() as logs:
        logging.getLogger("lib").warning("from stdlib")
    assert logs.messages() == ["from stdlib"]


def test_capture_logs_restores_the_configuration(capsys: object) -> None:
    servicelog.configure(stream="none", capture=NO_CAPTURE, level="ERROR")
    with capture_logs(level="DEBUG") as logs:
        servicelog.get_logger("x").debug("captured")
    servicelog.get_logger("x").warning("not captured, below ERROR")
    assert logs.messages() == ["captured"]


def test_the_pytest_fixture(servicelog_logs: CapturedLogs) -> None:
    servicelog.get_logger("shop").error("boom", code=3)
    assert servicelog_logs[0]["code"] == 3


def test_a_configure_inside_the_block_stays_in_force_after_it() -> None:
    """An app factory that calls configure() under capture_logs: its configuration, not the
    one from before the block (whose sinks it closed), is in force afterwards."""
    from servicelog.sinks import MemorySink

    before, inside = MemorySink(), MemorySink()
    servicelog.configure(stream="none", capture=NO_CAPTURE, sinks=[before])
    with capture_logs() as logs:
        servicelog.get_logger("x").info("captured")
        servicelog.configure(stream="none", capture=NO_CAPTURE, sinks=[inside])
    servicelog.get_logger("x").info("after the block")
    assert logs.messages() == ["captured"]
    assert [r["message"] for r in inside.records] == ["after the block"]
    assert before.records == []


def test_capture_level_applies_to_every_front_end() -> None:
    """capture_logs(level="DEBUG") lowers the level for the block whichever API logs (the
    per-logger levels included), and the configured levels hold again after it."""
    import structlog
    from loguru import logger

    capture = servicelog.CaptureOptions(
        stdlib=True, warnings=False, excepthooks=False, structlog=True, loguru=True
    )
    servicelog.configure(stream="none", capture=capture, level="INFO", levels={"lib": "ERROR"})
    sl = structlog.get_logger("app")
    sl.info("cached at INFO")  # a module-level structlog logger, cached on first use

    def log_debug() -> None:
        servicelog.get_logger("app").debug("servicelog")
        logging.getLogger("app").debug("stdlib")
        logging.getLogger("lib").info("stdlib lib")
        sl.debug("structlog")
        logger.debug("loguru")

    with capture_logs(level="DEBUG") as logs:
        log_debug()
    assert logs.messages() == ["servicelog", "stdlib", "stdlib lib", "structlog", "loguru"]
    with capture_logs() as logs:
        log_debug()
    assert logs.messages() == []


def test_nested_blocks_each_see_the_records_logged_inside_them() -> None:
    """An inner block's records reach the enclosing blocks too (``servicelog_logs`` sees the
    whole test), and each block's level holds again after the inner one."""
    servicelog.configure(stream="none", capture=NO_CAPTURE, level="INFO")
    log = servicelog.get_logger("app")
    with capture_logs() as outer:
        log.info("before inner")
        with capture_logs(level="DEBUG") as inner:
            log.debug("inside inner")
        log.info("after inner")
        log.debug("not captured, below INFO again")
    assert outer.messages() == ["before inner", "inside inner", "after inner"]
    assert inner.messages() == ["inside inner"]
    assert not log.is_enabled_for("debug")


def test_the_fixture_sees_a_capture_inside_the_test(servicelog_logs: CapturedLogs) -> None:
    with capture_logs() as logs:
        servicelog.get_logger("shop").info("inside")
    assert logs.messages() == ["inside"]
    assert servicelog_logs.messages() == ["inside"]


def _configure_app_sink() -> MemorySink:
    sink = MemorySink()
    servicelog.configure(stream="none", capture=NO_CAPTURE, sinks=[sink])
    return sink


def test_overlapping_blocks_in_two_tasks_restore_the_configuration() -> None:
    """Two tasks' blocks that overlap without nesting (the first in exits first)."""
    app_sink = _configure_app_sink()
    configured = current_runtime()
    log = servicelog.get_logger("app")

    async def first(entered: asyncio.Event, done: asyncio.Event) -> CapturedLogs:
        with capture_logs() as logs:
            log.info("first inside")
            entered.set()
            await asyncio.sleep(0.01)
        done.set()
        return logs

    async def second(entered: asyncio.Event, done: asyncio.Event) -> CapturedLogs:
        await entered.wait()
        with capture_logs() as logs:
            await done.wait()
            log.info("second inside")
        return logs

    async def main() -> tuple[CapturedLogs, CapturedLogs]:
        entered, done = asyncio.Event(), asyncio.Event()
        return await asyncio.gather(first(entered, done), second(entered, done))

    a, b = asyncio.run(main())
    assert current_runtime() is configured
    log.warning("after both blocks")
    assert [r["message"] for r in app_sink.records] == ["after both blocks"]
    assert a.messages() == ["first inside"]
    assert b.messages() == ["second inside"]


def test_overlapping_blocks_in_two_threads_restore_the_configuration() -> None:
    app_sink = _configure_app_sink()
    configured = current_runtime()
    entered, first_done = threading.Event(), threading.Event()

    def first() -> None:
        with capture_logs():
            entered.set()
            time.sleep(0.01)
        first_done.set()

    def second() -> None:
        entered.wait()
        with capture_logs():
            first_done.wait()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert current_runtime() is configured
    servicelog.get_logger("app").warning("after both blocks")
    assert [r["message"] for r in app_sink.records] == ["after both blocks"]
