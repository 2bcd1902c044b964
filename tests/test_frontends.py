"""Every front-end lands in the same pipeline, in the same shape, with the bound context."""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import orjson
import pytest

import servicelog
from servicelog.sinks import MemorySink

ALL = servicelog.CaptureOptions(
    stdlib=True, warnings=True, excepthooks=True, structlog=True, loguru=True
)


@pytest.fixture
def sink() -> MemorySink:
    memory = MemorySink()
    servicelog.configure(service="shop", stream="none", sinks=[memory], capture=ALL)
    return memory


def _shape(record: dict[str, Any]) -> set[str]:
    return {"@timestamp", "log.level", "message", "log.logger", "service.name"} - set(record)


def test_stdlib_extra_fields_become_top_level_fields(sink: MemorySink) -> None:
    with servicelog.bound_context(request_id="r-1"):
        logging.getLogger("lib.x").warning("hello %s", "world", extra={"order_id": 7})
    (record,) = sink.records
    assert not _shape(record)
    assert record["message"] == "hello world"
    assert record["log.level"] == "warning"
    assert record["log.logger"] == "lib.x"
    assert (record["order_id"], record["request_id"]) == (7, "r-1")
    assert "extra" not in record


def test_the_applications_own_stdlib_handler_keeps_its_call_sites(tmp_path: Any) -> None:
    """Without call sites (production), servicelog turned the stdlib's caller lookup off for
    the whole process: a handler the application kept wrote "(unknown file):0", and
    ``stack_info=True`` was lost. It stays on while such a handler exists."""
    own = logging.FileHandler(tmp_path / "own.log")
    own.setFormatter(logging.Formatter("%(filename)s:%(lineno)d %(message)s"))
    mine = logging.getLogger("app.own")
    mine.addHandler(own)
    try:
        memory = MemorySink()
        servicelog.configure(profile="production", stream="none", sinks=[memory], capture=ALL)
        mine.warning("with its stack", stack_info=True)
        servicelog.flush()
        assert (tmp_path / "own.log").read_text().startswith("test_frontends.py:")
        (record,) = memory.records
        assert "Stack (most recent call last)" in record["log.origin.stack"]
    finally:
        mine.removeHandler(own)
        own.close()
        servicelog.reset()


def test_stdlib_exception_and_bad_format_args(sink: MemorySink) -> None:
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logging.getLogger("lib").exception("division")
    logging.getLogger("lib").error("bad %d format", "not-a-number")
    first, second = sink.records
    assert first["error.type"] == "ZeroDivisionError"
    assert "Traceback" in first["error.stack_trace"]
    assert second["message"].startswith("bad %d format")


def test_structlog_feeds_the_pipeline(sink: MemorySink) -> None:
    import structlog

    structlog.contextvars.bind_contextvars(from_structlog="yes")
    try:
        with servicelog.bound_context(request_id="r-2"):
            structlog.get_logger("sl").info("via structlog", n=1)
            try:
                raise KeyError("k")
            except KeyError:
                structlog.get_logger("sl").exception("sl failed")
    finally:
        structlog.contextvars.clear_contextvars()
    first, second = sink.records
    assert not _shape(first)
    assert (first["message"], first["log.logger"], first["n"]) == ("via structlog", "sl", 1)
    assert (first["request_id"], first["from_structlog"]) == ("r-2", "yes")
    assert first["log.origin.function"] == "test_structlog_feeds_the_pipeline"
    assert second["log.level"] == "error" and second["error.type"] == "KeyError"


def test_a_later_structlog_configure_ending_in_a_renderer_still_logs(sink: MemorySink) -> None:
    """A ``structlog.configure(processors=[..., SomeRenderer()])`` made after servicelog's
    hands servicelog's logger the rendered text (str or bytes), positionally: it becomes the
    message (it raised TypeError into the caller)."""
    import structlog

    structlog.configure(processors=[structlog.processors.JSONRenderer()])
    structlog.get_logger("late").warning("as json", k=2)
    structlog.configure(processors=[lambda _logger, _name, event: b"as bytes \xff"])
    structlog.get_logger("late").info("ignored")
    structlog.configure(processors=[structlog.dev.ConsoleRenderer(colors=True)])
    structlog.get_logger("late").info("signed in", password="hunter2")
    first, second, third = sink.records
    assert (first["log.level"], first["log.logger"]) == ("warning", "late")
    assert orjson.loads(first["message"]) == {"k": 2, "event": "as json"}
    assert second["message"] == "as bytes \ufffd"
    # The colours, between the key and its "=", hid the password from redaction.
    assert "hunter2" not in third["message"] and "\x1b" not in third["message"]
    assert "password=[REDACTED]" in third["message"]


