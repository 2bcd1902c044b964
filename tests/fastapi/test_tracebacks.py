"""Exceptions logged by the ASGI layer: each distinct traceback formatted once, same text."""

from __future__ import annotations

from typing import Any

import pytest

import servicelog
from servicelog.asgi import tracebacks
from servicelog.logger import get_logger
from servicelog.record import add_exception
from servicelog.sinks import MemorySink

from ..conftest import NO_CAPTURE


@pytest.fixture(autouse=True)
def empty_cache() -> None:
    tracebacks._cache.clear()


def fail(message: str) -> None:
    raise RuntimeError(message)


def caught(message: str = "boom", *, chained: bool = False) -> BaseException:
    try:
        try:
            fail(message)
        except RuntimeError as inner:
            if chained:
                raise ValueError("while handling") from inner
            raise
    except Exception as exc:
        return exc
    raise AssertionError("unreachable")


def logged(sink: MemorySink, exc: BaseException) -> dict[str, Any]:
    tracebacks.log_exception(get_logger("t"), "Unhandled exception", exc, {"url.path": "/x"})
    return sink.records[-1]


def expected(exc: BaseException) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    add_exception(fields, exc)
    return fields


@pytest.fixture
def sink() -> MemorySink:
    memory = MemorySink()
    servicelog.configure(
        service="t", stream="none", sinks=[memory], capture=NO_CAPTURE, show_locals=False
    )
    return memory


@pytest.mark.parametrize("chained", [False, True])
def test_cached_fields_are_what_the_logger_writes(sink: MemorySink, chained: bool) -> None:
    """A hit gives exactly the error fields the logger would have formatted, after the call's
    fields, as with exc_info."""
    first, second = caught(chained=chained), caught(chained=chained)
    logged(sink, first)
    record = logged(sink, second)
    assert len(tracebacks._cache) == 1, "the second exception had the same shape"
    error = {k: v for k, v in record.items() if k.startswith("error.")}
    assert error == expected(second)
    keys = list(record)
    assert keys.index("url.path") < keys.index("error.type") < keys.index("error.stack_trace")
    if chained:
        assert "The above exception was the direct cause" in record["error.stack_trace"]


def test_another_message_or_place_is_another_entry(sink: MemorySink) -> None:
    """The message and the frames are part of the shape: no trace is reused for another."""
    a = logged(sink, caught("first"))["error.stack_trace"]
    b = logged(sink, caught("second"))["error.stack_trace"]
    try:
        fail("first")
    except RuntimeError as exc:
        c = logged(sink, exc)["error.stack_trace"]
    assert "RuntimeError: first" in a and "RuntimeError: second" in b
    assert c != a, "raised from another line"
    assert len(tracebacks._cache) == 3


def test_notes_and_locals_are_left_to_the_logger(sink: MemorySink) -> None:
    """Text that depends on more than the shape is formatted by the logger every time."""
    exc = caught()
    exc.add_note("note 1")
    assert "note 1" in logged(sink, exc)["error.stack_trace"]
    servicelog.configure(
        service="t", stream="none", sinks=[sink], capture=NO_CAPTURE, show_locals=True
    )
    assert logged(sink, caught("with locals"))["error.message"] == "with locals"
    assert not tracebacks._cache


def test_an_exception_whose_str_raises_is_still_logged(sink: MemorySink) -> None:
    """A hostile __str__ makes the shape unknown: the logger's own guard takes over."""

    class Hostile(Exception):
        def __str__(self) -> str:
            raise ValueError("no")

    try:
        raise Hostile
    except Hostile as exc:
        record = logged(sink, exc)
    assert record["error.type"].endswith("Hostile")
    assert "unprintable" in record["error.message"]
    assert not tracebacks._cache
