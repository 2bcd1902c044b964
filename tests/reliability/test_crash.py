"""Crashes and exits (catalog F1, F2, F13): kill -9, SIGTERM/SIGINT drain, atexit, fork."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .conftest import expected_from, soak_seconds, worker_command
from .verify import verify

pytestmark = pytest.mark.slow

KILLS = int(os.environ.get("SERVICELOG_KILLS", "8"))


def test_kill_9_leaves_at_most_a_fragment_and_never_glues_records(log_dir: Path) -> None:
    """Writers killed at random moments (records up to 15 KiB, large batches) while another
    process keeps writing: every unparseable line is one torn record ended by the next
    writer's newline (never a fragment glued to a complete record), at most one per kill, and
    the surviving writer loses nothing, duplicates nothing, keeps its order."""
    path = log_dir / "app.jsonl"
    rng = random.Random(1234)
    seconds = KILLS * 0.35 + 1.5
    survivor = subprocess.Popen(
        worker_command(
            path, 100, "--threads", "2", "--seconds", str(seconds), "--rotation", "4 MiB",
            "--report", str(log_dir.parent / "survivor.json"), "--sleep", "0.0002",
        ),
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        for kill in range(KILLS):
            victim = subprocess.Popen(
                worker_command(
                    path, kill, "--threads", "2", "--forever", "--rotation", "4 MiB",
                    "--big-every", "7",
                ),
                stdout=subprocess.PIPE,
            )  # fmt: skip
            assert victim.stdout is not None
            assert victim.stdout.readline() == b"STARTED\n"
            time.sleep(rng.uniform(0.01, 0.3))
            victim.kill()
            assert victim.wait(10) == -signal.SIGKILL
            victim.stdout.close()
        _, err = survivor.communicate(timeout=60)
        assert survivor.returncode == 0, err.decode()
    finally:
        if survivor.poll() is None:
            survivor.kill()
            survivor.communicate()
    import orjson

    produced = orjson.loads((log_dir.parent / "survivor.json").read_bytes())["produced"]
    expected = {(100, int(t)): n for t, n in produced.items()}
    verdict = verify(path, expected)
    assert verdict.glued == 0
    assert verdict.fragments == len(verdict.unparseable), verdict.unparseable[:3]
    assert len(verdict.unparseable) <= KILLS
    assert verdict.lost == 0 and verdict.duplicates == 0, verdict.summary()
    assert not verdict.out_of_order, verdict.out_of_order[:3]
    # Killed writers' records: never duplicated, never out of order.
    assert verdict.records > sum(expected.values())


def _queue_then_signal(log_dir: Path, signum: int, *extra: str) -> tuple[int, int]:
    path = log_dir / "app.jsonl"
    proc = subprocess.Popen(
        worker_command(path, 0, "--threads", "2", "--records", "10000", "--queue-then-wait",
                       *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline().split()
        assert ready[0] == b"READY", proc.stderr.read() if proc.stderr else ""
        assert int(ready[1]) == 20000, "the records should still be queued"
        proc.send_signal(signum)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    verdict = verify(path, {(0, 0): 10000, (0, 1): 10000})
    assert verdict.duplicates == 0 and not verdict.unparseable
    return proc.returncode, verdict.lost


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_drains_every_queued_record_then_acts_as_before(
    log_dir: Path, signum: int
) -> None:
    """With install_signal_handlers(), 20,000 records queued when SIGTERM (or SIGINT) arrives
    are all written, and then the previous disposition applies: SIGTERM still kills the process
    (exit status -15), SIGINT still raises KeyboardInterrupt (which Python reports as an exit
    by SIGINT, -2)."""
    code, lost = _queue_then_signal(log_dir, signum, "--signals")
    assert lost == 0
    assert code == -signum


def test_without_the_handlers_sigterm_keeps_its_default_meaning(log_dir: Path) -> None:
    """servicelog installs no signal handler on its own: without install_signal_handlers(),
    SIGTERM kills at once and the queued records are lost (why the function exists)."""
    code, lost = _queue_then_signal(log_dir, signal.SIGTERM)
    assert code == -signal.SIGTERM
    assert lost > 0


def _run(code: str, log_dir: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    log_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=log_dir,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


PRELUDE = """
    import os, sys, threading, time
    import servicelog
    from servicelog.render.json import JsonRenderer
    from servicelog.sinks import RotatingFileSink
    sink = RotatingFileSink("app.jsonl", JsonRenderer(), rotation="1 MiB",
                            flush_interval=3600, batch_bytes=1 << 40)
    servicelog.configure(stream="none", sinks=[sink], profile="production",
        capture=servicelog.CaptureOptions(stdlib=False, warnings=False, excepthooks=False,
                                          structlog=False, loguru=False))
    log = servicelog.get_logger("x")