def test_loguru_bind_contextualize_and_guide_style_extra(sink: MemorySink) -> None:
    from loguru import logger

    with servicelog.bound_context(request_id="r-3"), logger.contextualize(task="t1"):
        logger.bind(user_id=5).info("via loguru", extra={"order_id": 9})
        logger.success("done")
        try:
            raise RuntimeError("lg")
        except RuntimeError:
            logger.exception("loguru failed")
    first, second, third = sink.records
    assert not _shape(first)
    assert first["message"] == "via loguru"
    assert (first["user_id"], first["task"], first["request_id"]) == (5, "t1", "r-3")
    assert first["order_id"] == 9 and "extra" not in first and "extra.extra" not in first
    assert first["log.origin.function"] == "test_loguru_bind_contextualize_and_guide_style_extra"
    assert second["log.level"] == "info"
    assert third["error.type"] == "RuntimeError"


def test_loguru_gets_its_default_handler_back_on_reset() -> None:
    from loguru import logger

    servicelog.configure(stream="none", capture=ALL)
    servicelog.reset()
    assert len(logger._core.handlers) == 1  # type: ignore[attr-defined]


def test_warnings_are_records(sink: MemorySink) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        servicelog.configure(service="shop", stream="none", sinks=[sink], capture=ALL)
        warnings.warn("old API", DeprecationWarning, stacklevel=1)
    (record,) = sink.records
    assert record["log.level"] == "warning"
    assert record["message"] == "old API"
    assert record["warning.category"] == "DeprecationWarning"
    assert record["log.logger"] == "py.warnings"


def test_uncaught_exception_in_a_thread_is_logged_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # pytest's own threading.excepthook, which ours now chains to, would turn it into a warning.
    monkeypatch.setattr(threading, "excepthook", threading.__excepthook__)
    sink = MemorySink()
    servicelog.configure(service="shop", stream="none", sinks=[sink], capture=ALL)

    def boom() -> None:
        raise ValueError("in thread")

    thread = threading.Thread(target=boom, name="worker-7")
    thread.start()
    thread.join()
    (record,) = sink.records
    assert record["log.level"] == "error"
    assert record["error.type"] == "ValueError"
    assert record["process.thread.name"] == "worker-7"


def test_unretrieved_asyncio_task_exception_is_logged(sink: MemorySink) -> None:
    async def main() -> None:
        async def fail() -> None:
            raise LookupError("in task")

        task = asyncio.get_running_loop().create_task(fail())
        await asyncio.sleep(0.01)
        del task
        gc.collect()

    asyncio.run(main())
    records = [r for r in sink.records if r.get("error.type") == "LookupError"]
    assert len(records) == 1
    assert records[0]["log.level"] == "error"
    assert "never retrieved" in records[0]["message"]


def test_asyncio_handler_names_the_task(sink: MemorySink) -> None:
    async def main() -> None:
        servicelog.frontends.hooks.install_asyncio_handler()

        async def fail() -> None:
            raise LookupError("handled by ours")

        task = asyncio.get_running_loop().create_task(fail(), name="the-task")
        await asyncio.sleep(0.01)
        del task
        gc.collect()

    import servicelog.frontends.hooks

    asyncio.run(main())
    (record,) = [r for r in sink.records if r.get("error.type") == "LookupError"]
    assert "the-task" in record["asyncio.task"]


