from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest

import servicelog
from servicelog import ConfigError
from servicelog.frontends.stdlib import ServicelogHandler
from servicelog.sinks import MemorySink

from .conftest import NO_CAPTURE


@pytest.mark.parametrize(
    ("profile", "level", "fmt", "callsite", "locals_"),
    [
        ("development", 10, "console", True, True),
        ("production", 20, "json", False, False),
        ("debug", 5, "console", True, True),
    ],
)
def test_profiles_set_their_defaults(
    profile: str, level: int, fmt: str, callsite: bool, locals_: bool
) -> None:
    settings = servicelog.configure(profile=profile, stream="none", capture=NO_CAPTURE)
    assert settings.profile == profile
    assert settings.levels.level == level
    assert settings.output.format == fmt
    assert settings.record.callsite is callsite
    assert settings.record.show_locals is locals_


def test_profile_comes_from_servicelog_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICELOG_ENV", "production")
    assert servicelog.configure(stream="none", capture=NO_CAPTURE).profile == "production"


def test_default_profile_is_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVICELOG_ENV", raising=False)
    assert servicelog.configure(stream="none", capture=NO_CAPTURE).profile == "development"


def test_environment_overrides_profile_defaults_but_not_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SERVICELOG_LEVEL", "WARNING")
    monkeypatch.setenv("SERVICELOG_LEVELS", "sqlalchemy.engine=ERROR, httpx=debug")
    monkeypatch.setenv("SERVICELOG_SERVICE", "from-env")
    s = servicelog.configure(profile="production", stream="none", capture=NO_CAPTURE)
    assert s.levels.level == 30
    assert dict(s.levels.levels) == {"sqlalchemy.engine": 40, "httpx": 10}
    assert s.service.name == "from-env"
    s = servicelog.configure(level="INFO", service="shop", stream="none", capture=NO_CAPTURE)
    assert s.levels.level == 20
    assert s.service.name == "shop"


@pytest.mark.parametrize(
    ("kwargs", "option", "shown"),
    [
        ({"profile": "staging"}, "profile", "'staging'"),
        ({"level": "LOUD"}, "level", "'LOUD'"),
        ({"format": "xml"}, "format", "'xml'"),
        ({"stream": "stdlog"}, "stream", "'stdlog'"),
        ({"levels": {"httpx": "NOISY"}}, "levels['httpx']", "'NOISY'"),
        ({"levels": 5}, "levels", "5"),
        ({"max_line_bytes": 10}, "max_line_bytes", "10"),
        ({"callsite": "maybe"}, "callsite", "'maybe'"),
        ({"service": ""}, "service", "''"),
        ({"color": "yes"}, "color", "'yes'"),
        ({"profile": "production", "show_locals": True}, "show_locals", "True"),
        ({"sinks": ["not a sink"]}, "sinks", "'not a sink'"),
        ({"profile": ""}, "profile", "''"),
        ({"level": "²"}, "level", "'²'"),
        ({"level": "٣٠"}, "level", "'٣٠'"),
        ({"max_line_bytes": True}, "max_line_bytes", "True"),
        ({"max_line_bytes": 2048.5}, "max_line_bytes", "2048.5"),
        ({"max_line_bytes": 64 * 1024 * 1024 + 1}, "max_line_bytes", "67108865"),
        ({"max_line_bytes": "4_096"}, "max_line_bytes", "'4_096'"),
        ({"file": ""}, "file", "''"),
        ({"strict": "no"}, "strict", "(from argument) got 'no'"),
        ({"rate_limit": 1}, "rate_limit", "(from argument) got 1"),
    ],
)
def test_bad_configuration_fails_naming_option_value_and_allowed(
    kwargs: dict[str, Any], option: str, shown: str
) -> None:
    with pytest.raises(ConfigError) as info:
        servicelog.configure(capture=NO_CAPTURE, **kwargs)
    message = str(info.value)
    assert f"option {option!r}" in message
    assert shown in message
    assert "expected" in message
    assert servicelog.settings() is None  # nothing was half-applied


def test_bad_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICELOG_LEVEL", "chatty")
    with pytest.raises(ConfigError, match="environment variable SERVICELOG_LEVEL"):
        servicelog.configure(capture=NO_CAPTURE)


def test_configure_is_idempotent_for_stdlib_handlers() -> None:
    """Configuring twice leaves exactly one servicelog handler on the root logger."""
    for _ in range(3):
        servicelog.configure(stream="none")
    root = logging.getLogger()
    assert sum(isinstance(h, ServicelogHandler) for h in root.handlers) == 1


