"""The pipeline's per-level paths: processors that cannot act at a level are left out."""

from __future__ import annotations

from typing import Any
from unittest.mock import MagicMock

import pytest

from servicelog.pipeline import Pipeline, Route
from servicelog.record import Record
from servicelog.sinks.memory import MemorySink


class Limit:
    """A processor that only acts from WARNING up, and says so."""

    min_level = 30

    def __init__(self) -> None:
        self.seen: list[int] = []

    def __call__(self, record: Record, levelno: int) -> Record | None:
        self.seen.append(levelno)
        return None if record.get("drop") else record


def tag(record: Record, levelno: int) -> Record:
    return {**record, "tagged": True}


def _pipeline(*processors: Any, level: int = 0) -> tuple[Pipeline, MemorySink]:
    sink = MemorySink()
    return Pipeline([Route(sink, level=level)], processors), sink


def test_a_processor_with_min_level_is_skipped_below_it_and_runs_from_it() -> None:
    limit = Limit()
    pipeline, sink = _pipeline(limit.__call__, tag)
    pipeline.emit_for(20)({"message": "info", "drop": True}, 20)
    pipeline.emit_for(30)({"message": "warn", "drop": True}, 30)
    pipeline.emit_for(40)({"message": "error"}, 40)
    assert limit.seen == [30, 40]
    assert [(r["message"], r["tagged"]) for r in sink.records] == [("info", True), ("error", True)]


def test_the_generic_emit_takes_the_same_path_per_level() -> None:
    """Foreign front-ends (stdlib, structlog, loguru) call ``emit`` with any level."""
    limit = Limit()
    pipeline, sink = _pipeline(limit)
    pipeline.emit({"message": "info", "drop": True}, 20)
    pipeline.emit({"message": "custom 35", "drop": True}, 35)
    pipeline.emit({"message": "warn"}, 30)
    assert limit.seen == [35, 30]
    assert [r["message"] for r in sink.records] == ["info", "warn"]


class Fusing:
    """A processor object that offers its own fused chain."""

    def __init__(self) -> None:
        self.fused = 0

    def __call__(self, record: Record, levelno: int) -> Record | None:
        raise AssertionError("the fused chain is used instead")

    def fuse_emit(self, after: Any) -> Any:
        self.fused += 1

        def chain(record: Record, levelno: int) -> None:
            after({**record, "fused": True}, levelno)

        return chain


@pytest.mark.parametrize("bound", [True, False], ids=["bound __call__", "the object"])
def test_a_processor_can_fuse_itself_with_the_rest_of_the_chain(bound: bool) -> None:
    fusing = Fusing()
    pipeline, sink = _pipeline(fusing.__call__ if bound else fusing, tag)
    pipeline.emit_for(20)({"message": "a"}, 20)
    pipeline.emit({"message": "b"}, 20)
    assert fusing.fused == 1
    assert [(r["message"], r["fused"], r["tagged"]) for r in sink.records] == [
        ("a", True, True),
        ("b", True, True),
    ]


def test_a_mock_processor_is_called_not_fused() -> None:
    """A mock answers every attribute; only a real ``fuse_emit`` on the class counts."""
    mock = MagicMock(side_effect=lambda record, levelno: {**record, "seen": True})
    pipeline, sink = _pipeline(mock)
    pipeline.emit({"message": "a"}, 20)
    assert mock.call_count == 1
    assert sink.records == [{"message": "a", "seen": True}]


def test_redaction_fused_in_the_chain_redacts_like_the_processor() -> None:
    from servicelog.redaction import RedactionPolicy

    policy = RedactionPolicy()
    pipeline, sink = _pipeline(policy.__call__)
    emit = pipeline.emit_for(20)
    assert emit.__name__ == "redact_then"
    for _ in range(3):  # the first call plans the shape, later ones take the fast path
        emit({"message": "login", "password": "hunter2", "user": "ann"}, 20)
        emit({"message": "login", "status": 200, "user": "Bearer abcdefghijklmnopqrstu1"}, 20)
    emit({"message": "login", "status": "token=abcdefghijklmnop123", "user": "ann"}, 20)
    assert [r for r in sink.records if "hunter2" in str(r) or "abcdefgh" in str(r)] == []
    assert {r["user"] for r in sink.records} == {"ann", "Bearer [REDACTED]"}


