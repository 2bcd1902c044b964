"""The console renderer: one readable, optionally coloured line per record, for development.

``14:53:10.123 INFO     shop.orders  orders.py:place:42  order placed  order_id=7 total=12.5``

Control characters (ANSI escapes, CR/LF, bidi overrides, U+2028/2029) in any value are shown
escaped (``\\x1b``, ``\\n``), so log text can neither forge a line nor repaint the terminal.
A key that would not read as one word (whitespace, ``=``, quotes, empty) is quoted, and the
message and each value are cut at 2,000 characters with a marker (``...<98000 more chars>``;
``...<more>`` after the head of a large container's repr, made only that far).
Tracebacks follow the line, indented, with the frames dimmed and the error line highlighted.
"""

from __future__ import annotations

import os
import re
from typing import Any, TextIO

from ..record import (
    ERROR_MESSAGE,
    ERROR_STACK,
    ERROR_TYPE,
    LEVEL,
    LOGGER,
    MESSAGE,
    ORIGIN_FILE,
    ORIGIN_FUNCTION,
    ORIGIN_LINE,
    TIMESTAMP,
    Record,
    guarded_repr,
)

__all__ = ["ConsoleRenderer", "escape_control", "should_color"]

# C0 and C1 controls, DEL, the Unicode line/paragraph separators and the bidi controls behind
# "Trojan Source" (CVE-2021-42574).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    ch = match.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_control(text: str) -> str:
    """Escape every control character in *text* so it prints on one line, inertly."""
    return _CONTROL.sub(_escape_one, text)


def should_color(stream: TextIO | None, force: bool | None = None) -> bool:
    """Decide whether to colour: ``force`` wins, then ``FORCE_COLOR``, ``NO_COLOR``,
    ``TERM=dumb`` (a terminal that shows escape codes as text), a TTY.

    See https://no-color.org and https://force-color.org.
    """
    if force is not None:
        return force
    if os.environ.get("FORCE_COLOR", "") not in ("", "0"):
        return True
    if os.environ.get("NO_COLOR", "") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream is not None and stream.isatty())
    except Exception:
        return False


_RESET = "\x1b[0m"
_DIM = "\x1b[2m"
_BOLD = "\x1b[1m"
_LEVEL_STYLE = {
    "trace": "\x1b[2m",
    "debug": "\x1b[34m",
    "info": "\x1b[32m",
    "warning": "\x1b[33m",
    "error": "\x1b[31m",
    "critical": "\x1b[1;37;41m",
}
_KEY = "\x1b[36m"
_LOGGER = "\x1b[35m"
_ERROR = "\x1b[1;31m"

# Shown in the line's head, or too static to repeat on every line of a dev console.
_HIDDEN = frozenset(
    {
        TIMESTAMP,
        LEVEL,
        MESSAGE,
        LOGGER,
        ORIGIN_FILE,
        ORIGIN_LINE,
        ORIGIN_FUNCTION,
        ERROR_TYPE,
        ERROR_MESSAGE,
        ERROR_STACK,
        "ecs.version",
        "service.name",
        "service.version",
        "service.environment",
        "event.dataset",
        "process.pid",
        "process.thread.name",
        "servicelog.channel",
    }
)


#: The most characters of a message or of a value shown; the rest is cut, with a marker.
_MAX_CHARS = 2000

# A key with one of these (or an empty key) is quoted: ``a=1 b=c`` would read as two fields.
_KEY_NEEDS_QUOTES = re.compile(r"[\s=\"']")


def _cut(text: str) -> tuple[str, str]:
    """Split *text* into what is shown (at most ``_MAX_CHARS``) and the marker for the rest."""
    if len(text) <= _MAX_CHARS:
        return text, ""
    return text[:_MAX_CHARS], f"...<{len(text) - _MAX_CHARS} more chars>"


def _message(text: str) -> str:
    """The message, escaped, cut at ``_MAX_CHARS`` with a marker saying how much was cut."""
    shown, marker = _cut(text)
    return escape_control(shown) + marker


def _quoted(text: str) -> str:
    # repr escapes each character once (the non-printable ones too); escape_control checks.
    return escape_control(repr(text))


def _key(key: Any) -> str:
    """A field's key: bare if it reads as one word, else quoted like a string value."""
    if not isinstance(key, str):
        return _value(key)  # stdlib's extra= takes any key (extra={404: ...}): its repr
    if key and not _KEY_NEEDS_QUOTES.search(key) and escape_control(key) == key:
        return key
    return _quoted(key)


def _string(value: str) -> str:
    """A string value: bare if it can be, quoted otherwise, cut at ``_MAX_CHARS``."""
    shown, marker = _cut(value)
    # No control characters, no space, no "=": bare.
    if shown and escape_control(shown) == shown and " " not in shown and "=" not in shown:
        return shown + marker
    # Quoted, so that an escaped newline is told from a backslash and an "n" in the text.
    return _quoted(shown) + marker


def _value(value: Any) -> str:
    if isinstance(value, str):
        return _string(value)
    try:
        if type(value) in _CONTAINERS and _items_past(value, _MAX_ITEMS):
            shown, marker = _repr_head(value)
        else:
            shown, marker = _cut(guarded_repr(value))
    except Exception as exc:
        shown, marker = f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>", ""
    return escape_control(shown) + marker


