"""Clock and calendar (catalog F8): midnight, DST in Europe/Berlin and America/New_York, wall
clock steps, and a clock shared by several processes. The clock is injected, never waited for."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from servicelog.render.json import JsonRenderer
from servicelog.sinks.rotating import Daily, RotatingFileSink, list_members

from .conftest import worker_command
from .verify import verify

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now


def _names(path: Path) -> list[str]:
    return [os.path.basename(m.path) for m in list_members(str(path))]


@pytest.mark.parametrize(
    ("tz", "start"),
    [
        (BERLIN, datetime(2026, 3, 28, 12, tzinfo=BERLIN)),  # spring forward on the 29th
        (BERLIN, datetime(2026, 10, 24, 12, tzinfo=BERLIN)),  # fall back on the 25th
        (NEW_YORK, datetime(2026, 3, 7, 12, tzinfo=NEW_YORK)),  # spring forward on the 8th
        (NEW_YORK, datetime(2026, 10, 31, 12, tzinfo=NEW_YORK)),  # fall back on Nov 1st
    ],
)
def test_daily_rotation_across_dst_rotates_once_per_local_midnight(
    tmp_path: Path, tz: ZoneInfo, start: datetime
) -> None:
    """Walking the clock 10 minutes at a time through three local days that include a DST
    change: one file per local day, named after it, holding exactly that day's records."""
    path = tmp_path / "app.jsonl"
    clock = Clock(start)
    sink = RotatingFileSink(path, JsonRenderer(), rotation="00:00", tz=tz, clock=clock)
    end = start + timedelta(days=3)
    j = 0
    while clock.now < end.timestamp():
        day = datetime.fromtimestamp(clock.now, tz).date().isoformat()
        sink.emit({"message": "r", "p": 0, "t": 0, "j": j, "day": day}, 20)
        sink.flush()
        clock.now += 600
        j += 1
    sink.close()
    days = [(start + timedelta(days=d)).date().isoformat() for d in range(3)]
    assert _names(path) == [f"app_{day}.jsonl" for day in days]
    verdict = verify(path, {(0, 0): j}, keep_records=True)
    assert verdict.lost == 0 and not verdict.out_of_order
    for file, records in verdict.per_file.items():
        if file != str(path):
            assert {r["day"] for r in records} == {file[-16:-6]}


def test_dst_days_are_23_and_25_hours_long() -> None:
    """The period arithmetic itself: local midnight to local midnight across DST."""
    daily = Daily(1, tz=BERLIN)
    spring = datetime(2026, 3, 29, 12, tzinfo=BERLIN).timestamp()
    fall = datetime(2026, 10, 25, 12, tzinfo=BERLIN).timestamp()
    assert daily.next(spring) - daily.start(spring) == 23 * 3600
    assert daily.next(fall) - daily.start(fall) == 25 * 3600
    assert daily.label(daily.start(fall)) == "2026-10-25"
    weekly = Daily(7, tz=NEW_YORK)
    monday = datetime(2026, 11, 30, tzinfo=NEW_YORK).timestamp()
    assert weekly.start(monday + 3 * 86400) == monday
    assert weekly.label(monday) == "2026-11-30"


