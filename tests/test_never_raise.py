"""A logging library must never take down the service it observes."""

from __future__ import annotations

import io
import os
from typing import Any

import pytest

import servicelog
from servicelog import _errors
from servicelog.render.json import JsonRenderer
from servicelog.sinks import FileSink, MemorySink

from .conftest import NO_CAPTURE


class ExplodingSink:
    name = "exploding"

    def __init__(self) -> None:
        self.calls = 0

    def emit(self, record: dict[str, Any], levelno: int) -> None:
        self.calls += 1
        raise RuntimeError("sink is broken")

    def flush(self) -> None:
        return None

    def close(self, timeout: float | None = None) -> None:
        return None


def test_a_failing_sink_is_counted_and_reported_once_not_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr("sys.__stderr__", stderr)
    broken = ExplodingSink()
    servicelog.configure(stream="none", sinks=[broken], capture=NO_CAPTURE, strict=False)
    log = servicelog.get_logger("app")
    for i in range(5):
        log.info("still serving", i=i)  # must not raise
    assert broken.calls == 5
    assert servicelog.stats()["errors"] == {"log call": 5}
    report = stderr.getvalue()
    assert report.count("servicelog:") == 1, "reported at most once a minute"
    assert "RuntimeError: sink is broken" in report and "logging continues" in report


@pytest.mark.parametrize("profile", ["production", "development"])
def test_a_repr_that_logs_its_own_object_does_bounded_work(
    tmp_path: Any, profile: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ``__repr__`` that logs its object: servicelog takes that repr again from inside the
    first, twice a level (the renderer's fast and safe paths, or redaction and the renderer),
    so the work doubled per level until the recursion limit (2.8 M reprs at a limit of 200;
    never ending at 1,000). Now nested reprs stop a few levels down, whatever the limit, the
    outer record is written, and nothing is raised or counted as a failed log call."""
    import sys

    calls = 0

    class Loop:
        def __repr__(self) -> str:
            nonlocal calls
            calls += 1
            log.info("inside", v=self)
            return "Loop()"

    servicelog.configure(
        stream="stderr", profile=profile, capture=NO_CAPTURE, file=tmp_path / "app.jsonl"
    )
    log = servicelog.get_logger("app")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(150)  # (the old code made ~10**5 reprs here, and never ended at 1,000)
    try:
        log.info("outer", v=Loop())
        servicelog.flush()
    finally:
        sys.setrecursionlimit(limit)
    assert calls < 500
    assert servicelog.stats()["errors"] == {}
    lines = (tmp_path / "app.jsonl").read_text().splitlines()
    assert '"message":"outer"' in lines[-1] and '"v":"Loop()"' in lines[-1]
    assert "outer" in capsys.readouterr().err


def test_under_pytest_our_own_bugs_stay_visible() -> None:
    servicelog.configure(stream="none", sinks=[ExplodingSink()], capture=NO_CAPTURE)
    with pytest.raises(RuntimeError, match="sink is broken"):
        servicelog.get_logger("app").info("x")


def test_a_failing_stdlib_record_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    monkeypatch.setattr("sys.__stderr__", io.StringIO())
    servicelog.configure(stream="none", sinks=[ExplodingSink()], strict=False)
    logging.getLogger("lib").error("boom")
    assert servicelog.stats()["errors"] == {"stdlib bridge": 1}


def test_a_write_error_is_counted_with_the_records_lost(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk (simulated: the descriptor is closed under the sink) is an environmental
    fault: never raised, even under pytest; the lost records are counted exactly."""
    monkeypatch.setattr("sys.__stderr__", io.StringIO())
    sink = FileSink(tmp_path / "app.jsonl", JsonRenderer())
    servicelog.configure(stream="none", sinks=[sink], capture=NO_CAPTURE)
    log = servicelog.get_logger("app")
    os.close(sink._fd)
    for i in range(7):
        log.info("to a dead file", i=i)
    servicelog.flush()
    stats = servicelog.stats()
    assert stats["lost"] == 7
    assert stats["sinks"][sink.name]["dropped"] == {"write_error": 7}
    assert stats["errors"] == {f"sink {sink.name}": 1}


def test_bad_arguments_to_a_log_call_do_not_raise(configure_memory: Any) -> None:
    memory: MemorySink = configure_memory(strict=False)
    log = servicelog.get_logger("app")
    log.info("%s and %s", "only one")
    log.info(12345)
    log.info(None)
    log.log("NOT-A-LEVEL", "x")
    assert [r["message"] for r in memory.records] == [
        "%s and %s ('only one',)",
        "12345",
        "None",
    ]
    assert servicelog.stats()["errors"] == {"log call": 1}


class Unprintable:
    """A lazily loaded model, say, whose ``__str__`` and ``__repr__`` raise."""

    def __str__(self) -> str:
        raise RuntimeError("lazy attribute not loaded")

    __repr__ = __str__


def test_an_argument_whose_repr_raises_keeps_the_record(configure_memory: Any) -> None:
    """The record is logged, the other arguments and fields shown, nothing counted lost."""
    memory: MemorySink = configure_memory(strict=False)
    servicelog.get_logger("app").warning("saving %s for %s", Unprintable(), "ann", order_id=7)
    (record,) = memory.records
    assert record["message"] == (
        "saving %s for %s (<unrepresentable Unprintable: repr() raised RuntimeError>, 'ann')"
    )
    assert record["order_id"] == 7
    assert servicelog.stats()["errors"] == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (({"user": "ann"},), "ann logged in"),  # one mapping: the stdlib's "%(name)s" rule
        (({},), "%(user)s logged in ({},)"),  # an empty one is not (as in the stdlib)
    ],
)
def test_a_single_mapping_argument_fills_named_formats(
    configure_memory: Any, args: tuple[object, ...], message: str
) -> None:
    memory: MemorySink = configure_memory(strict=False)
    servicelog.get_logger("app").info("%(user)s logged in", *args)
    assert [r["message"] for r in memory.records] == [message]


def test_a_failed_log_call_counts_its_record_as_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    monkeypatch.setattr("sys.__stderr__", io.StringIO())
    servicelog.configure(stream="none", sinks=[ExplodingSink()], strict=False)
    log = servicelog.get_logger("app")
    log.info("lost")
    log.log("info", "lost too")
    log.log("NOT-A-LEVEL", "lost as well")
    logging.getLogger("lib").error("lost through the bridge")
    assert servicelog.stats()["lost"] == 4


def test_report_is_rate_limited_per_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr("sys.__stderr__", stderr)
    _errors.set_strict(False)
    for _ in range(10):
        _errors.report("stage-a", ValueError("a"))
        _errors.report("stage-b", ValueError("b"))
    assert stderr.getvalue().count("stage-a") == 1
    assert stderr.getvalue().count("stage-b") == 1
    assert _errors.snapshot()["errors"] == {"stage-a": 10, "stage-b": 10}