def _python(code: str) -> subprocess.CompletedProcess[bytes]:
    """Run *code* in a fresh interpreter (hooks and sentry-sdk patch a process for good)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)


def test_uncaught_exception_in_main_thread_is_one_critical_json_line() -> None:
    code = (
        "import servicelog\n"
        "servicelog.configure(profile='production', service='cli')\n"
        "def main():\n"
        "    raise SystemError('fatal')\n"
        "main()\n"
    )
    proc = _python(code)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    record = orjson.loads(lines[0])
    assert record["log.level"] == "critical"
    assert record["error.type"] == "SystemError"
    assert "in main" in record["error.stack_trace"]
    assert proc.stderr == b""  # the default hook did not print it a second time


def test_an_app_configuring_logging_itself_prints_nothing_twice() -> None:
    """basicConfig before and after configure(), a library StreamHandler: one line each."""
    code = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "lib = logging.getLogger('lib'); lib.addHandler(logging.StreamHandler(sys.stderr))\n"
        "import servicelog\n"
        "servicelog.configure(profile='production', service='x')\n"
        "logging.basicConfig(level=logging.DEBUG)\n"
        "logging.getLogger('app').info('from app')\n"
        "lib.warning('from lib')\n"
    )
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [orjson.loads(line)["message"] for line in lines] == ["from app", "from lib"]
    assert proc.stderr == b""


# --- hooks chain to the ones they replace ------------------------------------------------------


def _fake_uncaught() -> tuple[type[BaseException], BaseException, Any]:
    try:
        raise RuntimeError("crash")
    except RuntimeError as exc:
        return RuntimeError, exc, exc.__traceback__


def test_excepthook_calls_the_hook_installed_before_configure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An excepthook set before configure() (Sentry, an APM agent) still sees the exception."""
    seen: list[str] = []
    monkeypatch.setattr(sys, "excepthook", lambda t, v, tb: seen.append(f"sys:{v}"))
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(f"thread:{args[1]}"))
    memory = MemorySink()
    servicelog.configure(service="shop", stream="none", sinks=[memory], capture=ALL)

    sys.excepthook(*_fake_uncaught())
    thread = threading.Thread(target=lambda: 1 / 0)
    thread.start()
    thread.join()

    assert seen == ["sys:crash", "thread:division by zero"]
    assert [r["error.type"] for r in memory.records] == ["RuntimeError", "ZeroDivisionError"]


def test_reset_keeps_a_hook_installed_after_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hook that wrapped ours stays installed through configure() and reset(), and every
    uncaught exception is logged once and reaches it once."""
    monkeypatch.setattr(sys, "__excepthook__", lambda t, v, tb: seen.append("default"))
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    seen: list[str] = []
    memory = MemorySink()
    servicelog.configure(service="shop", stream="none", sinks=[memory], capture=ALL)
    wrapped = sys.excepthook

    def third_party(t: Any, v: Any, tb: Any) -> None:
        seen.append("third-party")
        wrapped(t, v, tb)

    sys.excepthook = third_party
    servicelog.configure(service="shop", stream="none", sinks=[memory], capture=ALL)
    sys.excepthook(*_fake_uncaught())
    assert seen == ["third-party", "default"]
    assert len(memory.records) == 1

    servicelog.reset()
    assert sys.excepthook is third_party


def test_asyncio_handler_chains_to_the_loops_own_handler(sink: MemorySink) -> None:
    """A handler the application set on the loop still runs after servicelog's."""
    seen: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: seen.append(context["message"]))
        servicelog.frontends.hooks.install_asyncio_handler()
        servicelog.frontends.hooks.install_asyncio_handler()  # idempotent: one record
        loop.call_exception_handler({"message": "boom", "exception": KeyError("k")})

    import servicelog.frontends.hooks

    asyncio.run(main())
    assert seen == ["boom"]
    assert [r["message"] for r in sink.records if r.get("error.type") == "KeyError"] == ["boom"]


def test_reset_gives_the_loop_its_own_handler_back_and_configure_takes_it_again(
    sink: MemorySink,
) -> None:
    import threading

    import servicelog.frontends.hooks

    seen: list[str] = []
    loop = asyncio.new_event_loop()
    app_handler = lambda loop, context: seen.append(context["message"])  # noqa: E731
    loop.set_exception_handler(app_handler)
    servicelog.frontends.hooks.install_asyncio_handler(loop)
    # The loop runs in another thread: a reconfiguration from this one keeps ours on it.
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        servicelog.configure(service="shop", stream="none", sinks=[sink], capture=ALL)
        assert loop.get_exception_handler() is not app_handler
        servicelog.reset()
        assert loop.get_exception_handler() is app_handler
        loop.call_soon_threadsafe(loop.call_exception_handler, {"message": "after reset"})
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
    assert seen == ["after reset"]


@pytest.mark.slow
def test_sentry_still_receives_uncaught_exceptions() -> None:
    """sentry_sdk.init() then configure(): the real ExcepthookIntegration sends one event."""
    pytest.importorskip("sentry_sdk")
    code = (
        "import atexit, sentry_sdk, servicelog\n"
        "sent = []\n"
        "class T(sentry_sdk.transport.Transport):\n"
        "    def capture_envelope(self, envelope): sent.append(envelope)\n"
        "sentry_sdk.init(dsn='http://k@127.0.0.1:9/1', transport=T)\n"
        "servicelog.configure(service='s', profile='production', stream='none')\n"
        "atexit.register(lambda: print('events', len(sent)))\n"
        "raise RuntimeError('crash')\n"
    )
    proc = _python(code)
    assert proc.returncode == 1
    assert proc.stdout.strip() == b"events 1", proc.stderr


