from __future__ import annotations

import fcntl
import io
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

import servicelog
from servicelog.render.json import JsonRenderer
from servicelog.sinks import ConsoleSink, FileSink, StreamSink
from servicelog.sinks.base import BufferedSink

from .conftest import NO_CAPTURE

RECORD = {"@timestamp": "2026-11-29T00:00:00.000000Z", "log.level": "info", "message": "m"}


def test_file_is_created_0600_in_new_directories(tmp_path: Path) -> None:
    """The file is 0600 and every directory the sink creates is 0700, the intermediate ones
    too (``os.makedirs`` gives those 0777 minus the umask)."""
    path = tmp_path / "a" / "b" / "app.jsonl"
    umask = os.umask(0o022)
    try:
        sink = FileSink(path, JsonRenderer())
    finally:
        os.umask(umask)
    sink.emit(RECORD, 20)
    sink.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().count(b"\n") == 1
    assert [oct(stat.S_IMODE(d.stat().st_mode)) for d in (path.parent.parent, path.parent)] == [
        "0o700",
        "0o700",
    ]


def test_file_mode_0640_allowed_others_refused(tmp_path: Path) -> None:
    FileSink(tmp_path / "g.jsonl", JsonRenderer(), mode=0o640).close()
    assert stat.S_IMODE((tmp_path / "g.jsonl").stat().st_mode) == 0o640
    with pytest.raises(servicelog.ConfigError, match="0o644"):
        FileSink(tmp_path / "w.jsonl", JsonRenderer(), mode=0o644)


def test_a_planted_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    (tmp_path / "app.jsonl").symlink_to(target)
    with pytest.raises(OSError):
        FileSink(tmp_path / "app.jsonl", JsonRenderer())
    assert target.read_text() == ""