def test_reset_restores_the_root_logger() -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    servicelog.configure(stream="none", level="ERROR")
    assert root.level == 40
    servicelog.reset()
    assert (list(root.handlers), root.level) == before


def test_per_logger_levels_follow_dotted_prefixes(configure_memory: Any) -> None:
    sink: MemorySink = configure_memory(level="INFO", levels={"shop.db": "WARNING", "x": 10})
    servicelog.get_logger("shop.db.pool").info("hidden")
    servicelog.get_logger("shop.db.pool").warning("shown")
    servicelog.get_logger("shop.dbx").info("sibling, not child: shown")
    servicelog.get_logger("x.y").debug("lower than default: shown")
    assert [r["message"] for r in sink.records] == [
        "shown",
        "sibling, not child: shown",
        "lower than default: shown",
    ]


def test_per_logger_levels_apply_to_stdlib_loggers(memory: MemorySink) -> None:
    servicelog.configure(
        stream="none", sinks=[memory], level="INFO", levels={"sqlalchemy.engine": "WARNING"}
    )
    logging.getLogger("sqlalchemy.engine.Engine").info("SELECT 1")
    logging.getLogger("sqlalchemy.engine.Engine").warning("slow")
    logging.getLogger("other").info("kept")
    assert [r["message"] for r in memory.records] == ["slow", "kept"]


def test_loggers_created_before_configure_follow_it(configure_memory: Any) -> None:
    log = servicelog.get_logger("early")
    sink: MemorySink = configure_memory(level="WARNING")
    log.info("dropped")
    log.error("kept")
    assert [r["message"] for r in sink.records] == ["kept"]


def test_a_bound_logger_carries_its_fields_and_builds_only_the_methods_it_uses(
    configure_memory: Any,
) -> None:
    """``bind()`` is cheap enough to call per request: its level methods are built on first
    use. A configuration change reaches methods already used and those not used yet."""
    sink: MemorySink = configure_memory(level="INFO")
    bound = servicelog.get_logger("shop").bind(order_id=7)
    built = [m for m in ("info", "warning", "error", "debug") if _slot_set(bound, m)]
    assert built == []
    bound.info("placed")
    assert [m for m in ("info", "warning", "error") if _slot_set(bound, m)] == ["info"]
    configure_memory(level="WARNING")
    bound.info("hidden now")
    bound.warning("late")
    configure_memory(level="DEBUG")
    bound.debug("shown now")
    assert [(r["message"], r["order_id"]) for r in sink.records] == [
        ("placed", 7),
        ("late", 7),
        ("shown now", 7),
    ]
    with pytest.raises(AttributeError, match="infoo"):
        bound.infoo  # noqa: B018 - the attribute access is the test


