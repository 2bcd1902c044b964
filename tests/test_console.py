from __future__ import annotations

import io
import re
from typing import Any

import pytest

import servicelog
from servicelog.render.console import ConsoleRenderer, escape_control, should_color

from .conftest import NO_CAPTURE

RECORD: dict[str, Any] = {
    "@timestamp": "2026-11-29T14:53:10.123456Z",
    "log.level": "info",
    "message": "order placed",
    "ecs.version": "8.11.0",
    "service.name": "shop",
    "log.logger": "shop.orders",
    "log.origin.file.name": "orders.py",
    "log.origin.file.line": 42,
    "log.origin.function": "place",
    "process.thread.name": "MainThread",
    "request_id": "r-1",
    "order_id": 7,
    "note": "two words",
}


def test_plain_line_snapshot() -> None:
    line = ConsoleRenderer(color=False)(RECORD)
    assert line == (
        "14:53:10.123  INFO      shop.orders  orders.py:place:42  order placed  "
        "request_id=r-1 order_id=7 note='two words'\n"
    )


def test_colored_line_uses_ansi_and_keeps_the_text() -> None:
    line = ConsoleRenderer(color=True)(RECORD)
    assert "\x1b[32m" in line  # info is green
    plain = line
    for code in ("\x1b[0m", "\x1b[2m", "\x1b[32m", "\x1b[35m", "\x1b[1m", "\x1b[36m"):
        plain = plain.replace(code, "")
    assert plain == ConsoleRenderer(color=False)(RECORD)


@pytest.mark.parametrize(
    ("env", "tty", "expected"),
    [
        ({}, True, True),
        ({}, False, False),
        ({"NO_COLOR": "1"}, True, False),
        ({"FORCE_COLOR": "1"}, False, True),
        ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False, True),
        ({"FORCE_COLOR": "0"}, False, False),
        ({"TERM": "dumb"}, True, False),
        ({"TERM": "dumb", "FORCE_COLOR": "1"}, True, True),
        ({"TERM": "xterm-256color"}, True, True),
    ],
)
def test_should_color_honours_no_color_and_force_color(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], tty: bool, expected: bool
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    class Stream(io.StringIO):
        def isatty(self) -> bool:
            return tty

    assert should_color(Stream()) is expected


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a\nb", "a\\nb"),
        ("\x1b[2J", "\\x1b[2J"),
        ("a\u2028b", "a\\u2028b"),
        ("\u202egnp.exe", "\\u202egnp.exe"),
        ("tab\there", "tab\\there"),
        ("\x85", "\\x85"),
    ],
)
def test_control_characters_are_escaped(raw: str, escaped: str) -> None:
    assert escape_control(raw) == escaped


def test_injected_values_cannot_forge_console_lines() -> None:
    record = dict(RECORD, message="ok\n14:00:00.000  INFO  fake  forged", **{"k\x1b[31m": "v\r\n"})
    line = ConsoleRenderer(color=False)(record)
    assert line.count("\n") == 1
    assert "\x1b" not in line


