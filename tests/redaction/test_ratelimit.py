"""The per-message rate limit (catalog item S4): a flood of one message is cut after the burst,
and one summary record says how many were dropped."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import servicelog
from servicelog.ratelimit import SUPPRESSED, SUPPRESSED_MESSAGE, RateLimit
from servicelog.sinks import MemorySink

from ..conftest import NO_CAPTURE


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def configure_limited(memory: MemorySink, limit: RateLimit, **options: Any) -> None:
    servicelog.configure(
        stream="none", sinks=[memory], capture=NO_CAPTURE, rate_limit=limit, **options
    )


def messages(memory: MemorySink) -> list[str]:
    return [r["message"] for r in memory.records]


def test_a_flood_is_cut_after_the_burst_and_summarised_once(memory: MemorySink) -> None:
    clock = Clock()
    configure_limited(memory, RateLimit(burst=3, interval=10, clock=clock))
    log = servicelog.get_logger("app.auth")
    for _ in range(1000):
        log.warning("invalid token")
    assert messages(memory) == ["invalid token"] * 3
    assert servicelog.stats()["suppressed"] == 997
    clock.now += 10
    log.warning("invalid token")
    summary = memory.records[3]
    assert summary["message"] == "suppressed 997 similar messages"
    assert summary[SUPPRESSED] == 997 and summary[SUPPRESSED_MESSAGE] == "invalid token"
    assert summary["log.logger"] == "app.auth" and summary["log.level"] == "warning"
    assert summary["service.name"] == "app", "a summary carries the static fields"
    assert messages(memory)[4:] == ["invalid token"], "the new window starts with a record"


def test_the_key_is_logger_level_and_message(memory: MemorySink) -> None:
    configure_limited(memory, RateLimit(burst=2, interval=10, clock=Clock()))
    a, b = servicelog.get_logger("a"), servicelog.get_logger("b")
    for _ in range(5):
        a.warning("same")
        b.warning("same")
        a.error("same")
        a.warning("other")
    assert len(memory.records) == 8, "2 of each of the 4 keys"


def test_below_min_level_nothing_is_limited(memory: MemorySink) -> None:
    """INFO is normal traffic (an access log line per request); only WARNING+ is limited."""
    configure_limited(memory, RateLimit(burst=1, interval=10, clock=Clock()))
    log = servicelog.get_logger("app")
    for _ in range(50):
        log.info("request completed")
    assert len(memory.records) == 50
    assert servicelog.stats()["suppressed"] == 0  # (always present: 0 until one is)


def test_a_summary_is_emitted_when_any_key_logs_after_the_window(memory: MemorySink) -> None:
    clock = Clock()
    configure_limited(memory, RateLimit(burst=1, interval=5, clock=clock))
    log = servicelog.get_logger("app")
    for _ in range(4):
        log.error("disk full")
    clock.now += 6
    log.error("something else")
    assert messages(memory) == ["disk full", "suppressed 3 similar messages", "something else"]


def test_flush_emits_pending_summaries(memory: MemorySink) -> None:
    limit = RateLimit(burst=1, interval=60, clock=Clock())
    configure_limited(memory, limit)
    log = servicelog.get_logger("app")
    log.error("x")
    log.error("x")
    limit.flush()
    limit.flush()
    assert messages(memory) == ["x", "suppressed 1 similar message"]


def test_summaries_are_redacted_like_any_record(memory: MemorySink) -> None:
    clock = Clock()
    configure_limited(memory, RateLimit(burst=1, interval=1, clock=clock))
    log = servicelog.get_logger("app")
    log.warning("bad login password=hunter2")
    log.warning("bad login password=hunter2")
    clock.now += 2
    log.warning("bad login password=hunter2")
    summary = memory.records[1]
    assert summary[SUPPRESSED_MESSAGE] == "bad login password=[REDACTED]"
    assert "hunter2" not in repr(memory.records)


def test_memory_is_bounded(memory: MemorySink) -> None:
    """The least recently seen key is forgotten first, its pending summary emitted."""
    limit = RateLimit(burst=1, interval=60, max_keys=10, clock=Clock())
    configure_limited(memory, limit)
    log = servicelog.get_logger("app")
    log.error("first")
    log.error("first")
    for i in range(20):
        log.error(f"key {i}")
    assert len(limit._windows) == 10
    assert "suppressed 1 similar message" in messages(memory)


def test_it_is_thread_safe(memory: MemorySink) -> None:
    configure_limited(memory, RateLimit(burst=100, interval=60, clock=Clock()))
    log = servicelog.get_logger("app")

    def flood() -> None:
        for _ in range(1000):
            log.warning("flood")

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(memory.records) == 100
    assert servicelog.stats()["suppressed"] == 3900


def test_a_custom_key_and_emit() -> None:
    sent: list[dict[str, Any]] = []
    clock = Clock()
    limit = RateLimit(
        burst=1,
        interval=1,
        key=lambda record, levelno: record["message"].split(" ")[0],
        emit=lambda record, levelno: sent.append(record),
        clock=clock,
    )
    assert limit({"message": "timeout 1"}, 30) is not None
    assert limit({"message": "timeout 2"}, 30) is None
    clock.now += 1
    assert limit({"message": "timeout 3"}, 30) is not None
    assert [r[SUPPRESSED] for r in sent] == [1]


def test_a_broken_key_function_never_loses_records() -> None:
    def key(record: Any, levelno: int) -> Any:
        raise RuntimeError("bad key")

    servicelog.configure(stream="none", capture=NO_CAPTURE, strict=False)
    limit = RateLimit(key=key)
    record = {"message": "x"}
    assert limit(record, 40) is record
    assert servicelog.stats()["errors"] == {"rate limit": 1}


@pytest.mark.parametrize("bad", [dict(burst=0), dict(interval=0), dict(max_keys=0)])
def test_bad_limits_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="RateLimit needs"):
        RateLimit(**bad)


def test_min_level_takes_a_level_name_or_refuses(memory: MemorySink) -> None:
    limit = RateLimit(burst=1, interval=60, min_level="error", clock=Clock())
    assert repr(limit).endswith("min_level=error, max_keys=10000)")
    configure_limited(memory, limit)
    log = servicelog.get_logger("app")
    for _ in range(3):
        log.warning("w")  # below the limit's level: all through
        log.error("e")
    assert messages(memory) == ["w", "e", "w", "w"]  # the 2nd and 3rd errors dropped
    with pytest.raises(servicelog.ConfigError, match="min_level"):
        RateLimit(min_level="loud")


def test_a_limit_passed_in_processors_is_flushed_too(memory: MemorySink) -> None:
    limit = RateLimit(burst=1, interval=60, clock=Clock())
    servicelog.configure(
        stream="none", sinks=[memory], capture=NO_CAPTURE, rate_limit=False, processors=[limit]
    )
    log = servicelog.get_logger("app")
    log.error("x")
    log.error("x")
    servicelog.flush()
    assert messages(memory) == ["x", "suppressed 1 similar message"]


def test_a_window_keeps_a_bounded_copy_of_its_message(memory: MemorySink) -> None:
    limit = RateLimit(burst=1, interval=60, clock=Clock())
    configure_limited(memory, limit)
    huge = "m" * 100_000
    log = servicelog.get_logger("app")
    log.error(huge)
    log.error(huge)
    (window,) = limit._windows.values()
    assert window.message == "m" * 1024 + "…"
    limit.flush()
    assert memory.records[-1][SUPPRESSED_MESSAGE] == "m" * 1024 + "…"


def test_repr() -> None:
    assert repr(RateLimit()) == (
        "RateLimit(burst=1000, interval=10.0, min_level=warning, max_keys=10000)"
    )


def test_access_records_are_never_rate_limited() -> None:
    """One access record per request: a flood of identical 5xx lines must not lose requests."""
    from servicelog.ratelimit import RateLimit

    limit = RateLimit(burst=2, interval=60, emit=lambda record, levelno: None)
    record = {"log.logger": "servicelog.access", "message": "GET /boom 500"}
    assert all(limit(dict(record), 40) is not None for _ in range(10))
    other = {"log.logger": "app", "message": "boom"}
    assert [limit(dict(other), 40) is not None for _ in range(3)] == [True, True, False]


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"duplicate keys: {keys}"
    return dict(pairs)


def test_a_summary_line_has_each_key_once() -> None:
    """The summary's JSON line carries the static fields once (Elasticsearch rejects a document
    with a duplicate key), and the console shows the summary as any record."""
    import io
    import json

    from servicelog.render.console import ConsoleRenderer
    from servicelog.render.json import JsonRenderer
    from servicelog.sinks import StreamSink

    buf = io.StringIO()
    memory = MemorySink(ConsoleRenderer(color=False))
    servicelog.configure(
        service="shop",
        version="1.0",
        stream="none",
        capture=NO_CAPTURE,
        sinks=[StreamSink(JsonRenderer(), buf), memory],
        rate_limit=RateLimit(burst=1, interval=10),
    )
    log = servicelog.get_logger("app.auth")
    for _ in range(3):
        log.warning("invalid token")
    servicelog.flush()
    lines = buf.getvalue().splitlines()
    summary = json.loads(lines[-1], object_pairs_hook=_no_duplicate_keys)
    assert summary[SUPPRESSED] == 2
    assert (summary["service.name"], summary["service.version"]) == ("shop", "1.0")
    assert memory.records[-1]["service.name"] == "shop"
    console_line = str(memory.lines[-1])
    assert "suppressed 2 similar messages" in console_line, console_line


def test_a_summary_comes_after_the_window_even_if_only_info_follows(memory: MemorySink) -> None:
    """INFO records never reach the limit (they pay nothing for it): a timer emits the summary
    once the window has ended."""
    import time

    configure_limited(memory, RateLimit(burst=1, interval=0.05))
    log = servicelog.get_logger("app")
    for _ in range(3):
        log.warning("db down")
    deadline = time.monotonic() + 5
    while "suppressed 2 similar messages" not in messages(memory):
        assert time.monotonic() < deadline, messages(memory)
        log.info("request served")
        time.sleep(0.01)
    summary = next(r for r in memory.records if SUPPRESSED in r)
    assert (summary["log.level"], summary[SUPPRESSED_MESSAGE]) == ("warning", "db down")


def test_a_forked_child_summarises_its_own_drops_by_its_own_timer(tmp_path: Any) -> None:
    """The parent dropped 2 and reports them; the child drops 3 and, without flushing, its
    timer (the parent's thread is not in the child) reports 3, not 5."""
    import json
    import os
    import time

    path = tmp_path / "rl.jsonl"
    servicelog.configure(
        stream="none", file=path, rate_limit=RateLimit(burst=1, interval=0.3), capture=NO_CAPTURE
    )
    log = servicelog.get_logger("app")
    for _ in range(3):
        log.warning("boom")
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            for _ in range(3):
                log.warning("boom")
            time.sleep(0.8)  # the window ends, the child's timer writes the summary
            servicelog.flush()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    servicelog.flush()
    summaries = {
        ("child" if r["process.pid"] == pid else "parent", r["message"])
        for r in map(json.loads, path.read_text().splitlines())
        if SUPPRESSED in r
    }
    assert summaries == {
        ("parent", "suppressed 2 similar messages"),
        ("child", "suppressed 3 similar messages"),
    }