def test_a_library_logger_that_does_not_propagate_still_reaches_the_pipeline() -> None:
    """A logger with its own console handler and propagate=False (transformers, datasets)
    propagates once its handler is taken; reset() restores both."""
    lib = logging.getLogger("hf_like_library")
    own = logging.StreamHandler(sys.stderr)
    lib.addHandler(own)
    lib.propagate = False
    try:
        memory = MemorySink()
        servicelog.configure(service="shop", stream="none", sinks=[memory], capture=ALL)
        lib.warning("from the library")
        assert [r["message"] for r in memory.records] == ["from the library"]
        servicelog.reset()
        assert (lib.handlers, lib.propagate) == ([own], False)
    finally:
        lib.removeHandler(own)
        lib.propagate = True


def test_warnings_follow_the_level_of_py_warnings() -> None:
    """``levels={"py.warnings": "ERROR"}`` silences warnings, as for any logger name."""
    memory = MemorySink()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        servicelog.configure(
            stream="none", sinks=[memory], capture=ALL, levels={"py.warnings": "ERROR"}
        )
        warnings.warn("old API", DeprecationWarning, stacklevel=1)
    assert memory.records == []


def test_front_end_filters_stay_at_the_lowest_configured_level() -> None:
    """A call below every configured level is dropped by structlog and loguru themselves (a
    no-op method, loguru's minimum level), before any record is built; a per-logger level
    lowers that floor, and a new configuration moves it."""
    import structlog
    from loguru import logger

    log = structlog.get_logger("app")
    servicelog.configure(stream="none", capture=ALL, level="INFO")
    log.info("cache the logger")
    assert log.debug.__name__ == "_nop"
    assert logger._core.min_level == 20  # type: ignore[attr-defined]
    servicelog.configure(stream="none", capture=ALL, level="INFO", levels={"chatty": "DEBUG"})
    assert log.debug.__name__ != "_nop"
    assert logger._core.min_level == 10  # type: ignore[attr-defined]
    servicelog.configure(stream="none", capture=ALL, level="WARNING")
    assert log.info.__name__ == "_nop"
    assert logger._core.min_level == 30  # type: ignore[attr-defined]


def test_an_uncaught_exception_logged_only_to_memory_is_also_printed() -> None:
    """``stream="none"`` with a memory sink: the record stays in the process, so the
    interpreter's default hook prints the traceback too; a crash is never silent."""
    code = (
        "import servicelog\n"
        "from servicelog.sinks import MemorySink\n"
        "servicelog.configure(stream='none', sinks=[MemorySink()])\n"
        "raise SystemError('fatal and visible')\n"
    )
    proc = _python(code)
    assert proc.returncode == 1
    assert b"SystemError: fatal and visible" in proc.stderr


def test_the_asyncio_handler_bookkeeping_keeps_no_loop_alive(sink: MemorySink) -> None:
    """An application handler that holds its loop (a bound method of an object keeping
    ``self.loop``) must not make servicelog keep every loop ever run."""
    import gc
    import weakref

    import servicelog.frontends.hooks as hooks

    class App:
        def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
            self.loop = loop

        def handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            pass

    refs = []
    for _ in range(5):
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(App(loop).handle)
        hooks.install_asyncio_handler(loop)
        loop.close()
        refs.append(weakref.ref(loop))
        del loop
    gc.collect()
    assert [ref() for ref in refs] == [None] * 5


def test_an_access_log_its_server_turned_off_stays_off_through_reconfigure_and_reset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uvicorn's ``access_log=False`` (``--no-access-log``) leaves ``uvicorn.access`` without a
    handler and not propagating; that may happen after ``configure()`` (``uvicorn.run`` from
    code), and a later ``configure()`` or ``reset()`` must not turn it back on."""
    from servicelog.frontends import stdlib

    monkeypatch.setattr(stdlib, "SILENCED", set())  # no access record of ours replaces it here
    access = logging.getLogger("uvicorn.access")
    saved = access.propagate, list(access.handlers), access.disabled
    sink = MemorySink()
    try:
        access.propagate, access.disabled = False, False
        access.addHandler(logging.StreamHandler(sys.stderr))  # uvicorn's dictConfig
        servicelog.configure(service="t", stream="none", sinks=[sink])
        assert access.propagate and not access.handlers  # taken over
        access.handlers = []  # what uvicorn does with access_log=False
        access.propagate = False
        servicelog.configure(service="t", stream="none", sinks=[sink])
        assert (access.propagate, access.handlers) == (False, [])
        access.info("GET / 200")
        servicelog.flush()
        assert not [r for r in sink.records if r["log.logger"] == "uvicorn.access"]
        servicelog.reset()
        assert (access.propagate, access.handlers) == (False, [])
    finally:
        servicelog.reset()
        access.propagate, access.handlers, access.disabled = saved[0], saved[1], saved[2]


def _thread_crash(monkeypatch: pytest.MonkeyPatch, target: Any) -> dict[str, Any]:
    """The record of *target*'s crash in a thread of its own."""
    # pytest's own threading.excepthook, which ours now chains to, would turn it into a warning.
    monkeypatch.setattr(threading, "excepthook", threading.__excepthook__)
    sink = MemorySink()
    servicelog.configure(service="shop", stream="none", sinks=[sink], capture=ALL)
    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    (record,) = sink.records
    return record


