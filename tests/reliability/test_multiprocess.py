"""Many processes, one file set (catalog L1, F5 and F6): 4 processes, rotating."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import threading
import time
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


@pytest.mark.parametrize(("ending", "compression"), [("close", "gz"), ("exit", "xz")])
def test_retention_and_compression_with_four_processes(
    log_dir: Path, ending: str, compression: str
) -> None:
    """Catalog F6: 4 processes x 4 threads rotating at 256 KiB with ``retention=3``, files
    rotating far faster than they compress (gzip, and the slower xz); each process ends with
    ``close()`` (through ``servicelog.reset()``) or leaves its sink to the exit drain.

    During the run the set stays near ``retention`` (not only once compression catches up).
    At the end: at most 3 rotated files beside the active one; the newest rotated file is
    still plain (``compress_delay``) and the older ones pass the format's own test (``gzip
    -t``, ``xz -t``), each compressed once (no double suffix, no plain twin, no ``.part``
    left); retention removed only the oldest records (each thread keeps an unbroken run up to
    its last record); nothing is duplicated, torn or out of order."""
    path = log_dir / "app.jsonl"
    suffix = {"gz": ".gz", "xz": ".xz"}[compression]
    peak = 0
    done = threading.Event()

    def watch() -> None:  # the number of rotated files (plain or compressed) over the run
        nonlocal peak
        while not done.is_set():
            try:
                peak = max(peak, sum(n.startswith("app_") for n in os.listdir(log_dir)))
            except FileNotFoundError:
                pass
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        reports = run_workers(
            path,
            4,
            [
                "--threads", "4", "--seconds", str(soak_seconds()),
                "--rotation", "256 KiB", "--compression", compression, "--retention", "3",
                *(["--no-close"] if ending == "exit" else []),
            ],
        )  # fmt: skip
    finally:
        done.set()
        watcher.join()
    assert sum(r["rotations"] for r in reports) >= 50, "too few rotations to mean anything"
    # 3 kept, the one just rotated, and per process a compressed file beside its original for
    # the instant between the rename and the unlink, or one whose original another process
    # aged out meanwhile (gone at the next rotation). Without retention at rotation: 35-63.
    assert peak <= 3 + 1 + 4 + 4, f"{peak} rotated files at once"
    names = sorted(os.listdir(log_dir))
    assert not [n for n in names if n.endswith((suffix + suffix, ".part"))], names
    assert not [n for n in names if n.endswith(suffix) and n[: -len(suffix)] in names], names
    members = list_members(str(path))
    assert 1 <= len(members) <= 3, [os.path.basename(m.path) for m in members]
    assert members[-1].compression == "", "the newest rotated file is compressed too early"
    for member in members[:-1]:
        assert member.compression == suffix
        subprocess.run([{"gz": "gzip", "xz": "xz"}[compression], "-t", member.path], check=True)
    assert path.exists()
    expected = expected_from(reports)
    verdict = verify(path, expected)
    assert (verdict.duplicates, len(verdict.unparseable), len(verdict.torn)) == (0, 0, 0), (
        verdict.summary()
    )
    assert not verdict.out_of_order, verdict.summary()
    assert verdict.records > 0
    for key, produced in expected.items():
        kept = verdict.seen.get(key, [])
        # Only a prefix of each thread's records can have aged out with the oldest files.
        assert kept == list(range(produced - len(kept), produced)), (key, produced, kept[:3])


def test_mixed_record_sizes_from_four_processes_stay_whole_lines(log_dir: Path) -> None:
    """Catalog L5: 4 processes x 2 threads log records of 100 B to 1 MiB into one rotating
    set. Every line is at most ``max_line_bytes`` (16 KiB), the records cut to fit say so
    (``truncated``, ``log.original_bytes``) and keep their small fields, and nothing is lost,
    duplicated, interleaved or unparseable."""
    path = log_dir / "app.jsonl"
    sizes = [100, 1_000, 10_000, 100_000, 1 << 20]
    reports = run_workers(
        path,
        4,
        [
            "--threads", "2", "--records", "150", "--rotation", "1 MiB",
            "--sizes", ",".join(map(str, sizes)),
        ],
    )  # fmt: skip
    expected = expected_from(reports)
    verdict = verify(path, expected, keep_records=True)
    assert (verdict.lost, verdict.duplicates, len(verdict.unparseable)) == (0, 0, 0), (
        verdict.summary()
    )
    assert not verdict.torn and not verdict.out_of_order, verdict.summary()
    cut = 0
    for member in [*list_members(str(path)), None]:
        file = member.path if member else str(path)
        with open(file, "rb") as f:
            assert all(len(line) <= 16 * 1024 for line in f), file
    for records in verdict.per_file.values():
        for record in records:
            if "pad" not in record:
                continue
            if record.get("truncated"):
                cut += 1
                assert record["log.original_bytes"] > 16 * 1024
            else:
                assert len(record["pad"]) == sizes[record["j"] % len(sizes)]
    assert cut >= 4 * 2 * 150 * 2 // len(sizes)  # the 100 kB and 1 MiB records at least
