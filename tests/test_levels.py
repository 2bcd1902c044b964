from __future__ import annotations

import logging
from typing import Any

import pytest

import servicelog
from servicelog import ConfigError, LogLevel
from servicelog.levels import level_name, parse_level
from servicelog.sinks import MemorySink


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("info", 20),
        ("INFO", 20),
        (" warning ", 30),
        ("warn", 30),
        (10, 10),
        ("40", 40),
        (LogLevel.CRITICAL, 50),
        ("trace", 5),
        ("fatal", 50),
    ],
)
def test_parse_level_accepts_names_numbers_and_enum(value: object, expected: int) -> None:
    assert parse_level(value) == expected


@pytest.mark.parametrize("value", ["LOUD", -1, 51, True, None, 2.5, ""])
def test_parse_level_rejects_with_a_message_naming_option_and_value(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_level(value, "level")
    message = str(info.value)
    assert "'level'" in message
    assert repr(value) in message
    assert "DEBUG" in message


def test_levels_match_the_standard_library() -> None:
    for member in LogLevel:
        if member.name != "TRACE":
            assert logging.getLevelName(int(member)) == member.name


def test_every_level_documents_when_to_use_it() -> None:
    """The guide's "when to use each level" travels with the enum."""
    for member in LogLevel:
        assert member.__doc__ and len(member.__doc__) > 40
    assert "production" in (LogLevel.INFO.__doc__ or "").lower()


@pytest.mark.parametrize(
    ("number", "name"), [(20, "info"), (25, "info"), (45, "error"), (1, "trace")]
)
def test_level_name_rounds_custom_levels_down(number: int, name: str) -> None:
    assert level_name(number) == name


def test_log_with_a_level_reports_the_callers_call_site(configure_memory: Any) -> None:
    """``log(level, ...)`` names the caller in ``log.origin.*``, as the level methods do."""
    memory: MemorySink = configure_memory(callsite=True)
    log = servicelog.get_logger("app")
    log.log("INFO", "via log()")
    log.log(LogLevel.WARNING, "with stack_info", stack_info=True)
    for record in memory.records:
        assert record["log.origin.file.name"] == "test_levels.py"
        assert (
            record["log.origin.function"] == "test_log_with_a_level_reports_the_callers_call_site"
        )
    assert "test_levels.py" in memory.records[1]["log.origin.stack"].splitlines()[-2]