# --- large containers ---------------------------------------------------------------------------
#: Built-in containers, whose repr is made here item by item when they are large.
_CONTAINERS = frozenset({list, tuple, dict, set, frozenset})
#: A value holding more container items than this (nested ones included) has only the head of
#: its repr made: a million-item matrix is not written whole to show 2,000 characters of it.
_MAX_ITEMS = 5_000
_BRACKETS: dict[type, tuple[str, str]] = {
    list: ("[", "]"),
    tuple: ("(", ")"),
    set: ("{", "}"),
    frozenset: ("{", "}"),
}


def _items_past(value: Any, most: int) -> bool:
    """Whether the built-in containers in *value* hold more than *most* items in all (counted
    until that is known: a cycle counts again and again)."""
    pending = [value]
    left = most
    while pending:
        item = pending.pop()
        left -= len(item)
        if left < 0:
            return True
        for entries in (item.keys(), item.values()) if type(item) is dict else (item,):
            # (Looked for in C first: most items are no containers.)
            if not _CONTAINERS.isdisjoint(map(type, entries)):
                pending.extend(entry for entry in entries if type(entry) in _CONTAINERS)
    return False


class _Full(Exception):
    """The head of a repr is long enough."""


def _repr_head(value: Any) -> tuple[str, str]:
    """The first ``_MAX_CHARS`` characters of ``repr(value)`` and a marker, made item by item
    and stopped there. (The marker cannot say how much more there is without making it.)"""
    parts: list[str] = []
    size = 0
    inside: set[int] = set()

    def put(text: str) -> None:
        nonlocal size
        parts.append(text)
        size += len(text)
        if size > _MAX_CHARS:
            raise _Full

    def write(item: Any) -> None:
        cls = type(item)
        if cls not in _CONTAINERS:
            put(guarded_repr(item))
            return
        if id(item) in inside:  # as repr writes a container inside itself
            put("[...]" if cls is list else "{...}")
            return
        inside.add(id(item))
        if cls is dict:
            put("{")
            for i, (key, entry) in enumerate(item.items()):
                put(", " if i else "")
                write(key)
                put(": ")
                write(entry)
            put("}")
        elif not item and cls in (set, frozenset):
            put(f"{cls.__name__}()")
        else:
            opening, closing = _BRACKETS[cls]
            put(f"frozenset({opening}" if cls is frozenset else opening)
            for i, entry in enumerate(item):
                put(", " if i else "")
                write(entry)
            put(f",{closing}" if cls is tuple and len(item) == 1 else closing)
            if cls is frozenset:
                put(")")
        inside.discard(id(item))

    try:
        write(value)
    except _Full:
        return "".join(parts)[:_MAX_CHARS], "...<more>"
    return "".join(parts), ""


class ConsoleRenderer:
    """Render a record as a human-readable line (text, ending in ``\\n``).

    Args:
        color: use ANSI colours.
        show_thread: include the thread name when it is not ``MainThread``.
    """

    __slots__ = ("color", "show_thread")

    def __init__(self, color: bool = False, show_thread: bool = True) -> None:
        self.color = color
        self.show_thread = show_thread

    def __call__(self, record: Record) -> str:
        c = self.color
        ts = str(record.get(TIMESTAMP, ""))
        clock = ts[11:23] if len(ts) >= 23 else ts
        level = str(record.get(LEVEL, "info"))
        parts = [f"{_DIM}{clock}{_RESET}" if c else clock]
        label = f"{escape_control(level.upper()):<8}"  # a processor may have set any text
        parts.append(f"{_LEVEL_STYLE.get(level, '')}{label}{_RESET}" if c else label)
        logger = escape_control(str(record.get(LOGGER, "")))
        parts.append(f"{_LOGGER}{logger}{_RESET}" if c else logger)
        if ORIGIN_FILE in record:
            func, line = record.get(ORIGIN_FUNCTION, "?"), record.get(ORIGIN_LINE, "?")
            where = escape_control(f"{record[ORIGIN_FILE]}:{func}:{line}")
            parts.append(f"{_DIM}{where}{_RESET}" if c else where)
        message = _message(str(record.get(MESSAGE, "")))
        parts.append(f"{_BOLD}{message}{_RESET}" if c else message)
        fields = []
        thread = record.get("process.thread.name")
        if self.show_thread and thread and thread != "MainThread":
            fields.append(("thread", thread))
        fields.extend((k, v) for k, v in record.items() if k not in _HIDDEN)
        if fields:
            rendered = " ".join(
                f"{_KEY}{_key(k)}{_RESET}={_value(v)}" if c else f"{_key(k)}={_value(v)}"
                for k, v in fields
            )
            parts.append(rendered)
        line = "  ".join(p for p in parts if p)
        stack = record.get(ERROR_STACK)
        if stack:
            line += "\n" + self._traceback(str(stack))
        elif ERROR_TYPE in record:
            err = escape_control(f"{record[ERROR_TYPE]}: {record.get(ERROR_MESSAGE, '')}")
            line += "\n    " + (f"{_ERROR}{err}{_RESET}" if c else err)
        return line + "\n"

    def _traceback(self, stack: str) -> str:
        out = []
        for raw in stack.rstrip("\n").split("\n"):
            text = escape_control(raw)
            if not self.color:
                out.append(f"    {text}")
            elif raw.startswith("  File "):
                out.append(f"    {_DIM}{text}{_RESET}")
            elif raw[:1] not in (" ", "") and not raw.startswith("Traceback"):
                out.append(f"    {_ERROR}{text}{_RESET}")
            else:
                out.append(f"    {text}")
        return "\n".join(out)
