"""The soak (catalog L2): 16 threads at 2,000 records/s through a rotating, compressing file
set. Short in CI (15 s, ~1,000 rotations); ``SERVICELOG_SOAK_SECONDS=1800`` for the nightly
length. The log-call latency target of L2 is measured by ``bench/call_latency_bench.py``, not
asserted here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from servicelog.reader import read_records
from servicelog.sinks.rotating import list_members

from .conftest import soak_seconds

pytestmark = pytest.mark.slow

SOAK = str(Path(__file__).with_name("soak.py"))


def test_soak_leaks_no_memory_descriptors_or_threads_and_loses_nothing(log_dir: Path) -> None:
    """After ~1,000 rotations with compression and retention: resident memory within 5 MiB of
    what it was after the warm-up, the same open file descriptors and the same threads as
    before the load, every record written (none dropped), the file set within retention and
    every kept record readable."""
    seconds = soak_seconds(15.0)
    path = log_dir / "app.jsonl"
    done = subprocess.run(
        [sys.executable, SOAK, "--path", str(path), "--seconds", str(seconds)],
        capture_output=True,
        timeout=seconds * 4 + 60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert not done.stderr, done.stderr.decode()
    report = orjson.loads(done.stdout)
    base, warm, end = report["base"], report["warm"], report["end"]
    counters = report["counters"]
    members = list_members(str(path))
    problems = {
        "too few rotations": report["rotations_after_warmup"] < 40 * seconds,
        "resident memory grew by 5 MiB or more": end["rss_kib"] - warm["rss_kib"] >= 5 * 1024,
        "open descriptors changed": end["fds"] != base["fds"],
        "threads changed": end["threads"] != base["threads"],
        "records dropped or left queued": counters["dropped"] != {} or counters["queued"] != 0,
        # produced + 1: the "soak starts" record
        "records not written": not counters["written"]
        == counters["produced"]
        == report["produced"] + 1,
        "retention=20 not kept": len(members) != 20,
        "older files not compressed": not all(m.compression == ".gz" for m in members[:-1]),
        "the newest rotated file compressed": members[-1].compression != "",
    }
    assert not [k for k, bad in problems.items() if bad], (problems, report)
    kept = list(read_records(path))
    assert kept and all(r["message"] == "soak" for r in kept)