"""


def test_a_normal_exit_drains_the_queue(log_dir: Path) -> None:
    """Records still queued when the interpreter exits normally are written (atexit)."""
    out = _run(PRELUDE + "\n    for j in range(5000): log.info('r', p=0, t=0, j=j)\n", log_dir)
    assert out.returncode == 0, out.stderr
    verdict = verify(log_dir / "app.jsonl", {(0, 0): 5000})
    assert verdict.lost == 0


def test_what_is_held_before_the_sinks_is_written_at_a_normal_exit(log_dir: Path) -> None:
    """At exit, records still held upstream of the sinks reach them before their final drain:
    the rate limit's "suppressed N" summary (it used to arrive after the drain and be lost), and
    a record deferred to an event loop's burst that never ran."""
    code = (
        PRELUDE
        + """
    from servicelog.logger import current_runtime
    for j in range(3000): log.warning('same warning')
    record = {"@timestamp": "2026-11-30T00:00:00.000000Z", "log.level": "info",
              "message": "deferred", "log.logger": "x"}
    import asyncio
    loop = asyncio.new_event_loop()
    def defer():  # in a loop that stops before its burst runs
        current_runtime().pipeline.defer(record, 20, asyncio.get_running_loop)
        loop.stop()
    loop.call_soon(defer)
    loop.run_forever()
    """
    )
    out = _run(code, log_dir)
    assert out.returncode == 0, out.stderr
    lines = (log_dir / "app.jsonl").read_text().splitlines()
    messages = [json.loads(line)["message"] for line in lines]
    assert messages.count("same warning") == 1000  # the production profile's limit per 10 s
    assert "suppressed 2000 similar messages" in messages
    assert "deferred" in messages