def test_reopening_a_torn_file_starts_a_fresh_line(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    path.write_bytes(b'{"complete":1}\n{"torn":')
    sink = FileSink(path, JsonRenderer())
    sink.emit(RECORD, 20)
    sink.close()
    lines = path.read_bytes().split(b"\n")
    assert lines[1] == b'{"torn":'
    assert orjson.loads(lines[2])["message"] == "m"


def _lines_within(path: Path, count: int, seconds: float = 5.0) -> int:
    deadline = time.monotonic() + seconds
    while path.read_bytes().count(b"\n") < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return path.read_bytes().count(b"\n")


def test_lines_are_batched_and_errors_flush_at_once(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    sink = FileSink(path, JsonRenderer(), flush_interval=60)
    sink.emit(RECORD, 20)
    time.sleep(0.05)
    assert path.read_bytes() == b"", "an INFO line waits for its batch"
    sink.emit(dict(RECORD, message="err"), 40)
    assert _lines_within(path, 2) == 2, "an ERROR line wakes the writer at once"
    sink.close()
    sink.close()  # twice is safe


def test_the_writer_flushes_on_its_timer(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    sink = FileSink(path, JsonRenderer(), flush_interval=0.05)
    sink.emit(RECORD, 20)
    assert _lines_within(path, 1) == 1
    sink.close()


def test_an_exception_in_the_writer_is_reported_and_it_keeps_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catalog F12: a bug of ours in the writer thread (here: the batch step raises once) is
    counted and reported, and the same writer thread writes the records (nothing waits for
    the buffer to fill)."""
    from servicelog import _errors

    monkeypatch.setattr(_errors, "_strict", False)  # outside tests, reports never raise
    path = tmp_path / "app.jsonl"
    sink = FileSink(path, JsonRenderer(), flush_interval=0.02)
    writer = sink._thread
    real = sink._flush_locked
    calls = []

    def broken_once() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in the writer")
        real()

    monkeypatch.setattr(sink, "_flush_locked", broken_once)
    before = _errors.snapshot()["errors"].get(f"sink {sink.name} writer", 0)
    for i in range(3):
        sink.emit(dict(RECORD, i=i), 20)
    assert _lines_within(path, 3) == 3
    assert _errors.snapshot()["errors"][f"sink {sink.name} writer"] == before + 1
    assert sink._thread is writer and writer is not None and writer.is_alive()
    sink.close()


def test_a_dead_writer_thread_is_restarted_by_the_next_wake_up(tmp_path: Path) -> None:
    """Catalog F12: if the writer thread is gone, the next record that wakes it (an ERROR, or a
    full batch) starts a new one, and the records waiting in the buffer are written."""

    class DiesOnce(FileSink):
        died = False

        def _run(self) -> None:
            if not DiesOnce.died:
                DiesOnce.died = True
                return  # the first writer thread ends at once
            super()._run()

    path = tmp_path / "app.jsonl"
    sink = DiesOnce(path, JsonRenderer(), flush_interval=60)
    first = sink._thread
    assert first is not None
    first.join(5)
    sink.emit(RECORD, 20)  # waits in the buffer: no writer
    sink.emit(dict(RECORD, message="err"), 40)  # wakes the writer: a new one
    assert _lines_within(path, 2) == 2
    assert sink._thread is not first and sink._thread is not None and sink._thread.is_alive()
    sink.close()


def test_threads_never_lose_or_mix_records(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    servicelog.configure(stream="none", file=path, capture=NO_CAPTURE, profile="production")
    log = servicelog.get_logger("t")
    per_thread = 5000

    def work(n: int) -> None:
        with servicelog.bound_context(request_id=f"t{n}"):
            for i in range(per_thread):
                log.info("x", i=i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    servicelog.reset()
    seen: dict[str, list[int]] = {}
    for line in path.read_bytes().splitlines():
        record = orjson.loads(line)
        seen.setdefault(record["request_id"], []).append(record["i"])
    assert {k: v == list(range(per_thread)) for k, v in seen.items()} == {
        f"t{n}": True for n in range(4)
    }


def test_stream_sink_writes_to_text_only_streams() -> None:
    out = io.StringIO()
    sink = StreamSink(JsonRenderer(), out)
    sink.emit(RECORD, 20)
    sink.close()
    assert orjson.loads(out.getvalue())["message"] == "m"


FORK_WARNING = "ignore:This process .* is multi-threaded:DeprecationWarning"


@pytest.mark.filterwarnings(FORK_WARNING)
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_does_not_write_the_parents_records(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    sink = FileSink(path, JsonRenderer(), flush_interval=60)
    sink.emit(dict(RECORD, message="parent-before-fork"), 20)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        sink.emit(dict(RECORD, message="child"), 20)
        sink.close()
        os._exit(0)
    os.waitpid(pid, 0)
    sink.emit(dict(RECORD, message="parent-after-fork"), 20)
    sink.close()
    messages = [orjson.loads(line)["message"] for line in path.read_bytes().splitlines()]
    assert sorted(messages) == ["child", "parent-after-fork", "parent-before-fork"]


def test_buffered_sink_counts_what_it_wrote(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "x.jsonl", JsonRenderer())
    for _ in range(10):
        sink.emit(RECORD, 20)
    sink.close()
    assert (sink.written, sink.lost) == (10, 0)
    assert isinstance(sink, BufferedSink)


@pytest.mark.filterwarnings(FORK_WARNING)
def test_process_pid_is_refreshed_in_a_forked_child(tmp_path: Path, memory: Any) -> None:
    servicelog.configure(stream="none", sinks=[memory], capture=NO_CAPTURE)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        servicelog.get_logger("c").info("child")
        record = memory.records[-1]
        os.write(write, str(record["process.pid"] == os.getpid()).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 10) == b"True"


@pytest.mark.filterwarnings(FORK_WARNING)
def test_fork_does_not_wait_for_a_thread_that_keeps_logging(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Before fork() the sinks write what is buffered at that moment, not until the buffer is
    empty: another thread logging without pause no longer stalls the fork for the whole drain
    timeout (5 s) with a false "records not written" on stderr."""
    sink = FileSink(tmp_path / "app.jsonl", JsonRenderer())
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            sink.emit(RECORD, 20)

    thread = threading.Thread(target=busy)
    thread.start()
    try:
        time.sleep(0.1)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os._exit(0)
        os.waitpid(pid, 0)
    finally:
        stop.set()
        thread.join()
    sink.close()
    # A drain that waited for the buffer to empty ran into its timeout and said so.
    assert "drain timed out" not in capfd.readouterr().err
    assert sink.counters()["produced"] == sink.written > 0


def test_a_record_logged_by_an_atexit_handler_that_runs_last_is_written(tmp_path: Path) -> None:
    """atexit runs handlers last-registered first: one registered before servicelog was
    imported runs after servicelog's exit drain. Its records are written at once, on the
    caller (they used to wait for a writer that never ran again)."""
    path = tmp_path / "app.jsonl"
    script = f"""
import atexit

def on_exit():
    import servicelog
    servicelog.get_logger("app").warning("shutting down")

atexit.register(on_exit)
import servicelog
servicelog.configure(stream="none", file={str(path)!r}, strict=False)
servicelog.get_logger("app").info("started")
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    messages = [orjson.loads(line)["message"] for line in path.read_bytes().splitlines()]
    assert messages == ["started", "shutting down"]


def test_a_lock_held_by_another_process_does_not_stall_the_start(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Another process holds the file's lock (stopped mid-batch, or on a hung disk): creating
    the sink (``configure(file=...)``) waits about a second, not forever, and says so once;
    the records wait in the buffer and are written once the lock is released."""
    path = tmp_path / "app.jsonl"
    lock = os.open(tmp_path / ".app.jsonl.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # another open file description: as another process
    made: list[FileSink] = []
    try:
        thread = threading.Thread(
            target=lambda: made.append(FileSink(path, JsonRenderer())), daemon=True
        )
        thread.start()
        thread.join(5)
        assert made, "FileSink() is still waiting for the lock"
        made[0].emit(RECORD, 20)
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
        thread.join(5)
    made[0].close()
    assert path.read_bytes().count(b"\n") == 1
    assert capfd.readouterr().err.count("lock failed (TimeoutError") == 1


def test_a_lock_kept_busy_by_writers_at_start_is_no_error(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Other processes writing flat out take the lock back between their batches faster than
    a new sink's poll wins it: the start gives up as for a stuck holder, but the file moved
    meanwhile, so nothing is reported or counted as an error (it was, as "lock failed")."""
    path = tmp_path / "app.jsonl"
    lock = os.open(tmp_path / ".app.jsonl.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # held, as busy writers hold it almost all the time
    stop = threading.Event()

    def busy_writer() -> None:
        with open(path, "ab") as f:
            while not stop.wait(0.05):
                f.write(b'{"message":"other process"}\n')
                f.flush()

    writer = threading.Thread(target=busy_writer, daemon=True)
    writer.start()
    try:
        sink = FileSink(path, JsonRenderer())
        sink.emit(RECORD, 20)
    finally:
        stop.set()
        writer.join(5)
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
    sink.close()
    assert path.read_bytes().count(b'"message":"m"') == 1
    assert "lock failed" not in capfd.readouterr().err
    assert servicelog.stats()["errors"] == {}


def test_a_planted_symlink_is_refused_while_the_lock_is_held(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    (tmp_path / "app.jsonl").symlink_to(target)
    lock = os.open(tmp_path / ".app.jsonl.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        with pytest.raises(OSError, match="symbolic links"):
            FileSink(tmp_path / "app.jsonl", JsonRenderer())
    finally:
        os.close(lock)
    assert target.read_text() == ""


def test_drops_are_counted_as_lost_and_reported_once_per_reason(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Records dropped by a full buffer (``queue_full``) or after close (``closed``) are in
    ``stats()["lost"]``, as the docs promise, and each reason is reported once on stderr."""
    sink = FileSink(
        tmp_path / "app.jsonl", JsonRenderer(), overflow="drop", max_records=10, flush_interval=60
    )
    servicelog.configure(stream="none", sinks=[sink], capture=NO_CAPTURE)
    log = servicelog.get_logger("app")
    for i in range(100):
        log.info("x", i=i)
    assert servicelog.stats()["lost"] == sink.dropped["queue_full"] == 90
    sink.close()
    log.info("after close")
    stats = servicelog.stats()
    assert stats["lost"] == 91 and stats["errors"] == {}
    assert stats["sinks"][sink.name]["dropped"] == {"queue_full": 90, "closed": 1}
    err = capfd.readouterr().err
    assert err.count("dropped 1 record(s) so far (queue_full)") == 1
    assert err.count("(closed)") == 1


class _AsciiOnly(io.StringIO):
    """A text stream that, like a terminal with PYTHONIOENCODING=ascii, refuses non-ASCII."""

    encoding = "ascii"

    def write(self, text: str) -> int:
        text.encode("ascii")  # raises UnicodeEncodeError, as TextIOWrapper does
        return super().write(text)


def test_console_sink_escapes_what_the_stream_cannot_encode() -> None:
    """A character the stream's encoding lacks is written escaped: the record is not lost
    (UnicodeEncodeError is a ValueError; it used to be taken for a closed stream)."""
    from servicelog import _errors
    from servicelog.render.console import ConsoleRenderer

    out = _AsciiOnly()
    before = _errors.snapshot()
    sink = ConsoleSink(ConsoleRenderer(color=False), out)
    sink.emit(dict(RECORD, message="price in \u20ac", city="Z\u00fcrich"), 20)
    sink.emit(dict(RECORD, message="plain ascii"), 20)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "price in \\u20ac" in lines[0] and "city=Z\\xfcrich" in lines[0]
    assert "plain ascii" in lines[1]
    assert _errors.snapshot() == before


def test_console_sink_counts_a_record_whose_escaped_write_fails_too() -> None:
    from servicelog import _errors
    from servicelog.render.console import ConsoleRenderer

    class Broken(_AsciiOnly):
        def write(self, text: str) -> int:
            if text.isascii():
                raise OSError(5, "Input/output error")
            return super().write(text)

    sink = ConsoleSink(ConsoleRenderer(color=False), Broken())
    sink.emit(dict(RECORD, message="\u20ac"), 20)  # must not raise
    snapshot = _errors.snapshot()
    assert snapshot["lost"] == 1 and snapshot["errors"] == {f"sink {sink.name}": 1}


def test_a_stream_sink_on_a_closed_stdout_drops_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """With file descriptor 1 closed, ``sys.stdout`` is None: the records are counted as
    dropped ("no stream"), stderr says so once, nothing raises, and there is no
    AttributeError report, at exit neither."""
    from servicelog.sinks.base import _drain_at_exit

    monkeypatch.setattr(sys, "stdout", None)
    servicelog.configure(profile="production", capture=NO_CAPTURE)
    log = servicelog.get_logger("app")
    for i in range(5):
        log.error("x", i=i)
    servicelog.flush()
    _drain_at_exit(1.0)
    stats = servicelog.stats()
    assert stats["errors"] == {} and stats["lost"] == 5
    (counters,) = stats["sinks"].values()
    assert counters["dropped"] == {"no stream": 5} and counters["produced"] == 5
    err = capfd.readouterr().err
    assert err.count("(no stream)") == 1 and "AttributeError" not in err


def test_a_console_sink_without_any_stream_is_silent(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """stdout and stderr both None (a daemon started with every descriptor closed): the
    console sink drops its records quietly and counts them."""
    monkeypatch.setattr(sys, "stderr", None)
    monkeypatch.setattr(sys, "__stderr__", None)
    servicelog.configure(profile="development", capture=NO_CAPTURE)
    servicelog.get_logger("app").info("x")
    servicelog.get_logger("app").info("y")
    servicelog.flush()
    stats = servicelog.stats()
    assert stats["errors"] == {} and stats["lost"] == 2
    assert capfd.readouterr().err == ""


def test_stream_sink_on_a_normal_stream_is_unchanged() -> None:
    out = io.StringIO()
    sink = StreamSink(JsonRenderer(), out)
    sink.emit(RECORD, 40)
    sink.close()
    assert sink.counters()["written"] == 1 and sink.counters()["dropped"] == {}
    assert orjson.loads(out.getvalue())["message"] == "m"


def test_flush_gives_up_on_a_writer_stuck_in_a_pipe_nobody_reads(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """``flush()`` waits for the writer thread a bounded time: one stuck in write(2) (a full
    pipe, a hung disk) held the lock flush() waited for, forever (an application's
    ``servicelog.flush()``, a server's shutdown)."""
    from servicelog.sinks import base

    monkeypatch.setattr(base, "DRAIN_TIMEOUT", 0.5)
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w")
    sink = StreamSink(JsonRenderer(), stream, flush_interval=0.01)
    try:
        record = {**RECORD, "message": "x" * 1000}
        for _ in range(200):  # 200 KB: more than the pipe holds (64 KiB)
            sink.emit(record, 20)
        time.sleep(0.2)  # the writer takes the batch and blocks in write(2)
        started = time.monotonic()
        sink.flush()
        assert time.monotonic() - started < 3
        assert "drain timed out" in capfd.readouterr().err
    finally:
        reader = threading.Thread(target=_read_all, args=(read_end,), daemon=True)
        reader.start()
        sink.close(5)
        stream.close()
        reader.join(5)
    assert sink.counters()["written"] == 200


def _read_all(fd: int) -> None:
    while os.read(fd, 1 << 16):
        pass
    os.close(fd)


def test_a_report_on_a_full_stderr_pipe_does_not_hang_the_caller() -> None:
    """stderr may be the very pipe nobody reads that a sink is stuck on (``2>&1``): the
    report that a drain timed out blocked the caller there forever. It is given up after a
    moment instead."""
    code = (
        "import fcntl, os, sys\n"
        "flags = fcntl.fcntl(2, fcntl.F_GETFL)\n"
        "fcntl.fcntl(2, fcntl.F_SETFL, flags | os.O_NONBLOCK)\n"
        "try:\n"
        "    while True:\n"
        "        os.write(2, b'x' * 4096)\n"
        "except BlockingIOError:\n"
        "    pass\n"
        "fcntl.fcntl(2, fcntl.F_SETFL, flags)\n"
        "from servicelog import _errors\n"
        "_errors._write_stderr('servicelog: a report\\n')\n"
        "print('returned', flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"returned\n"
    finally:
        proc.kill()
        proc.communicate()


def test_a_signal_drain_inside_a_flush_wait_does_not_deadlock() -> None:
    """A signal handler's drain (``install_signal_handlers``) that interrupts a ``flush()``
    while it holds the condition it waits on: with a plain lock, the handler blocked on it and
    the writer (which notifies under it) blocked too, for ever."""
    code = textwrap.dedent(
        """
        import faulthandler, os, signal, threading, time
        from servicelog.sinks.base import BufferedSink, install_signal_handlers

        class Slow(BufferedSink):
            name = "slow"
            def write_batch(self, data):
                time.sleep(0.01)

        sink = Slow(lambda record: b"x\\n", flush_interval=0.05)
        signal.signal(signal.SIGUSR1, lambda signum, frame: None)
        install_signal_handlers([signal.SIGUSR1], timeout=1.0)
        once = [True]

        class SignallingEvent(threading.Event):
            def set(self):
                super().set()
                if (once[0] and threading.current_thread() is threading.main_thread()
                        and sink._taken._is_owned()):
                    once[0] = False
                    os.kill(os.getpid(), signal.SIGUSR1)  # inside the wait's lock

        sink._wake = SignallingEvent()
        faulthandler.dump_traceback_later(20, exit=True)
        sink.emit({}, 20)
        sink.flush()
        print("returned", not once[0], sink.written, flush=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "returned True 1", done.stderr[-2000:]