def test_a_crash_record_carries_what_was_bound_where_it_was_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The thread's hook runs after the thread left the context of servicelog.wrap (and the
    # request scope, and the bound_context block): the record still gets their fields.
    def job() -> None:
        servicelog.bind(order_id=7)
        with servicelog.bound_context(step="charge"):
            raise ValueError("in thread")

    with servicelog.context.request_scope(request_id="r-1"):
        target = servicelog.context.wrap(job)
    record = _thread_crash(monkeypatch, target)
    assert record["error.type"] == "ValueError"
    assert (record["request_id"], record["order_id"], record["step"]) == ("r-1", 7, "charge")


def test_an_uncaught_exception_keeps_the_fields_of_the_block_it_left() -> None:
    code = (
        "import servicelog\n"
        "servicelog.configure(profile='production', service='cli')\n"
        "with servicelog.bound_context(job='nightly'):\n"
        "    with servicelog.bound_context(batch=3):\n"
        "        raise SystemError('fatal')\n"
    )
    proc = _python(code)
    assert proc.returncode == 1
    (line,) = proc.stdout.splitlines()
    record = orjson.loads(line)
    assert (record["job"], record["batch"]) == ("nightly", 3)


def test_an_exception_that_refuses_attributes_is_logged_without_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Frozen(Exception):
        def __setattr__(self, name: str, value: Any) -> None:
            raise AttributeError(name)

    def job() -> None:
        with servicelog.bound_context(step="charge"):
            raise Frozen("frozen")

    record = _thread_crash(monkeypatch, servicelog.context.wrap(job))
    assert record["error.type"].endswith(".Frozen") and "step" not in record


def test_a_servers_console_handler_added_after_configure_is_taken_at_its_first_record(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """hypercorn gives ``hypercorn.error`` a stderr handler once it starts serving, after the
    application (and ``configure()``) was imported: its first line is written by servicelog
    only, and ``reset()`` gives the handler back."""
    error = logging.getLogger("hypercorn.error")
    saved = list(error.handlers), error.propagate
    sink = MemorySink()
    try:
        servicelog.configure(service="t", stream="none", sinks=[sink])
        theirs = logging.StreamHandler(sys.stderr)
        error.handlers = [theirs]  # as hypercorn's _create_logger does
        error.propagate = True
        error.warning("Running on http://127.0.0.1:8000")
        servicelog.flush()
        assert capsys.readouterr().err == ""
        assert [r["message"] for r in sink.records] == ["Running on http://127.0.0.1:8000"]
        assert error.handlers == []
        servicelog.reset()
        assert error.handlers == [theirs] and not error.filters
    finally:
        servicelog.reset()
        error.handlers, error.propagate = saved


def test_a_hypercorn_access_log_to_a_file_only_is_left_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``hypercorn --access-logfile FILE`` with servicelog's access record not in use: its
    lines go to the file only, not also through servicelog."""
    hypercorn_logging = pytest.importorskip("hypercorn.logging")
    from hypercorn.config import Config

    from servicelog.frontends import stdlib

    monkeypatch.setattr(stdlib, "SILENCED", set())  # no access record of ours replaces it here

    access = logging.getLogger("hypercorn.access")
    saved = list(access.handlers), access.propagate
    sink = MemorySink()
    try:
        servicelog.configure(service="t", stream="none", sinks=[sink])
        config = Config()
        config.accesslog = str(tmp_path / "access.log")
        hypercorn_logging.Logger(config)  # as hypercorn does once it starts serving
        access.info("GET / 200")
        servicelog.flush()
        for handler in access.handlers:
            handler.flush()
        assert (tmp_path / "access.log").read_text().count("GET / 200") == 1
        assert [r["message"] for r in sink.records] == []
    finally:
        servicelog.reset()
        for handler in access.handlers:
            handler.close()
        access.handlers, access.propagate = saved
