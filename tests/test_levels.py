from __future__ import annotations

import logging
from typing import Any

import pytest

import servicelog
from servicelog import ConfigError, LogLevel
from servicelog.levels import level_name, parse_level
from servicelog.sinks import MemorySink


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("info", 20),
        ("INFO", 20),
        (" warning ", 30),
        ("warn", 30),
        (10, 10),
        ("40", 40),
        (LogLevel.CRITICAL, 50),
        ("trace", 5),
        ("fatal", 50),
    ],
)
def test_parse_level_accepts_names_numbers_and_enum(value: object, expected: int) -> None:
    assert parse_level(value) == expected


@pytest.mark.parametrize("value", ["LOUD", -1, 51, True, None, 2.5, "", "²", "٣٠", "3\u0660"])
def test_parse_level_rejects_with_a_message_naming_option_and_value(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_level(value, "level")
    message = str(info.value)
    assert "'level'" in message
    assert repr(value) in message
    assert "DEBUG" in message


def test_levels_match_the_standard_library() -> None:
    for member in LogLevel:
        if member.name != "TRACE":
            assert logging.getLevelName(int(member)) == member.name


def test_every_level_documents_when_to_use_it() -> None:
    """The guide's "when to use each level" travels with the enum."""
    for member in LogLevel:
        assert member.__doc__ and len(member.__doc__) > 40
    assert "production" in (LogLevel.INFO.__doc__ or "").lower()


@pytest.mark.parametrize(
    ("number", "name"), [(20, "info"), (25, "info"), (45, "error"), (1, "trace")]
)
def test_level_name_rounds_custom_levels_down(number: int, name: str) -> None:
    assert level_name(number) == name


def test_log_with_a_level_reports_the_callers_call_site(configure_memory: Any) -> None:
    """``log(level, ...)`` names the caller in ``log.origin.*``, as the level methods do."""
    memory: MemorySink = configure_memory(callsite=True)
    log = servicelog.get_logger("app")
    log.log("INFO", "via log()")
    log.log(LogLevel.WARNING, "with stack_info", stack_info=True)
    for record in memory.records:
        assert record["log.origin.file.name"] == "test_levels.py"
        assert (
            record["log.origin.function"] == "test_log_with_a_level_reports_the_callers_call_site"
        )
    assert "test_levels.py" in memory.records[1]["log.origin.stack"].splitlines()[-2]


# --- one level rule for every front-end ------------------------------------------------------
FRONT_ENDS = ("servicelog", "stdlib", "structlog", "loguru")
ALL_FRONT_ENDS = servicelog.CaptureOptions(
    stdlib=True, warnings=False, excepthooks=False, structlog=True, loguru=True
)
_METHOD = {10: "debug", 20: "info", 30: "warning", 40: "error"}


def _logger(front_end: str, name: str) -> Any:
    """Logger *name* of *front_end*, with ``debug``/``info``/``warning``/``error`` methods."""
    if front_end == "servicelog":
        return servicelog.get_logger(name)
    if front_end == "stdlib":
        return logging.getLogger(name)
    if front_end == "structlog":
        import structlog

        return structlog.get_logger(name)
    from loguru import logger

    # loguru names a record after the module that logged; patch() stands in for others.
    return logger.patch(lambda r: r.update(name=name))  # type: ignore[call-arg]


def _log(front_end: str, name: str, levelno: int, message: str) -> None:
    """Log *message* at *levelno* from logger *name* through *front_end*."""
    getattr(_logger(front_end, name), _METHOD[levelno])(message)


def _configure(memory: MemorySink, level: str, levels: dict[str, str] | None = None) -> None:
    """servicelog configured for these tests: every front-end taken over, into *memory*."""
    servicelog.configure(
        stream="none", sinks=[memory], capture=ALL_FRONT_ENDS, level=level, levels=levels
    )


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_every_front_end_follows_the_per_logger_levels(front_end: str) -> None:
    """A record from logger N passes iff its level is at least the level servicelog gives N
    (its own, its nearest dotted parent's, or the default), whichever API logged it."""
    memory = MemorySink()
    _configure(memory, "INFO", {"noisy": "ERROR", "chatty": "DEBUG"})
    cases = [
        ("noisy", 20, False),
        ("noisy.child", 30, False),
        ("noisy", 40, True),
        ("chatty", 10, True),
        ("chatty.child", 10, True),
        ("other", 10, False),
        ("other", 20, True),
    ]
    for name, levelno, _ in cases:
        _log(front_end, name, levelno, f"{name} {levelno}")
    expected = [f"{name} {levelno}" for name, levelno, passes in cases if passes]
    assert [r["message"] for r in memory.records] == expected


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_a_new_level_reaches_loggers_already_in_use(front_end: str) -> None:
    """configure() again changes the level of loggers created (and cached: structlog's
    module-level loggers) under the previous configuration, at once."""
    memory = MemorySink()

    def configure(level: str) -> None:
        _configure(memory, level)

    log = _logger(front_end, "app")  # the usual module-level logger, made at import
    configure("INFO")
    log.info("first use")
    configure("DEBUG")
    log.debug("debug under DEBUG")
    configure("ERROR")
    log.info("info under ERROR")
    log.error("error under ERROR")
    expected = ["first use", "debug under DEBUG", "error under ERROR"]
    assert [r["message"] for r in memory.records] == expected


def test_a_cached_structlog_logger_follows_reset(capsys: pytest.CaptureFixture[str]) -> None:
    """After reset(), a structlog logger cached while servicelog was configured logs through
    the structlog configuration restored, not into servicelog."""
    import structlog

    memory = MemorySink()
    _configure(memory, "INFO")
    log = structlog.get_logger("app")
    log.info("configured")
    servicelog.reset()
    log.info("after reset")
    assert [r["message"] for r in memory.records] == ["configured"]
    assert "after reset" in capsys.readouterr().out  # structlog's default PrintLogger


def test_a_structlog_configuration_saved_under_servicelog_and_put_back_logs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A fixture that saves structlog's configuration while servicelog is configured and puts
    it back after reset(): a call made then must log, not recurse forever."""
    import structlog

    servicelog.configure(stream="none", sinks=[MemorySink()], capture=ALL_FRONT_ENDS)
    saved = structlog.get_config()
    servicelog.reset()
    structlog.configure(**saved)
    try:
        structlog.get_logger("z").info("hello")  # raised RecursionError
    finally:
        structlog.reset_defaults()
    assert "hello" in capsys.readouterr().err  # servicelog's console, unconfigured: stderr


def test_a_stdlib_loggers_own_level_only_filters_more() -> None:
    """A library that lowers its own logger (uvicorn's dictConfig, SQLAlchemy's echo=True)
    does not undercut ``level``; raising one filters more; ``levels=`` opens a name up."""
    memory = MemorySink()
    _configure(memory, "WARNING", {"myapp.db": "DEBUG"})
    engine = logging.getLogger("sqlalchemy.engine.Engine")
    quiet = logging.getLogger("myapp.quiet")
    engine.setLevel(logging.INFO)  # what echo=True does
    quiet.setLevel(logging.ERROR)
    try:
        engine.info("SELECT 1")
        logging.getLogger("myapp.db.pool").debug("checkout")
        quiet.warning("dropped")
        logging.getLogger("myapp.other").warning("kept")
    finally:
        engine.setLevel(logging.NOTSET)
        quiet.setLevel(logging.NOTSET)
    assert [r["message"] for r in memory.records] == ["checkout", "kept"]


def test_levels_set_stdlib_logger_levels_and_reset_restores_them() -> None:
    """configure() gives the root and each ``levels`` name's stdlib logger servicelog's level;
    reset() puts the previous levels back."""
    root, noisy = logging.getLogger(), logging.getLogger("noisy")
    before = root.level, noisy.level
    servicelog.configure(stream="none", capture=ALL_FRONT_ENDS, level=30, levels={"noisy": 40})
    assert (root.level, noisy.level) == (30, 40)
    servicelog.configure(stream="none", capture=ALL_FRONT_ENDS, level=20)
    assert (root.level, noisy.level) == (20, before[1])
    servicelog.reset()
    assert (root.level, noisy.level) == before


def test_sqlalchemy_echo_goes_through_servicelog_once(capfd: pytest.CaptureFixture[str]) -> None:
    """The real ``create_engine(echo=True)`` on SQLite: SQLAlchemy gives its engine logger a
    stdout handler of its own when it has none, which printed every statement a second time.
    Its records follow the level rule: written with ``levels`` opening the name, not without."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    memory = MemorySink()
    for levels, expected in (({"sqlalchemy.engine": "INFO"}, True), ({}, False)):
        memory.records.clear()
        _configure(memory, "WARNING", levels)
        engine = sqlalchemy.create_engine("sqlite://", echo=True)
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 42"))
        engine.dispose()
        messages = [r["message"] for r in memory.records]
        assert ("SELECT 42" in messages) is expected
        assert "SELECT 42" not in capfd.readouterr().out
    servicelog.reset()
    assert not any(
        isinstance(h, logging.NullHandler)
        for h in logging.getLogger("sqlalchemy.engine.Engine").handlers
    )