def test_a_method_built_while_configure_runs_follows_the_new_configuration(
    configure_memory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If another thread reconfigures while a bound logger's level method is being built, the
    method is built again: it never keeps the configuration it started from."""
    import servicelog.logger as logger_module

    sink: MemorySink = configure_memory(level="INFO")
    log = servicelog.get_logger("race").bind(job=1)
    build = logger_module._make_method
    calls = []

    def build_during_configure(*args: Any, **kwargs: Any) -> Any:
        method = build(*args, **kwargs)
        if not calls:
            calls.append(1)
            configure_memory(level="ERROR")  # "another thread", between build and store
        return method

    monkeypatch.setattr(logger_module, "_make_method", build_during_configure)
    log.info("built under INFO, stored under ERROR")
    log.error("kept")
    assert [r["message"] for r in sink.records] == ["kept"]


def _slot_set(obj: object, name: str) -> bool:
    """Whether a slot holds a value, without triggering the lazy build."""
    try:
        object.__getattribute__(obj, name)
    except AttributeError:
        return False
    return True


def test_console_output_goes_to_the_chosen_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    servicelog.configure(profile="development", capture=NO_CAPTURE, color=False)
    servicelog.get_logger("shop").info("hello", n=1)
    assert "INFO" in out.getvalue() and "hello" in out.getvalue() and "n=1" in out.getvalue()


def test_production_writes_json_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    servicelog.configure(profile="production", capture=NO_CAPTURE, service="shop")
    servicelog.get_logger("shop").info("hello")
    servicelog.flush()
    out = capsys.readouterr().out
    assert out.startswith('{"@timestamp":') and '"service.name":"shop"' in out


def test_a_configure_that_fails_leaves_the_configuration_in_force(tmp_path: Any) -> None:
    """configure(file=<a symlink>) raises (ELOOP) before anything changes: the previous
    configuration stays in force, and its file sink goes on writing every record."""
    good = tmp_path / "good.jsonl"
    servicelog.configure(stream="none", file=good, capture=NO_CAPTURE)
    log = servicelog.get_logger("app")
    log.info("before")
    (tmp_path / "bad.jsonl").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        servicelog.configure(stream="stdout", file=tmp_path / "bad.jsonl", capture=NO_CAPTURE)
    for i in range(10):
        log.info("after the failed configure", i=i)
    servicelog.flush()
    settings = servicelog.settings()
    assert settings is not None and settings.output.file == good
    stats = servicelog.stats()
    assert stats["sinks"][f"file:{good}"]["written"] == 11
    assert stats["lost"] == 0
    assert good.read_bytes().count(b"\n") == 11
    assert not (tmp_path / "elsewhere").exists()


def test_configuring_again_with_the_same_sinks_keeps_them_open(tmp_path: Any) -> None:
    """configure() again with routes to the same sink objects (to change the level, say):
    the sinks stay open and write every record; none is dropped as "closed"."""
    from servicelog.sinks import file_set

    routes = file_set(tmp_path, error=False, performance=False)
    servicelog.configure(stream="none", sinks=routes, capture=NO_CAPTURE)
    log = servicelog.get_logger("shop")
    log.info("one")
    servicelog.configure(stream="none", level="DEBUG", sinks=routes, capture=NO_CAPTURE)
    for i in range(100):
        log.info("after reconfigure", i=i)
    servicelog.flush()
    counters = servicelog.stats()["sinks"][routes[0].sink.name]
    assert counters == {"produced": 101, "written": 101, "dropped": {}, "queued": 0}
    assert (tmp_path / "app.jsonl").read_bytes().count(b"\n") == 101


def test_a_closed_sink_is_refused(tmp_path: Any) -> None:
    """A sink closed by reset() would drop every record: configure() says so instead."""
    from servicelog.render.json import JsonRenderer
    from servicelog.sinks import FileSink

    sink = FileSink(tmp_path / "app.jsonl", JsonRenderer())
    servicelog.configure(stream="none", sinks=[sink], capture=NO_CAPTURE)
    servicelog.reset()
    with pytest.raises(ConfigError, match="an open sink"):
        servicelog.configure(stream="none", sinks=[sink], capture=NO_CAPTURE)


def test_a_directory_as_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every record would fail to open it: refused up front, from an argument or the env."""
    with pytest.raises(ConfigError, match=r"option 'file' \(from argument\).*not a directory"):
        servicelog.configure(file=tmp_path, stream="none", capture=NO_CAPTURE)
    monkeypatch.setenv("SERVICELOG_FILE", str(tmp_path))
    with pytest.raises(ConfigError, match="environment variable SERVICELOG_FILE"):
        servicelog.configure(stream="none", capture=NO_CAPTURE)
    assert servicelog.settings() is None


def test_an_empty_profile_variable_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICELOG_ENV", "")
    assert servicelog.configure(stream="none", capture=NO_CAPTURE).profile == "development"


@pytest.mark.parametrize(("value", "expected"), [(1024, 1024), (2048.0, 2048), (" 4096 ", 4096)])
def test_max_line_bytes_takes_integral_values(value: object, expected: int) -> None:
    settings = servicelog.configure(max_line_bytes=value, stream="none", capture=NO_CAPTURE)  # type: ignore[arg-type]
    assert settings.output.max_line_bytes == expected


def test_capture_false_turns_every_capture_off() -> None:
    settings = servicelog.configure(capture=False, stream="none")
    assert settings.capture == servicelog.CaptureOptions(
        stdlib=False, warnings=False, excepthooks=False, structlog=False, loguru=False
    )


@pytest.mark.parametrize("bad", [True, 0, "", {"stdlib": False}])
def test_capture_takes_capture_options_or_false_only(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"option 'capture' \(from argument\) got"):
        servicelog.configure(capture=bad, stream="none")  # type: ignore[arg-type]
    assert servicelog.settings() is None


def test_processors_must_be_callables() -> None:
    with pytest.raises(servicelog.ConfigError, match="processors"):
        servicelog.configure(stream="none", processors=[1])  # type: ignore[list-item]


def test_processors_given_as_a_generator_all_run() -> None:
    """Checked and then used: a generator must not be used up by the check."""
    seen: list[str] = []

    def mark(record: dict[str, Any], levelno: int) -> dict[str, Any]:
        seen.append(record["message"])
        return record

    servicelog.configure(stream="none", processors=(p for p in [mark]), capture=NO_CAPTURE)
    servicelog.get_logger("t").info("hello")
    assert seen == ["hello"]
