"""The rotating file sink in one process: names, size/time/custom rotation, compression,
retention, permissions, crash leftovers, and the guide's file set."""

from __future__ import annotations

import fcntl
import gzip
import io
import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import servicelog
from servicelog.reader import read_records
from servicelog.render.json import JsonRenderer
from servicelog.sinks import FileSink, FileSpec, RotatingFileSink, file_set, has_field
from servicelog.sinks.base import install_signal_handlers, uninstall_signal_handlers
from servicelog.sinks.rotating import compress_file, list_members, rotated_name
from servicelog.timing import log_execution_time

from .conftest import NO_CAPTURE


class Clock:
    def __init__(self, now: float = 1_764_374_400.0) -> None:  # 2025-11-29T00:00:00Z
        self.now = now

    def __call__(self) -> float:
        return self.now


def _write(sink: Any, count: int, start: int = 0, pad: int = 100) -> None:
    for j in range(start, start + count):
        sink.emit({"message": "r", "j": j, "pad": "x" * pad}, 20)
    sink.flush()


def _names(path: Path) -> list[str]:
    return [os.path.basename(m.path) for m in list_members(str(path))]


def test_names_carry_the_period_and_a_sequence_number() -> None:
    assert rotated_name("app.jsonl", "2026-11-29", 0) == "app_2026-11-29.jsonl"
    assert rotated_name("app.jsonl", "2026-11-29", 1) == "app_2026-11-29.1.jsonl"
    assert rotated_name("app", "2026-11-29T13-05Z", 2) == "app_2026-11-29T13-05Z.2"


def test_members_are_listed_oldest_first_once_each(tmp_path: Path) -> None:
    """Ordering is by period then sequence number (10 after 2), and a file present both plain
    and compressed (a compression interrupted before its unlink) is listed once, plain."""
    names = [
        "app_2026-11-29.10.jsonl.gz",
        "app_2026-11-29.2.jsonl",
        "app_2026-11-29.jsonl.gz",
        "app_2026-11-28.jsonl.zip",
        "app_2026-11-29.2.jsonl.gz",
        "app.jsonl",
        "application_2026-11-29.jsonl",
        "app_x.jsonl",
        ".app.jsonl.lock",
    ]
    members = list_members(str(tmp_path / "app.jsonl"), names)
    assert [os.path.basename(m.path) for m in members] == [
        "app_2026-11-28.jsonl.zip",
        "app_2026-11-29.jsonl.gz",
        "app_2026-11-29.2.jsonl",
        "app_2026-11-29.10.jsonl.gz",
    ]


def test_size_rotation_keeps_files_within_the_size(tmp_path: Path) -> None:
    """At "10 KB": every rotated file holds whole lines and at most 10,000 bytes; names are
    the day plus a sequence; nothing is lost across the files, in order."""
    path = tmp_path / "app.jsonl"
    sink = RotatingFileSink(path, JsonRenderer(), rotation="10 KB", clock=Clock())
    for start in range(0, 1000, 100):
        _write(sink, 100, start)
    sink.close()
    members = list_members(str(path))
    assert len(members) >= 10
    assert all(os.path.getsize(m.path) <= 10_000 for m in members)
    assert _names(path)[:2] == ["app_2025-11-29.jsonl", "app_2025-11-29.1.jsonl"]
    assert [r["j"] for r in read_records(path)] == list(range(1000))


def test_a_single_line_larger_than_the_size_gets_a_file_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    sink = RotatingFileSink(path, JsonRenderer(), rotation="1 KB")
    _write(sink, 1, pad=10)
    _write(sink, 1, 1, pad=3000)
    _write(sink, 1, 2, pad=10)
    sink.close()
    assert [r["j"] for r in read_records(path)] == [0, 1, 2]
    assert len(list_members(str(path))) == 2