def test_wall_clock_steps_cause_no_rotation_storm(tmp_path: Path) -> None:
    """23:59:59.9 -> 00:00:00.1 rotates once; a step back of an hour rotates nothing (the
    active file's period is already today); a jump forward of 25 hours rotates once, naming
    the file after its own period; a restart across midnight rotates at its first batch."""
    path = tmp_path / "app.jsonl"
    clock = Clock(datetime(2026, 11, 28, 23, 59, 59, 900000, tzinfo=BERLIN))
    options = dict(rotation="00:00", tz=BERLIN, clock=clock)
    sink = RotatingFileSink(path, JsonRenderer(), **options)  # type: ignore[arg-type]

    def log(j: int) -> None:
        sink.emit({"message": "r", "p": 0, "t": 0, "j": j}, 20)
        sink.flush()

    log(0)
    clock.now += 0.2  # 00:00:00.1 on the 29th
    log(1)
    assert _names(path) == ["app_2026-11-28.jsonl"]
    clock.now -= 3600  # back to 23:00:00.1 on the 28th
    log(2)
    clock.now += 3600 + 60
    log(3)
    assert _names(path) == ["app_2026-11-28.jsonl"], "no second rotation for the same boundary"
    clock.now += 25 * 3600  # 01:01 on the 30th... after a 25 h jump
    log(4)
    assert _names(path) == ["app_2026-11-28.jsonl", "app_2026-11-29.jsonl"]
    sink.close()
    clock.now += 24 * 3600  # restart on the 31st... 1st of December
    sink = RotatingFileSink(path, JsonRenderer(), **options)  # type: ignore[arg-type]
    log(5)
    sink.close()
    assert _names(path) == [
        "app_2026-11-28.jsonl",
        "app_2026-11-29.jsonl",
        "app_2026-11-30.jsonl",
    ]
    assert verify(path, {(0, 0): 6}).lost == 0


@pytest.mark.slow
def test_four_processes_sharing_a_clock_rotate_once_per_boundary(log_dir: Path) -> None:
    """4 processes x 2 threads write while the (shared, injected) clock crosses midnight, the
    Berlin spring-forward night, steps back an hour and jumps a day: exactly one rotated file
    per local day, whatever process saw the boundary first, and no record lost."""
    log_dir.mkdir(parents=True)
    clock_file = log_dir.parent / "clock"
    # (the time, how many rotated files there must be once the writers have seen it)
    steps = [
        (datetime(2026, 3, 28, 23, 59, 59, tzinfo=BERLIN), 0),
        (datetime(2026, 3, 29, 0, 0, 1, tzinfo=BERLIN), 1),
        (datetime(2026, 3, 29, 1, 59, 59, tzinfo=BERLIN), 1),
        (datetime(2026, 3, 29, 3, 0, 1, tzinfo=BERLIN), 1),  # the hour that does not exist
        (datetime(2026, 3, 30, 0, 30, tzinfo=BERLIN), 2),
        (datetime(2026, 3, 29, 23, 30, tzinfo=BERLIN), 2),  # stepped back
        (datetime(2026, 3, 31, 0, 30, tzinfo=BERLIN), 3),
        (datetime(2026, 4, 1, 1, 0, tzinfo=BERLIN), 4),  # jumped a day
    ]
    clock_file.write_bytes(str(steps[0][0].timestamp()).encode())
    path = log_dir / "app.jsonl"
    procs = []
    for p in range(4):
        cmd = worker_command(
            path, p, "--threads", "2", "--forever", "--sleep", "0.001", "--rotation", "00:00",
            "--tz", "Europe/Berlin", "--clock-file", str(clock_file),
        )  # fmt: skip
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline() == b"STARTED\n"
        for step, rotated in steps[1:]:
            # A period rotates only if its file holds records (an empty one just moves on).
            deadline = time.monotonic() + 20
            while not (path.exists() and path.stat().st_size) and time.monotonic() < deadline:
                time.sleep(0.02)
            tmp = clock_file.with_suffix(".tmp")
            tmp.write_bytes(str(step.timestamp()).encode())
            tmp.rename(clock_file)
            # Let the writers see this time before the next step (a busy machine may take a
            # while), and give the others a few batches to rotate again if they were wrong.
            deadline = time.monotonic() + 20
            while len(_names(path)) < rotated and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.3)
            assert len(_names(path)) == rotated, (step, _names(path))
    finally:
        for proc in procs:
            proc.terminate()  # no handlers installed: records still queued are lost, fine
        for proc in procs:
            proc.communicate(timeout=30)
    assert _names(path) == [
        "app_2026-03-28.jsonl",
        "app_2026-03-29.jsonl",
        "app_2026-03-30.jsonl",
        "app_2026-03-31.jsonl",
    ]
    verdict = verify(path)
    assert verdict.duplicates == 0 and not verdict.out_of_order and not verdict.unparseable