def test_routes_below_their_level_get_nothing_on_either_path() -> None:
    pipeline, sink = _pipeline(level=30)
    pipeline.emit_for(20)({"message": "info"}, 20)
    pipeline.emit({"message": "info"}, 20)
    pipeline.emit_for(30)({"message": "warn"}, 30)
    assert [r["message"] for r in sink.records] == ["warn"]


def test_per_level_paths_are_built_once() -> None:
    pipeline, _ = _pipeline(tag)
    assert pipeline.emit_for(20) is pipeline.emit_for(20)


# --- deferred records: one burst per event-loop iteration ---------------------------------------
class Buffered(MemorySink):
    """A sink whose records wait for a writer anyway, as a file sink's do."""

    deferrable = True


def _deferring(*processors: Any) -> tuple[Pipeline, Buffered]:
    sink = Buffered()
    return Pipeline([Route(sink)], processors), sink


def test_deferred_records_wait_for_one_scheduled_burst_and_keep_their_order() -> None:
    pipeline, sink = _deferring(tag)
    scheduled: list[Any] = []
    for n in range(3):
        pipeline.defer({"message": f"r{n}"}, 20, scheduled.append)
    assert sink.records == []
    assert len(scheduled) == 1  # one burst for the three
    scheduled[0]()
    assert [(r["message"], r["tagged"]) for r in sink.records] == [
        ("r0", True),
        ("r1", True),
        ("r2", True),
    ]
    pipeline.defer({"message": "next"}, 40, scheduled.append)
    assert len(scheduled) == 2  # the next iteration's burst
    scheduled[1]()
    assert sink.records[-1]["message"] == "next"


def test_without_a_running_loop_a_deferred_record_is_emitted_at_once() -> None:
    pipeline, sink = _deferring()

    def no_loop(callback: Any) -> None:
        raise RuntimeError("no running event loop")

    pipeline.defer({"message": "now"}, 20, no_loop)
    assert [r["message"] for r in sink.records] == ["now"]


def test_a_pipeline_with_a_sink_that_shows_records_at_once_does_not_defer() -> None:
    pipeline, sink = _pipeline()
    assert pipeline.deferrable is False
    pipeline.defer({"message": "now"}, 20, lambda callback: None)
    assert [r["message"] for r in sink.records] == ["now"]


def test_flush_and_close_emit_the_deferred_records_first() -> None:
    pipeline, sink = _deferring()
    pipeline.defer({"message": "a"}, 20, lambda callback: None)
    pipeline.flush()
    assert [r["message"] for r in sink.records] == ["a"]
    pipeline.defer({"message": "b"}, 20, lambda callback: None)
    pipeline.close()
    assert [r["message"] for r in sink.records] == ["a", "b"]


def test_a_deferred_record_travels_in_the_context_it_was_deferred_in() -> None:
    import contextvars

    tenant: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default="none")

    def add_tenant(record: Record, levelno: int) -> Record:
        return {**record, "tenant": tenant.get()}

    pipeline, sink = _deferring(add_tenant)
    scheduled: list[Any] = []
    token = tenant.set("acme")
    pipeline.defer({"message": "in the request"}, 20, scheduled.append)
    tenant.reset(token)
    scheduled[0]()
    assert sink.records[0]["tenant"] == "acme"


