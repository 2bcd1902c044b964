"""Overload (catalog L4): a sink 10x slower than its producers, with each overflow policy.

The invariant, exact in both policies: produced = written + dropped, every drop counted by
reason, and the ``log.dropped`` summary records in the output add up to the drops.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import orjson
import pytest

from servicelog.render.json import JsonRenderer
from servicelog.sinks.base import BufferedSink, Overflow

from .conftest import soak_seconds


class SlowSink(BufferedSink):
    """Writes to a list, 0.1 ms per record (a slow disk)."""

    name = "slow"

    def __init__(self, **options: object) -> None:
        self.lines: list[bytes] = []
        self.peak_bytes = 0
        super().__init__(JsonRenderer(), **options)  # type: ignore[arg-type]

    def write_batch(self, data: bytes) -> None:
        self.peak_bytes = max(self.peak_bytes, len(data) + self.queued_bytes)
        lines = data.splitlines()
        time.sleep(0.0001 * len(lines))
        self.lines.extend(lines)


class CountingEvent(threading.Event):
    """The sink's "space" event, counting the waits of callers that found the queue full."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return super().wait(timeout)


def _counting_waits(sink: SlowSink) -> CountingEvent:
    event = CountingEvent()
    sink._space = event  # before any record: the writer and the callers use this one
    return event


def _produce(sink: SlowSink, threads: int, seconds: float) -> tuple[int, list[float]]:
    produced = [0] * threads
    latencies: list[list[float]] = [[] for _ in range(threads)]
    stop = time.monotonic() + seconds

    def work(t: int) -> None:
        j = 0
        emit, clock = sink.emit, time.perf_counter
        while time.monotonic() < stop:
            start = clock()
            emit({"message": "r", "t": t, "j": j}, 20)
            latencies[t].append(clock() - start)
            j += 1
        produced[t] = j

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(produced), sorted(x for lat in latencies for x in lat)


def _check_accounting(sink: SlowSink, produced: int) -> Counter[str]:
    records = [orjson.loads(line) for line in sink.lines]
    summaries: Counter[str] = Counter()
    regular = 0
    for record in records:
        if record.get("event.action") == "log.dropped":
            summaries[record["servicelog.dropped.reason"]] += record["servicelog.dropped.count"]
        else:
            regular += 1
    counters = sink.counters()
    assert counters["produced"] == produced
    assert counters["queued"] == 0
    assert regular == counters["written"], "written counts exactly the records in the output"
    assert produced == counters["written"] + sum(counters["dropped"].values())
    assert summaries == Counter(counters["dropped"]), "log.dropped records add up to the drops"
    return summaries


@pytest.mark.parametrize("policy", ["drop", "block"])
def test_overflow_accounting_is_exact(policy: Overflow) -> None:
    """4 threads produce as fast as they can into a sink that writes 0.1 ms per record with
    room for 500 records: produced = written + dropped, exactly, in both policies; the queue
    never holds more than its bounds (plus one line per thread); drop mode adds no wait;
    block mode waits at most block_timeout, then drops at once until the writer catches up."""
    sink = SlowSink(
        max_records=500,
        max_buffer_bytes=64 * 1024,
        batch_bytes=4096,
        overflow=policy,
        block_timeout=0.02,
        flush_interval=0.01,
    )
    space = _counting_waits(sink)
    produced, _ = _produce(sink, threads=4, seconds=min(1.0, soak_seconds(1.0)))
    sink.close()
    summaries = _check_accounting(sink, produced)
    reason = "queue_full" if policy == "drop" else "block_timeout"
    assert set(summaries) == {reason}, "the sink is 10x too slow: drops are expected"
    assert sink.peak_bytes <= 64 * 1024 + 4 * 200
    # Counted, not timed (call latency is measured in bench/call_latency_bench.py): drop
    # mode never waits; block mode waits, and still drops once a wait times out.
    if policy == "drop":
        assert space.waits == 0
    else:
        assert space.waits > 0


def test_block_mode_loses_nothing_when_the_writer_keeps_up_in_time() -> None:
    """With a block_timeout longer than a batch takes, a slow sink slows the producers down
    (back-pressure) instead of losing records."""
    sink = SlowSink(max_records=200, batch_bytes=2048, overflow="block", block_timeout=2.0)
    produced, _ = _produce(sink, threads=2, seconds=0.5)
    sink.close()
    assert _check_accounting(sink, produced) == Counter()
    assert sink.counters()["written"] == produced


def test_a_stuck_writer_costs_each_thread_one_timeout() -> None:
    """A writer that hangs (a dead NFS server): the first caller to find the queue full waits
    block_timeout; everyone after drops at once until the writer moves again."""
    gate = threading.Event()

    class Stuck(SlowSink):
        def write_batch(self, data: bytes) -> None:
            gate.wait(10)
            super().write_batch(data)

    sink = Stuck(max_records=50, batch_bytes=1, overflow="block", block_timeout=0.1)
    space = _counting_waits(sink)
    for j in range(500):
        sink.emit({"message": "r", "j": j}, 20)
    assert space.waits <= 3, "one block_timeout (a wake-up or two inside it), not one per record"
    gate.set()
    sink.close()
    assert sink.dropped["block_timeout"] >= 400
    assert _check_accounting(sink, 500)
