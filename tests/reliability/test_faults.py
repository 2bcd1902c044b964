"""Faults under a running writer (catalog F3, F4, F7): full disk, read-only filesystem, deleted
directory or file, external rename. None may raise into the application; every lost record is
counted exactly, reported at most once a minute, and writing resumes with the next batch."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from servicelog.render.json import JsonRenderer
from servicelog.sinks import RotatingFileSink

from .verify import verify

pytestmark = pytest.mark.slow


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs of our own (needs root: CAP_SYS_ADMIN); skipped where it cannot mount."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    yield from _mounted(
        mnt,
        [["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mnt)]],
        "cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN)",
    )


def _mounted(mnt: Path, commands: list[list[str]], why: str) -> Iterator[Path]:
    """Run *commands* (the last one mounts *mnt*), skipping the test with *why* if one cannot
    run or fails; yield *mnt*, then unmount it."""
    for cmd in commands:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True)
        except FileNotFoundError as exc:
            pytest.skip(f"{why}: {exc}")
        if out.returncode != 0:
            pytest.skip(f"{why}: {out.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _remount(mnt: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mnt)], check=True, capture_output=True)


def _log(sink: RotatingFileSink, start: int, count: int, *, flush_every: int = 10) -> None:
    for j in range(start, start + count):
        sink.emit({"message": "r", "p": 0, "t": 0, "j": j, "pad": "x" * 200}, 20)
        if (j + 1) % flush_every == 0:
            sink.flush()
    sink.flush()


def _fill(mnt: Path) -> Path:
    filler = mnt / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    error = 0
    try:
        while not error:
            try:
                os.write(fd, b"\0" * 4096)
            except OSError as exc:
                error = exc.errno or -1
    finally:
        os.close(fd)
    assert error == errno.ENOSPC
    return filler


def _wait_for_line(path: Path, needle: bytes, timeout: float = 10.0) -> float:
    # A generous limit: it tells "resumes" from "never resumes" (the writer retries on its next
    # batch, ~50 ms here) without timing the machine.
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if path.exists() and needle in path.read_bytes():
            return time.monotonic() - start
        time.sleep(0.01)
    raise AssertionError(f"{needle!r} not written within {timeout}s")


def _reports(err: str) -> int:
    return sum(1 for line in err.splitlines() if line.startswith("servicelog: sink file:"))


def test_a_full_disk_loses_exactly_what_it_counts_and_recovers(
    tmpfs: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """ENOSPC on a 1 MiB tmpfs: fill it, log 300 records, free it, log 100. Nothing raises;
    records written + records counted lost = records logged, exactly; the lost ones are
    summarised in a log.dropped record once writing works again; one stderr report; writing
    resumes; no complete record is ever glued to a fragment."""
    path = tmpfs / "logs" / "app.jsonl"
    sink = RotatingFileSink(path, JsonRenderer(), rotation="128 KiB", flush_interval=0.05)
    _log(sink, 0, 100)
    filler = _fill(tmpfs)
    _log(sink, 100, 300)
    lost = sink.dropped["write_error"]
    assert lost > 0, "the disk was full: some records must have failed"
    filler.unlink()
    sink.emit({"message": "probe", "p": 0, "t": 0, "j": 400}, 20)
    _wait_for_line(path, b'"j":400')  # writing resumes
    _log(sink, 401, 99)
    sink.close()
    verdict = verify(path, {(0, 0): 500})
    assert sink.counters()["written"] + sink.lost == 500
    assert verdict.lost == lost, verdict.summary()
    assert verdict.dropped == {"write_error": lost}, "the summary record counts the loss"
    assert verdict.duplicates == 0 and not verdict.out_of_order
    assert verdict.fragments == len(verdict.unparseable) <= 1, verdict.unparseable
    assert _reports(capfd.readouterr().err) == 1


def test_a_read_only_directory_is_counted_and_survived(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The log directory turns read-only mid-run (a read-only tmpfs mounted over it: EROFS for
    every create), then writable again: every record is written or counted lost, and writing
    resumes. (A plain remount is refused while files are open for writing, and
    chmod does not stop root, hence the mount on top.)"""
    path = tmp_path / "logs" / "app.jsonl"
    sink = RotatingFileSink(path, JsonRenderer(), rotation="1 MB", flush_interval=0.05)
    _log(sink, 0, 50)
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path.parent)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        sink.close()
        pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): {out.stderr.strip()}")
    try:
        _log(sink, 50, 50)
    finally:
        subprocess.run(["umount", str(path.parent)], check=True, capture_output=True)
    sink.emit({"message": "probe", "p": 0, "t": 0, "j": 100}, 20)
    _wait_for_line(path, b'"j":100')  # writing resumes
    _log(sink, 101, 49)
    sink.close()
    verdict = verify(path, {(0, 0): 150})
    assert sink.dropped == {"write_error": 50}
    assert verdict.lost == 50 and verdict.dropped == {"write_error": 50}
    assert not verdict.unparseable
    assert _reports(capfd.readouterr().err) == 1


