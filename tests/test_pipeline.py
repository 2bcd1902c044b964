"""The pipeline's per-level paths: processors that cannot act at a level are left out."""

from __future__ import annotations

import asyncio
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


def test_deferred_records_wait_for_one_burst_at_the_loops_next_iteration_in_order() -> None:
    pipeline, sink = _deferring(tag)
    asked: list[int] = []

    def running_loop() -> asyncio.AbstractEventLoop:
        asked.append(1)
        return asyncio.get_running_loop()

    async def main() -> None:
        for n in range(3):
            pipeline.defer({"message": f"r{n}"}, 20, running_loop)
        assert sink.records == []
        assert len(asked) == 1  # one burst for the three: the loop is asked once
        await asyncio.sleep(0)
        assert [(r["message"], r["tagged"]) for r in sink.records] == [
            ("r0", True),
            ("r1", True),
            ("r2", True),
        ]
        pipeline.defer({"message": "next"}, 40, running_loop)
        assert len(asked) == 2  # the next iteration's burst
        await asyncio.sleep(0)
        assert sink.records[-1]["message"] == "next"

    asyncio.run(main())


def test_without_a_running_loop_a_deferred_record_is_emitted_at_once() -> None:
    pipeline, sink = _deferring()
    pipeline.defer({"message": "now"}, 20, asyncio.get_running_loop)
    assert [r["message"] for r in sink.records] == ["now"]


def test_a_pipeline_with_a_sink_that_shows_records_at_once_does_not_defer() -> None:
    pipeline, sink = _pipeline()
    assert pipeline.deferrable is False

    async def main() -> None:
        pipeline.defer({"message": "now"}, 20, asyncio.get_running_loop)
        assert [r["message"] for r in sink.records] == ["now"]

    asyncio.run(main())


def _stopped_before_its_burst(pipeline: Pipeline, *messages: str) -> asyncio.AbstractEventLoop:
    """A loop that stops in the iteration that deferred *messages*: its burst never runs."""
    loop = asyncio.new_event_loop()

    def defer() -> None:
        for message in messages:
            pipeline.defer({"message": message}, 20, asyncio.get_running_loop)
        loop.stop()

    loop.call_soon(defer)
    loop.run_forever()
    return loop


def test_flush_and_close_emit_the_deferred_records_first() -> None:
    pipeline, sink = _deferring()
    _stopped_before_its_burst(pipeline, "a").close()
    pipeline.flush()
    assert [r["message"] for r in sink.records] == ["a"]
    _stopped_before_its_burst(pipeline, "b").close()
    pipeline.close()
    assert [r["message"] for r in sink.records] == ["a", "b"]


def test_a_deferred_record_travels_in_the_context_it_was_deferred_in() -> None:
    import contextvars

    tenant: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default="none")

    def add_tenant(record: Record, levelno: int) -> Record:
        return {**record, "tenant": tenant.get()}

    pipeline, sink = _deferring(add_tenant)

    async def main() -> None:
        token = tenant.set("acme")
        pipeline.defer({"message": "in the request"}, 20, asyncio.get_running_loop)
        tenant.reset(token)
        await asyncio.sleep(0)

    asyncio.run(main())
    assert sink.records[0]["tenant"] == "acme"


def test_a_processor_failing_in_a_burst_is_reported_and_the_others_are_emitted() -> None:
    from servicelog import _errors

    def picky(record: Record, levelno: int) -> Record:
        if record["message"] == "bad":
            raise ValueError("picky")
        return record

    async def main() -> None:
        for message in ("ok", "bad", "fine"):
            pipeline.defer({"message": message}, 20, asyncio.get_running_loop)
        await asyncio.sleep(0)

    _errors.clear()
    _errors.set_strict(False)  # count, as in production (tests otherwise raise)
    try:
        pipeline, sink = _deferring(picky)
        asyncio.run(main())
        assert [r["message"] for r in sink.records] == ["ok", "fine"]
        assert _errors.snapshot()["errors"].get("pipeline") == 1
    finally:
        _errors.set_strict(None)
        _errors.clear()


def test_a_burst_that_never_runs_does_not_hoard_records() -> None:
    from servicelog.pipeline import _MAX_DEFERRED

    pipeline, sink = _deferring()

    async def main() -> None:  # a loop that never gets to run the burst
        for n in range(_MAX_DEFERRED):
            pipeline.defer({"message": n}, 20, asyncio.get_running_loop)
        assert len(sink.records) == _MAX_DEFERRED

    asyncio.run(main())


def test_a_forked_child_does_not_emit_the_parents_deferred_records() -> None:
    import os

    pipeline, sink = _deferring()
    _stopped_before_its_burst(pipeline, "parent's").close()
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

    async def main() -> None:
        token = user.set("alice")
        for message in ("a", "bad", "b"):
            pipeline.defer_build(build, (message,), 20, asyncio.get_running_loop)
        user.reset(token)
        assert built == []  # nothing is built before the burst
        await asyncio.sleep(0)

    _errors.set_strict(False)
    try:
        asyncio.run(main())
        assert _errors.snapshot()["errors"].get("pipeline") == 1
    finally:
        _errors.set_strict(None)
        _errors.clear()
    assert [(r["message"], r["user"]) for r in sink.records] == [("a", "alice"), ("b", "alice")]


def test_a_loop_that_stopped_before_its_burst_holds_back_no_later_loops_records() -> None:
    """Loop A stops before its burst runs: loop B, in the same thread, schedules its own."""
    pipeline, sink = _deferring()
    _stopped_before_its_burst(pipeline, "a").close()

    async def main() -> None:
        pipeline.defer({"message": "b1"}, 20, asyncio.get_running_loop)
        pipeline.defer({"message": "b2"}, 20, asyncio.get_running_loop)
        await asyncio.sleep(0)

    asyncio.run(main())
    assert [r["message"] for r in sink.records] == ["a", "b1", "b2"]


def test_a_blocked_loop_holds_back_no_other_threads_records() -> None:
    """Each thread schedules its own bursts: loop A, blocked in its thread after deferring,
    does not keep loop B (another thread) from emitting, and its own record goes with B's."""
    import threading

    pipeline, sink = _deferring()
    deferred, release = threading.Event(), threading.Event()

    async def blocked() -> None:
        pipeline.defer({"message": "a"}, 20, asyncio.get_running_loop)
        deferred.set()
        release.wait(5)  # blocks its loop: its burst cannot run

    thread = threading.Thread(target=asyncio.run, args=(blocked(),))
    thread.start()
    try:
        assert deferred.wait(5)

        async def main() -> None:
            pipeline.defer({"message": "b"}, 20, asyncio.get_running_loop)
            await asyncio.sleep(0)

        asyncio.run(main())
        assert [r["message"] for r in sink.records] == ["a", "b"]
    finally:
        release.set()
        thread.join()


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

    async def main() -> None:
        for message in ("first", "second"):
            pipeline.defer({"message": message}, 20, asyncio.get_running_loop)
        await asyncio.sleep(0)  # the burst, in this thread

    burst = threading.Thread(target=asyncio.run, args=(main(),))
    burst.start()
    assert started.wait(5)
    pipeline.flush()
    assert [r["message"] for r in sink.records] == ["first", "second"]
    burst.join()
