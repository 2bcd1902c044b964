"""The pipeline's per-level paths: processors that cannot act at a level are left out."""

from __future__ import annotations

from typing import Any

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


def test_the_generic_emit_still_runs_every_processor() -> None:
    limit = Limit()
    pipeline, sink = _pipeline(limit)
    pipeline.emit({"message": "info"}, 20)
    assert limit.seen == [20]
    assert [r["message"] for r in sink.records] == ["info"]


def test_routes_below_their_level_get_nothing_on_either_path() -> None:
    pipeline, sink = _pipeline(level=30)
    pipeline.emit_for(20)({"message": "info"}, 20)
    pipeline.emit({"message": "info"}, 20)
    pipeline.emit_for(30)({"message": "warn"}, 30)
    assert [r["message"] for r in sink.records] == ["warn"]


def test_per_level_paths_are_built_once() -> None:
    pipeline, _ = _pipeline(tag)
    assert pipeline.emit_for(20) is pipeline.emit_for(20)