def test_starting_on_a_read_only_directory_does_not_stop_the_app(tmpfs: Path) -> None:
    """A sink created where nothing can be written (read-only) does not raise; records are
    counted lost, and the directory and file are created once the filesystem is writable."""
    _remount(tmpfs, "ro")
    try:
        sink = RotatingFileSink(tmpfs / "logs" / "app.jsonl", JsonRenderer(), rotation="1 MB")
        _log(sink, 0, 20)
    finally:
        _remount(tmpfs, "rw")
    _log(sink, 20, 20)
    sink.close()
    verdict = verify(tmpfs / "logs" / "app.jsonl", {(0, 0): 40})
    assert sink.dropped == {"write_error": 20} and verdict.lost == 20


def test_a_deleted_directory_is_recreated_on_the_next_batch(tmp_path: Path) -> None:
    """rm -rf of the log directory while the sink runs: the next batch recreates the directory,
    the lock file and the active file; nothing is counted lost (what was written before went
    with the directory, by someone else's hand)."""
    path = tmp_path / "logs" / "app.jsonl"
    sink = RotatingFileSink(path, JsonRenderer(), rotation="1 MB", flush_interval=0.05)
    _log(sink, 0, 20)
    shutil.rmtree(path.parent)
    sink.emit({"message": "probe", "p": 0, "t": 0, "j": 20}, 20)
    _wait_for_line(path, b'"j":20')  # writing resumes
    _log(sink, 21, 19)
    sink.close()
    assert sink.counters()["written"] == 40 and sink.lost == 0
    verdict = verify(path)
    assert verdict.seen == {(0, 0): list(range(20, 40))}
    assert (path.parent / ".app.jsonl.lock").exists()


def test_a_deleted_active_file_is_recreated(tmp_path: Path) -> None:
    """rm of the active file: the next batch writes to a new file at the same path."""
    path = tmp_path / "app.jsonl"
    sink = RotatingFileSink(path, JsonRenderer(), rotation="1 MB")
    _log(sink, 0, 10)
    path.unlink()
    _log(sink, 10, 10)
    sink.close()
    assert verify(path).seen == {(0, 0): list(range(10, 20))}
    assert sink.lost == 0


def test_an_external_logrotate_rename_is_followed(tmp_path: Path) -> None:
    """logrotate (rename mode) moves app.jsonl to app.jsonl.1: the writer notices the new inode
    before its next batch and writes to a fresh app.jsonl; between the two files nothing is
    lost or duplicated. (copytruncate is not supported: see docs/files.md.)"""
    path = tmp_path / "app.jsonl"
    sink = RotatingFileSink(path, JsonRenderer())
    _log(sink, 0, 10)
    path.rename(tmp_path / "app.jsonl.1")
    _log(sink, 10, 10)
    sink.close()
    verdict = verify([tmp_path / "app.jsonl.1", path], {(0, 0): 20})
    assert (verdict.lost, verdict.duplicates) == (0, 0)
    assert verify(path).seen == {(0, 0): list(range(10, 20))}


def test_a_planted_symlink_at_the_active_path_is_refused_later_too(tmp_path: Path) -> None:
    """After start, someone replaces the active file by a symlink to a file of theirs: the
    writer never follows it (O_NOFOLLOW); the batch is counted lost, the target untouched."""
    path = tmp_path / "app.jsonl"
    target = tmp_path / "victim"
    target.write_bytes(b"")
    sink = RotatingFileSink(path, JsonRenderer())
    _log(sink, 0, 5)
    path.unlink()
    path.symlink_to(target)
    _log(sink, 5, 5)
    sink.close()
    assert target.read_bytes() == b""
    assert sink.dropped == {"write_error": 5}


@pytest.fixture
def few_inodes(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB ext4 image with 16 inodes, loop-mounted (needs root and mkfs.ext4; skipped
    otherwise). Unlike tmpfs, ext4 needs no inode for a hard link: a rotation's link()
    works there, and only the creation of the next file fails."""
    image, mnt = tmp_path / "ext4.img", tmp_path / "mnt"
    mnt.mkdir()
    with image.open("wb") as f:
        f.truncate(8 << 20)
    yield from _mounted(
        mnt,
        [
            ["mkfs.ext4", "-q", "-F", "-N", "16", str(image)],
            ["mount", "-o", "loop", str(image), str(mnt)],
        ],
        "cannot make an ext4 filesystem here",
    )


def _use_up_inodes(mnt: Path) -> list[Path]:
    fillers: list[Path] = []
    while True:
        filler = mnt / f"filler{len(fillers)}"
        try:
            filler.touch()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            return fillers
        fillers.append(filler)


def test_a_rotation_with_no_inode_left_writes_on_in_the_old_file(few_inodes: Path) -> None:
    """A filesystem out of inodes: the rotation renames the active file, the next one cannot
    be created (ENOSPC), the rotated file gets its name back and the batch is written to it
    (not to the closed descriptor: EBADF, the batch lost). Once inodes are free, the next
    batch rotates."""
    path = few_inodes / "logs" / "app.jsonl"
    sink = RotatingFileSink(path, JsonRenderer(), rotation="4 KiB", flush_interval=60)
    _log(sink, 0, 5)
    fillers = _use_up_inodes(few_inodes)
    _log(sink, 5, 60)
    assert sink.lost == 0 and sink.rotations == 0
    for filler in fillers:
        filler.unlink()
    _log(sink, 65, 35)
    sink.close()
    verdict = verify(path, {(0, 0): 100})
    assert sink.lost == 0 and sink.rotations >= 1
    assert (verdict.lost, verdict.duplicates) == (0, 0) and not verdict.out_of_order