def test_a_processor_failing_in_a_burst_is_reported_and_the_others_are_emitted() -> None:
    from servicelog import _errors

    def picky(record: Record, levelno: int) -> Record:
        if record["message"] == "bad":
            raise ValueError("picky")
        return record

    _errors.clear()
    _errors.set_strict(False)  # count, as in production (tests otherwise raise)
    try:
        pipeline, sink = _deferring(picky)
        scheduled: list[Any] = []
        for message in ("ok", "bad", "fine"):
            pipeline.defer({"message": message}, 20, scheduled.append)
        scheduled[0]()
        assert [r["message"] for r in sink.records] == ["ok", "fine"]
        assert _errors.snapshot()["errors"].get("pipeline") == 1
    finally:
        _errors.set_strict(None)
        _errors.clear()


def test_a_burst_that_never_runs_does_not_hoard_records() -> None:
    from servicelog.pipeline import _MAX_DEFERRED

    pipeline, sink = _deferring()
    for n in range(_MAX_DEFERRED):
        pipeline.defer({"message": n}, 20, lambda callback: None)  # a loop that never runs it
    assert len(sink.records) == _MAX_DEFERRED


def test_a_forked_child_does_not_emit_the_parents_deferred_records() -> None:
    import os

    pipeline, sink = _deferring()
    pipeline.defer({"message": "parent's"}, 20, lambda callback: None)
    pid = os.fork()
    if pid == 0:  # the child: nothing deferred, nothing emitted on flush
        pipeline.flush()
        os._exit(0 if sink.records == [] else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    pipeline.flush()
    assert [r["message"] for r in sink.records] == ["parent's"]


def test_a_deferred_build_runs_in_the_burst_in_the_context_it_was_deferred_in() -> None:
    """``defer_build``: the record is made by its builder in the burst (where the pipeline's
    code is warm), from values taken at the call and the context of the call; a builder that
    raises is reported and the others are emitted."""
    import contextvars

    from servicelog import _errors

    user: contextvars.ContextVar[str] = contextvars.ContextVar("user", default="nobody")
    built: list[str] = []

    def build(message: str) -> Record:
        built.append(message)
        if message == "bad":
            raise ValueError("cannot build")
        return {"message": message, "user": user.get()}

    pipeline, sink = _deferring()
    scheduled: list[Any] = []
    token = user.set("alice")
    for message in ("a", "bad", "b"):
        pipeline.defer_build(build, (message,), 20, scheduled.append)
    user.reset(token)
    assert built == []  # nothing is built before the burst
    _errors.set_strict(False)
    try:
        scheduled[0]()
        assert _errors.snapshot()["errors"].get("pipeline") == 1
    finally:
        _errors.set_strict(None)
        _errors.clear()
    assert [(r["message"], r["user"]) for r in sink.records] == [("a", "alice"), ("b", "alice")]


def test_a_loop_that_never_runs_its_burst_holds_back_no_other_loops_records() -> None:
    """Loop A stops (or blocks) before its burst runs: loop B's records get a burst of B's."""
    pipeline, sink = _deferring()
    on_a: list[Any] = []
    on_b: list[Any] = []
    pipeline.defer({"message": "a"}, 20, on_a.append, "loop A")
    pipeline.defer({"message": "b1"}, 20, on_b.append, "loop B")
    pipeline.defer({"message": "b2"}, 20, on_b.append, "loop B")
    assert (len(on_a), len(on_b)) == (1, 1)  # one burst per loop, not per record
    on_b[0]()  # A's burst never runs
    assert [r["message"] for r in sink.records] == ["a", "b1", "b2"]


def test_flush_from_another_thread_waits_for_a_burst_in_progress() -> None:
    """The burst already took the records when flush() starts: flush() returns only once
    they are emitted (and bursts never interleave)."""
    import threading
    import time

    started = threading.Event()

    def slow(record: Record, levelno: int) -> Record:
        if record["message"] == "first":
            started.set()
            time.sleep(0.3)
        return record

    pipeline, sink = _deferring(slow)
    scheduled: list[Any] = []
    for message in ("first", "second"):
        pipeline.defer({"message": message}, 20, scheduled.append)
    burst = threading.Thread(target=scheduled[0])
    burst.start()
    assert started.wait(5)
    pipeline.flush()
    assert [r["message"] for r in sink.records] == ["first", "second"]
    burst.join()