def test_a_multiprocessing_fork_child_drains_before_os_exit(log_dir: Path) -> None:
    """A multiprocessing child (fork) ends with os._exit, skipping atexit: its queued records
    are still written (a multiprocessing finalizer), and none of the parent's twice."""
    code = (
        PRELUDE
        + """
    import multiprocessing
    def child():
        for j in range(3000): log.info('r', p=1, t=0, j=j)
    for j in range(1000): log.info('r', p=0, t=0, j=j)
    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start(); proc.join()
    assert proc.exitcode == 0
    """
    )
    out = _run(code, log_dir)
    assert out.returncode == 0, out.stderr
    verdict = verify(log_dir / "app.jsonl", {(0, 0): 1000, (1, 0): 3000})
    assert (verdict.lost, verdict.duplicates) == (0, 0), verdict.summary()


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_a_child_that_configures_itself_drains_before_it_ends(tmp_path: Path, method: str) -> None:
    """ "forkserver" and "spawn" children import the main module again, and its
    ``configure()`` makes the child's own sinks: a forkserver child ends with os._exit, and
    no fork hook of its parent's registered its drain (it wrote none of its 2,001 records)."""
    script = tmp_path / "main.py"
    script.write_text(
        textwrap.dedent(
            """
            import multiprocessing, sys, servicelog
            servicelog.configure(profile="production", stream="none", file=sys.argv[2])
            log = servicelog.get_logger("child")

            def child():
                for i in range(2000):
                    log.info("from the child", i=i)
                log.error("child done")

            if __name__ == "__main__":
                procs = [multiprocessing.get_context(sys.argv[1]).Process(target=child)
                         for _ in range(2)]
                for proc in procs:
                    proc.start()
                for proc in procs:
                    proc.join()
                assert [proc.exitcode for proc in procs] == [0, 0]
            """
        )
    )
    out_file = tmp_path / "app.jsonl"
    done = subprocess.run(
        [sys.executable, str(script), method, str(out_file)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    messages = [json.loads(line)["message"] for line in out_file.read_text().splitlines()]
    assert (messages.count("from the child"), messages.count("child done")) == (4000, 2)


def test_forking_while_threads_log_never_deadlocks(log_dir: Path) -> None:
    """Forks (gunicorn --preload) while 4 threads log and the writer holds its locks: every
    child logs, exits within its deadline, and writes only its own records."""
    forks = int(max(20, 10 * soak_seconds(2.0)))
    code = (
        PRELUDE
        + f"""
    import warnings
    warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: on purpose
    stop = threading.Event()
    def spam(t):
        j = 0
        while not stop.is_set():
            log.info('r', p=0, t=t, j=j); j += 1
            if j % 20 == 0: time.sleep(0.001)
    threads = [threading.Thread(target=spam, args=(t,)) for t in range(4)]
    for t in threads: t.start()
    for k in range({forks}):
        pid = os.fork()
        if pid == 0:
            for j in range(50): log.info('r', p=1000 + k, t=0, j=j)
            servicelog.flush()
            os._exit(0)
        deadline = time.monotonic() + 10
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                assert status == 0, status
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                sys.exit("child %d deadlocked" % k)
            time.sleep(0.001)
    stop.set()
    for t in threads: t.join()
    """
    )
    out = _run(code, log_dir, timeout=120)
    assert out.returncode == 0, out.stderr
    expected = {(1000 + k, 0): 50 for k in range(forks)}
    verdict = verify(log_dir / "app.jsonl", expected)
    assert (verdict.lost, verdict.duplicates, len(verdict.unparseable)) == (0, 0, 0), (
        verdict.summary()
    )
    assert not verdict.out_of_order


def test_stopping_twice_is_safe_and_later_records_are_counted(tmp_path: Path) -> None:
    """close() twice is a no-op; a record after close is dropped and counted ("closed")."""
    from servicelog.render.json import JsonRenderer
    from servicelog.sinks import RotatingFileSink

    sink = RotatingFileSink(tmp_path / "app.jsonl", JsonRenderer(), rotation="1 MiB")
    sink.emit({"message": "a"}, 20)
    sink.close()
    sink.close()
    sink.emit({"message": "late"}, 20)
    assert sink.counters() == {
        "produced": 2,
        "written": 1,
        "dropped": {"closed": 1},
        "queued": 0,
    }


def test_expected_from_reports() -> None:
    """(A check of the helper the load tests rely on.)"""
    assert expected_from([{"produced": {"0": 3}}, {"produced": {"1": 2}}]) == {
        (0, 0): 3,
        (1, 1): 2,
    }


# A service whose stdout is a pipe nobody reads (a stalled log collector): ~900 KB of records
# fill the pipe, and the writer thread blocks in write(2) for good.
_STALLED = """
    import os, signal, sys
    import servicelog
    import servicelog.sinks.base as base
    from servicelog.sinks import install_signal_handlers
    base.DRAIN_TIMEOUT = 0.5  # the crash hook's wait
    servicelog.configure(profile="production", stream="stdout", capture=servicelog.CaptureOptions(
        stdlib=False, warnings=False, excepthooks=True, structlog=False, loguru=False))
    install_signal_handlers(timeout=0.5)
    log = servicelog.get_logger("app")
    for i in range(3000):
        log.info("x" * 300)
    print("queued", file=sys.stderr, flush=True)
    if sys.argv[1] == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
    raise RuntimeError("the service crashed")
"""


@pytest.mark.parametrize("how", ["sigterm", "crash"])
def test_a_stalled_stdout_cannot_hang_the_exit(tmp_path: Path, how: str) -> None:
    """The drains wait for the writer thread, not in write(2) themselves: SIGTERM still ends the
    process (-15), and a crash still exits, with its traceback on stderr (the record could not
    be written)."""
    read_end, write_end = os.pipe()  # never read until the child has ended
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(_STALLED), how],
            stdout=write_end,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
        )
        os.close(write_end)
        try:
            _, err = child.communicate(timeout=60)  # a hang would end here, as a failure
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
    finally:
        os.close(read_end)
    stderr = err.decode()
    assert "drain timed out" in stderr
    if how == "sigterm":
        assert child.returncode == -signal.SIGTERM
    else:
        assert child.returncode == 1
        assert "RuntimeError: the service crashed" in stderr  # never a silent crash


def test_sigterm_writes_the_rate_limit_summary_as_an_exit_does(tmp_path: Path) -> None:
    code = """
        import os, signal
        import servicelog
        from servicelog.sinks import install_signal_handlers
        servicelog.configure(profile="production", stream="none", file="app.jsonl",
                             rate_limit=servicelog.RateLimit(burst=5, interval=60))
        install_signal_handlers()
        log = servicelog.get_logger("app")
        for _ in range(100):
            log.warning("flood")
        os.kill(os.getpid(), signal.SIGTERM)
    """
    done = _run(code, tmp_path)
    assert done.returncode == -signal.SIGTERM, done.stderr
    lines = [json.loads(line) for line in (tmp_path / "app.jsonl").read_text().splitlines()]
    assert [r["message"] for r in lines] == ["flood"] * 5 + ["suppressed 95 similar messages"]


