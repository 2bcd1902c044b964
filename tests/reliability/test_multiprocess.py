"""Many processes, one file set (catalog L1 and F5): 4 processes x 8 threads, rotating."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from servicelog.sinks.rotating import list_members

from .conftest import expected_from, run_workers, soak_seconds
from .verify import verify

pytestmark = pytest.mark.slow


def test_size_rotation_with_four_processes_loses_and_duplicates_nothing(log_dir: Path) -> None:
    """4 processes x 8 threads through 1 MiB rotation: every record once, in per-thread
    order, no unparseable line, every file within the size (one record of slack), nothing
    overwritten (the sequence numbers have no gap)."""
    path = log_dir / "app.jsonl"
    seconds = soak_seconds()
    reports = run_workers(
        path, 4, ["--threads", "8", "--seconds", str(seconds), "--rotation", "1 MiB"]
    )
    expected = expected_from(reports)
    verdict = verify(path, expected)
    assert sum(expected.values()) > 10_000, "the load is too light to mean anything"
    assert (verdict.lost, verdict.duplicates, len(verdict.unparseable)) == (0, 0, 0), (
        verdict.summary()
    )
    assert not verdict.torn and not verdict.out_of_order, verdict.summary()
    assert all(r["counters"]["dropped"] == {} for r in reports)
    members = list_members(str(path))
    assert len(members) >= 2, "expected several rotations"
    for member in members:
        assert os.path.getsize(member.path) <= 1024 * 1024 + 400
        assert stat.S_IMODE(os.stat(member.path).st_mode) == 0o600
    by_label: dict[str, list[int]] = {}
    for member in members:
        by_label.setdefault(member.label, []).append(member.seq)
    for seqs in by_label.values():
        assert seqs == list(range(len(seqs))), "a rotated file was overwritten or lost"


def test_time_rotation_every_second_rotates_once_per_boundary(log_dir: Path) -> None:
    """4 processes x 8 threads with rotation every second: one rotated file per second (never
    two for one period, which would take a sequence number), nothing lost or duplicated."""
    path = log_dir / "app.jsonl"
    seconds = max(3.0, soak_seconds())
    reports = run_workers(
        path,
        4,
        [
            "--threads",
            "8",
            "--seconds",
            str(seconds),
            "--rotation",
            "1 second",
            "--sleep",
            "0.0005",
        ],
    )
    expected = expected_from(reports)
    verdict = verify(path, expected)
    assert (verdict.lost, verdict.duplicates, len(verdict.unparseable)) == (0, 0, 0), (
        verdict.summary()
    )
    assert not verdict.torn and not verdict.out_of_order, verdict.summary()
    members = list_members(str(path))
    assert len(members) >= int(seconds) - 1
    assert all(m.seq == 0 for m in members), [os.path.basename(m.path) for m in members]
    labels = [m.label for m in members]
    assert len(set(labels)) == len(labels)
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z", label) for label in labels)