def test_time_or_size_whichever_comes_first(tmp_path: Path) -> None:
    """ "1 hour" or "5 KB": size rotations within an hour get sequence numbers under that
    hour's label; the hour boundary closes the period's last file."""
    path = tmp_path / "app.jsonl"
    clock = Clock()
    sink = RotatingFileSink(path, JsonRenderer(), rotation=["1 hour", "5 KB"], clock=clock)
    _write(sink, 120)
    clock.now += 3600
    _write(sink, 1, 120)
    sink.close()
    names = _names(path)
    assert names[0] == "app_2025-11-29T00-00Z.jsonl"
    assert names[-1].startswith("app_2025-11-29T00-00Z.") and len(names) >= 3
    assert {n.split(".")[0] for n in names} == {"app_2025-11-29T00-00Z"}
    assert [r["j"] for r in read_records(path)] == list(range(121))


def test_a_custom_rotation_function(tmp_path: Path) -> None:
    """The guide's callable (path, stat) -> bool decides; it is asked once per batch."""
    asked: list[int] = []

    def rotate(path: str, st: os.stat_result) -> bool:
        asked.append(st.st_size)
        return st.st_size > 2000

    path = tmp_path / "custom.log"
    sink = RotatingFileSink(path, JsonRenderer(), rotation=rotate)
    for start in range(0, 100, 10):
        _write(sink, 10, start)
    sink.close()
    assert len(list_members(str(path))) >= 2
    assert asked
    assert [r["j"] for r in read_records(path)] == list(range(100))


@pytest.mark.parametrize("compression", ["gz", "zip", "bz2", "xz", "zstd"])
def test_rotated_files_are_compressed_and_read_back(tmp_path: Path, compression: str) -> None:
    """Every rotated file but the newest (compress_delay=1) is compressed off the caller,
    keeps mode 0600 and its modification time, and reads back whole."""
    path = tmp_path / "app.jsonl"
    sink = RotatingFileSink(path, JsonRenderer(), rotation="4 KB", compression=compression)
    for start in range(0, 300, 30):
        _write(sink, 30, start)
    sink.wait_maintenance()
    sink.close()
    members = list_members(str(path))
    assert members[-1].compression == ""
    suffix = {"gz": ".gz", "zip": ".zip", "bz2": ".bz2", "xz": ".xz", "zstd": ".zst"}[compression]
    assert all(m.compression == suffix for m in members[:-1]) and len(members) > 3
    magic = {"gz": b"\x1f\x8b", "zip": b"PK\x03\x04", "bz2": b"BZh", "xz": b"\xfd7zXZ\x00"}
    magic["zstd"] = b"\x28\xb5\x2f\xfd"  # each format's own header, not only our reader's word
    for m in members:
        assert stat.S_IMODE(os.stat(m.path).st_mode) == 0o600
        if m.compression:
            with open(m.path, "rb") as f:
                assert f.read(len(magic[compression])) == magic[compression]
    assert [r["j"] for r in read_records(path)] == list(range(300))
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".part")]