def test_a_drain_by_a_signal_that_interrupted_this_threads_own_write_returns_at_once() -> None:
    """A signal handler runs on the thread it interrupted: if that thread was inside the sink's
    write (it holds the flush lock), the drain must not wait for the lock (it would wait out
    its whole timeout, then report the records as lost)."""
    import threading

    from servicelog.sinks.base import BufferedSink

    class Collect(BufferedSink):
        def write_batch(self, data: bytes) -> None:
            self.data = data

    sink = Collect(lambda record: b"x\n", flush_interval=60)
    try:
        with sink._flush_lock:  # this thread is writing...
            sink._flusher = threading.get_ident()
            assert sink.drain(timeout=10) is True  # ...when the signal's drain comes
            sink._flusher = 0
    finally:
        sink.close()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_crash_whose_record_cannot_be_written_is_printed_by_the_interpreter(
    tmp_path: Path,
) -> None:
    code = """
        import servicelog
        servicelog.configure(profile="production")  # JSON lines to stdout: /dev/full here
        raise RuntimeError("the service crashed")
    """
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    assert done.returncode == 1
    assert "No space left on device" in done.stderr  # the sink's failure, reported once
    assert "RuntimeError: the service crashed" in done.stderr  # and the crash, not silent


def test_a_drain_that_gives_up_does_not_make_blocked_producers_drop() -> None:
    """A short drain (a signal handler's, a thread's crash hook) that times out while the
    writer is in a long write leaves the producers' overflow policy alone ("block" still waits
    for room), and only the next drain, while the writer has still taken nothing, gives up at
    once."""
    import threading

    from servicelog.sinks.base import BufferedSink

    release = threading.Event()

    class Slow(BufferedSink):
        def write_batch(self, data: bytes) -> None:
            release.wait(30)

    sink = Slow(lambda record: b"x\n", flush_interval=0.01)
    try:
        sink.emit({}, 20)
        sink.flush_interval = 60
        deadline = time.monotonic() + 10
        while not sink._flush_lock.locked() and time.monotonic() < deadline:
            time.sleep(0.001)  # the writer is inside write_batch
        sink.emit({}, 20)
        assert sink.drain(timeout=0.05) is False
        assert sink._stalled is False  # producers would still wait for room, not drop
        assert sink.drain(timeout=30) is False  # the writer took nothing since: no new wait
    finally:
        release.set()
    deadline = time.monotonic() + 10
    while (sink.written < 1 or sink._flush_lock.locked()) and time.monotonic() < deadline:
        time.sleep(0.001)  # the stuck write ends, and the writer lets go
    assert sink.drain(timeout=30) is True  # progress again: the drain waits as usual
    sink.close()
    assert sink.written == 2 and not sink.dropped


def test_a_signal_handler_never_waits_for_a_rate_limit_its_thread_holds() -> None:
    """SIGTERM may land while the main thread is inside the rate limit (its lock held): the
    handler's flush of held summaries skips it rather than wait for ever."""
    from servicelog.ratelimit import RateLimit, flush_all

    limit = RateLimit(burst=1, interval=60, emit=lambda record, levelno: None)
    with limit._lock:  # this thread is inside the limit...
        flush_all(blocking=False)  # ...when the signal handler runs: returns
    limit.flush()  # and a normal flush still works


