from __future__ import annotations

import logging

import servicelog
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