def test_traceback_is_indented_below_the_line(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    servicelog.configure(profile="development", capture=NO_CAPTURE, color=False)
    try:
        raise ValueError("bad\x1b[31m value")
    except ValueError:
        servicelog.get_logger("t").exception("it failed")
    lines = out.getvalue().splitlines()
    assert "ERROR" in lines[0] and "it failed" in lines[0]
    assert lines[1] == "    Traceback (most recent call last):"
    assert lines[-1] == "    ValueError: bad\\x1b[31m value"
    assert all(line.startswith("    ") for line in lines[1:])


def test_other_threads_are_named() -> None:
    line = ConsoleRenderer(color=False)(dict(RECORD, **{"process.thread.name": "worker-1"}))
    assert "thread=worker-1" in line


@pytest.mark.parametrize("color", [False, True])
def test_a_non_string_key_is_shown_as_its_repr(color: bool) -> None:
    """stdlib's extra= accepts any key (extra={404: ...}); the line is not lost."""
    line = ConsoleRenderer(color=color)({**RECORD, 404: "not found", ("a", 1): 2})
    line = re.sub("\x1b\\[[0-9;]*m", "", line)
    assert "404='not found'" in line and "('a', 1)=2" in line


def test_an_escaped_value_is_quoted_once_and_told_from_its_look_alike() -> None:
    """A real newline and a backslash followed by "n" must not print alike, and a quoted
    value must not show its escapes doubled."""
    record = {
        **RECORD,
        "real": "a\nb",
        "literal": "a\\nb",
        "spaced": "line1\nline2 \x1b[31mred",
    }
    line = ConsoleRenderer(color=False)(record)
    assert "real='a\\nb' literal=a\\nb spaced='line1\\nline2 \\x1b[31mred'" in line
    assert "\\\\" not in line and line.count("\n") == 1


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("a=1 b", "'a=1 b'=c"),
        ("", "''=c"),
        ("two words", "'two words'=c"),
        ("it's", '"it\'s"=c'),
        ('say "hi"', "'say \"hi\"'=c"),
        ("k\nFAKE", "'k\\nFAKE'=c"),
        ("plain.key", " plain.key=c"),
    ],
)
def test_a_key_that_would_not_read_as_one_field_is_quoted(key: str, shown: str) -> None:
    """A key with whitespace, '=', quotes or control characters, or an empty key, is quoted
    like a string value: ``a=1 b=c`` would read as two fields."""
    line = ConsoleRenderer(color=False)({**RECORD, key: "c"})
    assert shown in line and line.count("\n") == 1


def test_long_strings_and_messages_are_cut_with_a_marker() -> None:
    """Strings and the message are cut at the limit other values get, and say how much."""
    record = {**RECORD, "message": "m" * 5000, "s": "x" * 100_000, "spaced": "a b" * 1000}
    line = ConsoleRenderer(color=False)(record)
    assert f"  {'m' * 2000}...<3000 more chars>  " in line
    assert f" s={'x' * 2000}...<98000 more chars>" in line
    assert f" spaced={'a b' * 666 + 'a b'[:2]!r}...<1000 more chars>" in line
    assert len(line) < 7000


def test_a_large_container_shows_the_head_of_its_repr_made_only_that_far() -> None:
    """A million-item matrix, a list of a thousand 1,000-key dicts or a tree of shared lists
    (millions of items along its paths) shows the first 2,000 characters of its repr, marked,
    without the whole repr being made (seconds, without redaction); cycles read as repr writes
    them; a container under the count is shown by repr itself."""
    node: list[Any] = ["leaf"]
    for _ in range(20):
        node = [node, node]
    looped: list[Any] = [1, (2,), frozenset(), {"k": {3}}]
    looped.append(looped)
    shared = {f"k{i}": (i,) for i in range(1000)}
    renderer = ConsoleRenderer(color=False)
    for value in ([list(range(1000))] * 1000, [shared] * 1000, node, [looped] * 6000):
        line = renderer({**RECORD, "v": value})
        assert f" v={repr(value)[:2000]}...<more>\n" in line, repr(value)[:80]
    assert f" v={looped!r}\n" in renderer({**RECORD, "v": looped})


def test_a_string_at_the_limit_is_not_cut() -> None:
    line = ConsoleRenderer(color=False)({**RECORD, "message": "m" * 2000, "s": "x" * 2000})
    assert "more chars" not in line and f"s={'x' * 2000}\n" in line


def test_a_level_label_with_control_characters_is_escaped() -> None:
    from servicelog.render.console import ConsoleRenderer

    line = ConsoleRenderer(color=False)({"log.level": "x\x1b[2Jy", "message": "m"})
    assert "\x1b" not in line and "\\x1b" in line