def test_a_crash_with_stdout_closed_is_printed_by_the_interpreter(tmp_path: Path) -> None:
    """``python app.py >&-``: the record has nowhere to go (counted as lost, "no stream"), so
    the traceback is printed on stderr as without servicelog."""
    code = """
        import servicelog
        servicelog.configure(profile="production")
        raise RuntimeError("the service crashed")
    """
    done = subprocess.run(  # the shell starts Python with its stdout closed
        ["bash", "-c", 'exec "$0" -c "$1" >&-', sys.executable, textwrap.dedent(code)],
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "RuntimeError: the service crashed" in done.stderr


def _crash(
    configure: str,
    cwd: Path,
    setup: str = "",
    crash: str = "raise RuntimeError('the service crashed')",
) -> subprocess.CompletedProcess[str]:
    """A program that runs *setup*, calls ``servicelog.configure(<configure>)`` then *crash*."""
    code = f"import servicelog\n{setup}\nservicelog.configure({configure})\n{crash}\n"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_a_crash_written_as_usual_is_not_printed_twice(tmp_path: Path) -> None:
    done = _crash('profile="production"', tmp_path)
    assert done.returncode == 1
    assert "the service crashed" in done.stdout  # the JSON record, with its stack trace
    assert "Traceback" not in done.stderr


def test_a_crash_logged_only_to_a_file_is_also_printed_on_stderr(tmp_path: Path) -> None:
    """``stream="none"``: the record goes to the file, and whoever runs the program still sees
    the traceback on stderr, as without servicelog (it used to exit 1 with nothing there)."""
    done = _crash('profile="production", stream="none", file="app.jsonl"', tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("RuntimeError: the service crashed") == 1
    assert "Traceback" in done.stderr
    records = [json.loads(line) for line in (tmp_path / "app.jsonl").read_text().splitlines()]
    crashes = [r for r in records if r["log.logger"] == "servicelog.uncaught"]
    assert len(crashes) == 1
    assert "the service crashed" in json.dumps(crashes[0])


@pytest.mark.parametrize("where", ["main", "thread"])
def test_the_crash_printed_on_stderr_is_redacted(tmp_path: Path, where: str) -> None:
    """The traceback printed beside a files-only record is redacted as the record is: the
    interpreter's own hook printed the secret in the exception's message (and source line)."""
    crash = "raise RuntimeError('login failed password=hunter2 for bob')"
    if where == "thread":
        crash = (
            "import threading\n"
            "def work():\n"
            "    " + crash + "\n"
            "t = threading.Thread(target=work, name='worker-1'); t.start(); t.join()"
        )
    done = _crash('profile="production", stream="none", file="app.jsonl"', tmp_path, crash=crash)
    assert done.returncode == (1 if where == "main" else 0)
    assert "hunter2" not in done.stderr and "hunter2" not in (tmp_path / "app.jsonl").read_text()
    assert "RuntimeError: login failed password=[REDACTED] for bob" in done.stderr
    assert "Traceback (most recent call last)" in done.stderr
    if where == "thread":
        assert done.stderr.startswith("Exception in thread worker-1:\n")


_CONSOLE = (
    "from servicelog import Route\n"
    "from servicelog.sinks.stream import ConsoleSink, StreamSink\n"
    "from servicelog.render.console import ConsoleRenderer\n"
    "console = ConsoleSink(ConsoleRenderer(color=False), 'stderr')\n"
)


@pytest.mark.parametrize(
    ("sinks", "printed_by_the_interpreter"),
    [
        ("[Route(console, level=50)]", False),  # it takes CRITICAL: the record is the copy
        ("[Route(console, filter=lambda r: 'url.path' in r)]", True),  # may have left it out
        ("[StreamSink(JsonRenderer(), open('other.jsonl', 'w'))]", True),  # not a terminal
    ],
)
def test_the_interpreter_prints_a_crash_unless_a_terminal_route_surely_took_it(
    tmp_path: Path, sinks: str, printed_by_the_interpreter: bool
) -> None:
    setup = _CONSOLE + "from servicelog.render.json import JsonRenderer\n"
    done = _crash(f'stream="none", file="app.jsonl", sinks={sinks}', tmp_path, setup)
    assert done.returncode == 1
    # Once on stderr in every case: the console's record (indented) or the interpreter's.
    assert done.stderr.count("RuntimeError: the service crashed") == 1
    from_interpreter = done.stderr.startswith("Traceback") or "\nTraceback" in done.stderr
    assert from_interpreter is printed_by_the_interpreter


def test_a_thread_crash_logged_only_to_a_file_is_also_printed_on_stderr(tmp_path: Path) -> None:
    crash = (
        "import threading\n"
        "def work(): raise RuntimeError('the worker crashed')\n"
        "t = threading.Thread(target=work, name='worker'); t.start(); t.join()\n"
    )
    done = _crash('stream="none", file="app.jsonl"', tmp_path, crash=crash)
    assert done.returncode == 0
    assert "Exception in thread worker" in done.stderr
    assert done.stderr.count("RuntimeError: the worker crashed") == 1
    assert "the worker crashed" in (tmp_path / "app.jsonl").read_text()


@pytest.mark.parametrize(
    ("setup", "configure"),
    [
        # A processor of the user's drops the crash's record on its way to the console.
        ("", "processors=[lambda r, n: None if r['log.logger'] == 'servicelog.uncaught' else r]"),
        # sys.stdout swapped for /dev/null before configure(): the JSON stream is not fd 1.
        ("import os, sys\nsys.stdout = open(os.devnull, 'w')", 'profile="production"'),
    ],
)
def test_a_crash_that_never_reached_the_terminal_is_printed_by_the_interpreter(
    tmp_path: Path, setup: str, configure: str
) -> None:
    done = _crash(configure, tmp_path, setup)
    assert done.returncode == 1
    assert done.stderr.startswith("Traceback (most recent call last)")
    assert done.stderr.count("RuntimeError: the service crashed") == 1
