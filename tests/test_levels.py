from __future__ import annotations

import logging

import pytest

from servicelog import ConfigError, LogLevel
from servicelog.levels import level_name, parse_level


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