def test_compression_keeps_the_age_and_can_skip_the_delay(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    sink = RotatingFileSink(
        path, JsonRenderer(), rotation="2 KB", compression="gz", compress_delay=0
    )
    _write(sink, 30)
    sink.wait_maintenance()
    sink.close()
    members = list_members(str(path))
    assert all(m.compression == ".gz" for m in members)
    first = members[0].path
    with gzip.open(first) as f:
        assert orjson.loads(f.readline())["j"] == 0
    assert abs(os.stat(first).st_mtime - time.time()) < 60


def test_compress_file_skips_a_file_another_process_is_compressing(tmp_path: Path) -> None:
    """The claim is a flock on the source: a second compressor leaves it alone."""
    import fcntl

    src = tmp_path / "app_2026-11-29.jsonl"
    src.write_bytes(b'{"j":0}\n')
    fd = os.open(src, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert compress_file(str(src), "gz") is None
    finally:
        os.close(fd)
    assert compress_file(str(src), "gz") == str(src) + ".gz"
    assert not src.exists()


def test_retention_by_count_keeps_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    sink = RotatingFileSink(path, JsonRenderer(), rotation="2 KB", retention=3)
    for start in range(0, 200, 20):
        _write(sink, 20, start)
    sink.wait_maintenance()
    sink.close()
    members = list_members(str(path))
    assert len(members) == 3
    kept = [r["j"] for r in read_records(path)]
    assert kept == list(range(kept[0], 200)), "the oldest files went, the active file stays"


def test_retention_by_age_reads_modification_times(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    clock = Clock(time.time())
    sink = RotatingFileSink(path, JsonRenderer(), rotation="2 KB", retention="30 days", clock=clock)
    _write(sink, 60)
    members = list_members(str(path))
    old = members[0].path
    os.utime(old, (time.time() - 31 * 86400,) * 2)
    clock.now = time.time()
    sink.wait_maintenance()
    assert not os.path.exists(old), "older than 30 days"
    assert [m.path for m in list_members(str(path))] == [m.path for m in members[1:]]
    assert path.exists()
    sink.close()


@pytest.fixture(params=[0o000, 0o022, 0o077])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_every_file_of_the_set_has_the_mode_whatever_the_umask(
    tmp_path: Path, umask: int, mode: int
) -> None:
    """Active, rotated, compressed and lock files: exactly *mode*, under umask 000, 022 and
    077; new directories 0700 (0750 for 0640 files: under umask 077 they were 0700, and the
    group could not reach its files)."""
    path = tmp_path / "new" / "app.jsonl"
    sink = RotatingFileSink(
        path, JsonRenderer(), rotation="2 KB", compression="gz", compress_delay=0, mode=mode
    )
    _write(sink, 50)
    sink.wait_maintenance()
    sink.close()
    files = sorted(path.parent.iterdir())
    assert any(f.name.endswith(".gz") for f in files) and any(
        f.name.endswith(".lock") for f in files
    )
    assert {oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {oct(mode)}
    expected_dir = 0o700 if mode == 0o600 else 0o750
    assert stat.S_IMODE(path.parent.stat().st_mode) == expected_dir


@pytest.mark.parametrize("which", ["app.jsonl", ".app.jsonl.lock"])
def test_a_planted_symlink_is_refused(tmp_path: Path, which: str) -> None:
    target = tmp_path / "target"
    target.write_text("")
    (tmp_path / which).symlink_to(target)
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        RotatingFileSink(tmp_path / "app.jsonl", JsonRenderer(), rotation="1 MB")
    assert target.read_text() == ""


def test_a_rotation_interrupted_between_link_and_unlink_is_finished(tmp_path: Path) -> None:
    """A crash after link() left the active file also named as a rotated file: the next writer
    drops the active name (the data is safe under the rotated one) and starts a new file."""
    path = tmp_path / "app.jsonl"
    path.write_bytes(b'{"j":0}\n')
    os.link(path, tmp_path / "app_2026-11-29.jsonl")
    sink = RotatingFileSink(path, JsonRenderer(), rotation="1 MB")
    _write(sink, 1, 1)
    sink.close()
    assert [r["j"] for r in read_records(path)] == [0, 1]
    assert os.stat(path).st_nlink == 1


def test_an_interrupted_rotation_is_finished_by_a_writer_that_has_the_file_open(
    tmp_path: Path,
) -> None:
    """The same crash in another process, while this one has the active file open: its next
    batch finishes the rotation (only a writer that opened the file did, and this one wrote on
    into a file with two names, then rotated it under a third: its records were read twice)."""
    path = tmp_path / "app.jsonl"
    sink = RotatingFileSink(path, JsonRenderer(), rotation="1 MB")
    _write(sink, 10)
    lock = os.open(tmp_path / ".app.jsonl.lock", os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)  # the crashed writer, as another process would hold it
    os.link(path, tmp_path / rotated_name("app.jsonl", time.strftime("%Y-%m-%d"), 0))
    os.close(lock)  # it died: its lock went with it
    _write(sink, 10, 10)
    sink.close()
    js = [r["j"] for r in read_records(path)]
    assert js == list(range(20))
    assert os.stat(path).st_nlink == 1


def test_a_stale_partial_compression_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    (tmp_path / ".app_2026-11-28.jsonl.gz.part").write_bytes(b"junk")
    sink = RotatingFileSink(path, JsonRenderer(), rotation="1 MB", compression="gz")
    sink.wait_maintenance()
    sink.close()
    assert not (tmp_path / ".app_2026-11-28.jsonl.gz.part").exists()


def test_a_flush_is_not_starved_by_a_thread_that_keeps_logging(tmp_path: Path) -> None:
    """Another thread logs without pause through a rotating sink: a drain waits for the batch
    holding its records to be written, not for the writer's lock, which a writer kept busy
    takes back at once every time (a flush then waited out its whole timeout and reported a
    false "drain timed out")."""
    import threading

    sink = RotatingFileSink(
        tmp_path / "app.jsonl", JsonRenderer(), rotation="64 KiB", flush_interval=0.05
    )
    written: list[bytes] = []  # the batches whose write returned (read back, the files
    real = sink.write_batch  # would race with the rotations of the other thread's records)

    def write_batch(data: bytes) -> None:
        real(data)
        written.append(data)

    sink.write_batch = write_batch  # type: ignore[method-assign]
    stop = threading.Event()

    def keep_logging() -> None:
        j = 0
        while not stop.is_set():
            sink.emit({"message": "bg", "j": j, "pad": "x" * 100}, 20)
            j += 1

    thread = threading.Thread(target=keep_logging)
    thread.start()
    try:
        drained = []
        for i in range(5):
            sink.emit({"message": "mine", "i": i}, 20)
            drained.append(sink.drain(3.0))
            # (What the drain promises: the record logged before it has been written.)
            assert any(b'"i":%d' % i in data for data in written), i
    finally:
        stop.set()
        thread.join()
        sink.close()
    assert drained == [True] * 5


def test_a_summary_cut_off_by_a_full_disk_reports_each_drop_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two reasons pending, and the disk fills up after the first summary line reached the
    file: only the second is put back (both were, and the first was written again later), and
    drops counted meanwhile are added to it, not overwritten."""
    import errno

    path = tmp_path / "app.jsonl"
    sink = FileSink(path, JsonRenderer(), flush_interval=60)
    sink._pending.update({"write_error": 45, "queue_full": 9})
    real = sink.write_batch
    calls: list[bytes] = []

    def fills_up(data: bytes) -> None:
        calls.append(data)
        if len(calls) == 2:
            sink._pending["queue_full"] += 2  # counted while the summaries were written
            raise OSError(errno.ENOSPC, "No space left on device")
        real(data)

    monkeypatch.setattr(sink, "write_batch", fills_up)
    sink._write_summary()
    assert dict(sink._pending) == {"queue_full": 11}
    monkeypatch.undo()
    sink._write_summary()
    sink.close()
    summaries = [
        (r["servicelog.dropped.reason"], r["servicelog.dropped.count"])
        for r in read_records(path)
        if r.get("event.action") == "log.dropped"
    ]
    assert summaries == [("write_error", 45), ("queue_full", 11)]


def test_a_full_buffer_in_drop_mode_is_summarised_in_the_file(tmp_path: Path) -> None:
    """Records dropped on overflow are counted and reported in the file itself by one
    log.dropped record per reason, once writing goes on."""
    path = tmp_path / "app.jsonl"
    sink = FileSink(path, JsonRenderer(), max_records=10, overflow="drop", flush_interval=60)
    for j in range(25):
        sink.emit({"message": "r", "j": j}, 20)
    sink.close()
    records = list(read_records(path))
    summary = [r for r in records if r.get("event.action") == "log.dropped"]
    assert [r["j"] for r in records if "j" in r] == list(range(10))
    assert [(s["servicelog.dropped.reason"], s["servicelog.dropped.count"]) for s in summary] == [
        ("queue_full", 15)
    ]
    assert sink.counters() == {
        "produced": 25,
        "written": 10,
        "dropped": {"queue_full": 15},
        "queued": 0,
    }


def test_signal_handlers_chain_and_do_not_stack() -> None:
    """install_signal_handlers() drains, then calls the handler that was there before; calling
    it twice installs it once; uninstall puts the original back."""
    calls: list[int] = []

    def app_handler(signum: int, frame: object) -> None:
        calls.append(signum)

    previous = signal.signal(signal.SIGUSR1, app_handler)
    try:
        install_signal_handlers([signal.SIGUSR1])
        install_signal_handlers([signal.SIGUSR1])
        os.kill(os.getpid(), signal.SIGUSR1)
        assert calls == [signal.SIGUSR1]
        uninstall_signal_handlers()
        assert signal.getsignal(signal.SIGUSR1) is app_handler
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_the_guides_file_set(tmp_path: Path) -> None:
    """file_set(): app (INFO+), error (ERROR+), performance (the channel only) and a custom
    file selected by a field, each its own rotating sink with the guide's policies."""
    routes = file_set(
        tmp_path / "logs",
        custom=[
            FileSpec(
                "large_operations",
                rotation="100 MB",
                retention=10,
                filter=has_field("large_operation"),
            )
        ],
    )
    sinks = {os.path.basename(r.sink.path): r.sink for r in routes}  # type: ignore[attr-defined]
    assert sorted(sinks) == [
        "app.jsonl",
        "error.jsonl",
        "large_operations.jsonl",
        "performance.jsonl",
    ]
    assert sinks["app.jsonl"].max_age == 30 * 86400
    assert sinks["error.jsonl"].max_age == 90 * 86400
    assert sinks["performance.jsonl"].rotation.size == 100_000_000
    assert sinks["large_operations.jsonl"].keep == 10
    servicelog.configure(stream="none", sinks=routes, capture=NO_CAPTURE, profile="production")
    log = servicelog.get_logger("shop")
    log.debug("not kept")
    log.info("order placed")
    log.error("payment failed")
    log.info("import done", large_operation="catalogue")
    with log_execution_time("load"):
        pass
    servicelog.reset()
    messages = {
        name: [r["message"] for r in read_records(tmp_path / "logs" / name)] for name in sinks
    }
    assert messages["error.jsonl"] == ["payment failed"]
    assert messages["large_operations.jsonl"] == ["import done"]
    assert len(messages["performance.jsonl"]) == 1
    assert messages["app.jsonl"][:3] == ["order placed", "payment failed", "import done"]
    assert len(messages["app.jsonl"]) == 4


def test_file_set_refuses_two_files_with_one_name(tmp_path: Path) -> None:
    with pytest.raises(servicelog.ConfigError, match="distinct file names"):
        file_set(tmp_path, custom=[FileSpec("app")])
    with pytest.raises(servicelog.ConfigError, match="option 'app'"):
        file_set(tmp_path, app=3)  # type: ignore[arg-type]


def test_without_a_lock_file_one_process_still_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A directory where the lock file cannot be created (EACCES) around a writable log file:
    the records are written (without the cross-process lock), and that is reported once."""
    import servicelog.sinks.file as file_module

    real = file_module.open_log_file

    def no_lock_files(path: str, mode: int, *args: Any) -> tuple[int, bool]:
        if path.endswith(".lock"):
            raise PermissionError(13, "Permission denied", path)
        return real(path, mode, *args)

    monkeypatch.setattr(file_module, "open_log_file", no_lock_files)
    path = tmp_path / "app.jsonl"
    sink = RotatingFileSink(path, JsonRenderer(), rotation="2 KB")
    _write(sink, 40)
    sink.close()
    assert [r["j"] for r in read_records(path)] == list(range(40))
    assert sink.lost == 0 and len(list_members(str(path))) >= 2
    assert capfd.readouterr().err.count("lock file failed (PermissionError") == 1


def _rotated(directory: Path, count: int, size: int = 2000) -> list[Path]:
    """*count* rotated files of app.jsonl, oldest first, as an earlier run left them."""
    paths = []
    for seq in range(count):
        path = directory / rotated_name("app.jsonl", "2026-01-01", seq)
        path.write_bytes(b'{"j":%d,"pad":"%s"}\n' % (seq, b"x" * size))
        paths.append(path)
    return paths


def test_retention_comes_before_compression(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog of 10 rotated files with ``retention=2``: the 8 oldest are deleted without
    being compressed first (when files rotate faster than they compress, the set stays within
    retention), the newest stays plain and the other kept one is compressed once."""
    from servicelog.sinks import rotating

    _rotated(tmp_path, 10)
    compressed: list[str] = []
    real = rotating._COMPRESSORS["gz"]

    def counting(src: Any, out: Any, name: str, mtime: float, stop: Any) -> None:
        compressed.append(name)
        real(src, out, name, mtime, stop)

    monkeypatch.setitem(rotating._COMPRESSORS, "gz", counting)
    sink = RotatingFileSink(
        tmp_path / "app.jsonl", JsonRenderer(), retention=2, compression="gz", flush_interval=60
    )
    sink.wait_maintenance()
    sink.close()
    members = list_members(str(tmp_path / "app.jsonl"))
    assert [(m.seq, m.compression) for m in members] == [(8, ".gz"), (9, "")]
    assert compressed == [rotated_name("app.jsonl", "2026-01-01", 8)]


def test_a_stopped_compression_leaves_the_original_and_no_part(tmp_path: Path) -> None:
    """``compress_file(stop=...)`` asks between chunks of 1 MiB; once told to stop it removes
    its ``.part`` and keeps the original, byte for byte."""
    (path,) = _rotated(tmp_path, 1, size=3 << 20)
    before = path.read_bytes()
    asked = []

    def stop() -> bool:
        asked.append(True)
        return len(asked) > 1  # after the first chunk

    assert compress_file(str(path), "gz", stop=stop) is None
    assert len(asked) == 2
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [path.name]


def test_closing_applies_retention_even_with_no_time_left(tmp_path: Path) -> None:
    """``stop_maintenance(0)``: no time to compress, but retention is applied (deleting is
    cheap), and the helper thread ends."""
    sink = RotatingFileSink(
        tmp_path / "app.jsonl", JsonRenderer(), retention=3, compression="gz", flush_interval=60
    )
    sink.wait_maintenance()
    with sink._maint_running:  # a pass of the helper thread waits here...
        _rotated(tmp_path, 6)
        sink._stop_at = 0.0  # ...and then finds no time left, like the pass below
    sink.stop_maintenance(0)
    members = list_members(str(tmp_path / "app.jsonl"))
    assert [(m.seq, m.compression) for m in members] == [(3, ""), (4, ""), (5, "")]
    assert sink._maint_thread is not None
    sink._maint_thread.join(5)
    assert not sink._maint_thread.is_alive()
    sink.close()


def test_after_the_exit_pass_rotations_start_no_helper_thread(tmp_path: Path) -> None:
    """After the exit pass (``_at_exit``) records still logged by later exit handlers are
    written and may rotate the file, but no helper thread starts (none can at interpreter
    shutdown, and its failure must not cost the batch)."""
    sink = RotatingFileSink(
        tmp_path / "app.jsonl", JsonRenderer(), rotation="1 KB", retention=2, flush_interval=60
    )
    sink._at_exit(0)
    helper = sink._maint_thread
    assert helper is not None
    helper.join(5)
    assert not helper.is_alive()
    for start in range(0, 40, 10):
        _write(sink, 10, start)
    assert sink.rotations >= 3 and sink.written == 40
    assert sink._maint_thread is helper
    sink.close()


def test_a_rotation_that_cannot_create_the_next_file_writes_on_in_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rotation renames the active file, then creating the next one fails (ENOSPC: no inode
    left; injected, as only a full filesystem produces it). The rotated file gets its active
    name back and the batch goes on in it: nothing is lost, and nothing is written to the
    descriptor the rotation closed, even when the application reopened that number meanwhile
    (here: the app's own file, opened at the moment of the failure)."""
    import errno

    import servicelog.sinks.file as file_module

    real = file_module.open_log_file
    app_fds: list[int] = []
    full = [False]

    def no_inode_left(path: str, mode: int, *args: Any) -> tuple[int, bool]:
        if full[0] and path.endswith("app.jsonl") and not os.path.exists(path):
            # Another thread of the app opens its file now: it gets the lowest free number,
            # the one the rotation has just closed.
            app_fds.append(os.open(tmp_path / "victim.db", os.O_RDWR | os.O_CREAT, 0o600))
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return real(path, mode, *args)

    monkeypatch.setattr(file_module, "open_log_file", no_inode_left)
    monkeypatch.setattr("sys.__stderr__", io.StringIO())
    path = tmp_path / "app.jsonl"
    sink = RotatingFileSink(path, JsonRenderer(), rotation="2 KB", flush_interval=60)
    _write(sink, 10)
    full[0] = True
    _write(sink, 30, 10)
    try:
        assert (tmp_path / "victim.db").read_bytes() == b""
    finally:
        for fd in app_fds:
            os.close(fd)
    assert app_fds, "the rotation was tried"
    assert sink.lost == 0 and sink.rotations == 0
    assert [r["j"] for r in read_records(path)] == list(range(40))
    assert list_members(str(path)) == [], "the rotated file is the active one again"
    full[0] = False  # space again: the next batch rotates
    _write(sink, 10, 40)
    sink.close()
    assert sink.rotations >= 1 and sink.lost == 0
    assert [r["j"] for r in read_records(path)] == list(range(50))


def test_a_custom_rotation_function_that_logs_does_not_block_close(tmp_path: Path) -> None:
    """The application's rotation function logs, as any of its code may, into the sink that
    asks it. It runs on the thread writing the batch, under the sink's locks: its records wait
    for the next batch instead of flushing on the spot (which deadlocked). Closing takes no
    time, every record is written or counted, and the file's lock is free afterwards."""
    import fcntl

    log = servicelog.get_logger("app")

    def rotate_when(path: str, st: os.stat_result) -> bool:
        log.info("checking rotation", size=st.st_size)
        return st.st_size > 5_000

    path = tmp_path / "app.jsonl"
    sink = RotatingFileSink(path, JsonRenderer(), rotation=rotate_when)
    servicelog.configure(stream="none", sinks=[sink], capture=NO_CAPTURE)
    for i in range(100):
        log.info("hello", i=i)
    servicelog.flush()
    for i in range(10):
        log.info("more", i=i)
    servicelog.flush()
    sink.close()  # it hung 5 s (the drain's timeout) and lost the batch in hand, uncounted
    counters = sink.counters()
    assert counters["written"] > 110 and counters["queued"] == 0
    assert counters["produced"] == counters["written"] + sum(counters["dropped"].values())
    messages = [r["message"] for r in read_records(path)]
    assert messages.count("hello") == 100 and messages.count("more") == 10
    assert messages.count("checking rotation") == counters["written"] - 110
    fd = os.open(tmp_path / ".app.jsonl.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if the lock were still held
    finally:
        os.close(fd)


@pytest.mark.parametrize("tz", ["Mars/Base", "../../etc/passwd", "", 5])
def test_a_bad_time_zone_is_a_config_error(tmp_path: Path, tz: Any) -> None:
    """An unknown zone name raised zoneinfo's own ``ZoneInfoNotFoundError``, naming no option."""
    with pytest.raises(servicelog.ConfigError, match="option 'tz'"):
        RotatingFileSink(tmp_path / "app.jsonl", JsonRenderer(), tz=tz)
