"""The JSON line is the public contract: ECS rules, one line, valid UTF-8, capped."""

from __future__ import annotations

import logging
import math
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import servicelog
from servicelog.render.json import JsonRenderer
from servicelog.sinks import MemorySink

# The rules of Elastic's ecs-logging spec (spec/spec.json in elastic/ecs-logging): required
# fields, their types and positions, which may be nested, and field names that must be dotted.
ECS_SPEC: dict[str, dict[str, Any]] = {
    "@timestamp": {"type": "datetime", "required": True, "index": 0},
    "log.level": {"type": "string", "required": True, "index": 1, "nesting_allowed": False},
    "message": {"type": "string", "required": True, "index": 2},
    "ecs.version": {"type": "string", "required": True},
    "service.name": {"type": "string"},
    "event.dataset": {"type": "string"},
    "log.logger": {"type": "string"},
    "process.thread.name": {"type": "string"},
    "trace.id": {"type": "string"},
    "error.type": {"type": "string"},
    "error.message": {"type": "string"},
    "error.stack_trace": {"type": "string"},
}


def check_ecs(line: bytes) -> dict[str, Any]:
    """Assert one line follows the ecs-logging rules; return the parsed object."""
    assert line.endswith(b"\n") and line.count(b"\n") == 1, "exactly one line"
    line.decode("utf-8")  # valid UTF-8
    obj = orjson.loads(line)
    keys = list(obj)
    for name, rule in ECS_SPEC.items():
        if rule.get("required"):
            assert name in obj, f"required field {name} missing"
        if "index" in rule:
            assert keys[rule["index"]] == name, f"{name} must be at position {rule['index']}"
        if name in obj:
            value = obj[name]
            if rule["type"] in ("string", "datetime"):
                assert isinstance(value, str), f"{name} must be a string"
            if rule["type"] == "datetime":
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
                assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0
                assert len(value.split(".")[1]) == 7, "microseconds and Z"
    assert "log" not in obj, "log.level may not be nested"
    # Dotted and nested keys must not collide: no key is both a leaf and an object's prefix.
    for key in keys:
        for other in keys:
            assert not other.startswith(key + "."), f"{key!r} is a leaf and a prefix of {other!r}"
    return obj


def configure_lines(**kwargs: Any) -> MemorySink:
    sink = MemorySink(JsonRenderer(kwargs.pop("max_line_bytes", 16384)))
    from .conftest import NO_CAPTURE

    kwargs.setdefault("capture", NO_CAPTURE)
    servicelog.configure(service="shop", version="1.2.3", stream="none", sinks=[sink], **kwargs)
    return sink


def test_a_record_follows_the_ecs_logging_spec() -> None:
    sink = configure_lines(profile="production", callsite=True)
    with servicelog.bound_context(request_id="r-1", user_id=42):
        servicelog.get_logger("shop.orders").info("order placed", order_id=7, total=12.5)
    obj = check_ecs(sink.lines[0])
    assert obj["log.level"] == "info"
    assert obj["service.name"] == "shop"
    assert obj["service.version"] == "1.2.3"
    assert obj["service.environment"] == "production"
    assert obj["event.dataset"] == "shop.log"
    assert obj["log.logger"] == "shop.orders"
    assert obj["log.origin.file.name"] == "test_json_record.py"
    assert obj["log.origin.function"] == "test_a_record_follows_the_ecs_logging_spec"
    assert isinstance(obj["log.origin.file.line"], int)
    assert isinstance(obj["process.pid"], int)
    assert obj["process.thread.name"] == "MainThread"
    assert (obj["request_id"], obj["user_id"], obj["order_id"], obj["total"]) == (
        "r-1",
        42,
        7,
        12.5,
    )


def test_snapshot_of_a_production_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exact line: any change to the format must be a visible decision."""
    monkeypatch.setattr("servicelog.logger._time_ns", lambda: 1_764_428_000_123_456_789)
    monkeypatch.setattr("os.getpid", lambda: 4242)
    sink = configure_lines(profile="production")
    with servicelog.bound_context(request_id="r-1"):
        servicelog.get_logger("shop").info("order placed", order_id=7)
    assert sink.lines[0] == (
        b'{"@timestamp":"2025-11-29T14:53:20.123456Z","log.level":"info",'
        b'"message":"order placed","log.logger":"shop","process.thread.name":"MainThread",'
        b'"request_id":"r-1","order_id":7,"ecs.version":"8.11.0","service.name":"shop",'
        b'"service.version":"1.2.3","service.environment":"production",'
        b'"event.dataset":"shop.log","process.pid":4242}\n'
    )
    assert sink.records[0]["service.name"] == "shop", "captured records carry them too"


def _raise_chain() -> None:
    try:
        raise KeyError("inner")
    except KeyError as exc:
        err = ValueError("outer")
        err.add_note("a note for the reader")
        raise err from exc


def test_exception_fields_include_chain_and_notes() -> None:
    sink = configure_lines(profile="production")
    try:
        _raise_chain()
    except ValueError:
        servicelog.get_logger("shop").exception("failed")
    obj = check_ecs(sink.lines[0])
    assert obj["log.level"] == "error"
    assert obj["error.type"] == "ValueError"
    assert obj["error.message"] == "outer"
    trace = obj["error.stack_trace"]
    assert "KeyError: 'inner'" in trace
    assert "direct cause" in trace
    assert "a note for the reader" in trace
    assert "_raise_chain" in trace


def test_exception_group_members_are_in_the_stack_trace() -> None:
    sink = configure_lines(profile="production")
    group = ExceptionGroup("many", [ValueError("first"), TypeError("second")])
    servicelog.get_logger("shop").error("batch failed", exc_info=group)
    obj = check_ecs(sink.lines[0])
    assert obj["error.type"] == "ExceptionGroup"
    assert "ValueError: first" in obj["error.stack_trace"]
    assert "TypeError: second" in obj["error.stack_trace"]


def test_production_tracebacks_have_no_locals_development_ones_do() -> None:
    def fail() -> None:
        secret_local = "hunter2"  # noqa: F841 - the point of the test
        raise RuntimeError("x")

    for profile, expect in (("production", False), ("development", True)):
        sink = configure_lines(profile=profile)
        try:
            fail()
        except RuntimeError:
            servicelog.get_logger("t").exception("boom")
        assert ("hunter2" in orjson.loads(sink.lines[-1])["error.stack_trace"]) is expect


class Weird:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")


class Huge:
    def __repr__(self) -> str:
        return "x" * 10_000_000


def _cycle() -> dict[str, Any]:
    d: dict[str, Any] = {"a": 1}
    d["self"] = d
    return d


@pytest.mark.parametrize(
    ("value", "check"),
    [
        ({1, 2, 3}, lambda v: v == [1, 2, 3]),
        (Decimal("12.50"), lambda v: v == "12.50"),
        (uuid.UUID(int=1), lambda v: v == "00000000-0000-0000-0000-000000000001"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), lambda v: v.startswith("2026-01-02T03:04:05")),
        (b"caf\xc3\xa9\xff", lambda v: v == "café\\xff"),
        (math.nan, lambda v: v is None),
        (math.inf, lambda v: v is None),
        (2**70, lambda v: v == str(2**70)),
        # past the interpreter's 4,300-digit limit str() raises: it cost the fields after it
        pytest.param(
            10**5000,
            lambda v: v == "<int of about 5001 digits, ending ...00000000000000000000>",
            id="10**5000",
        ),
        pytest.param(
            -(10**5000) - 7,
            lambda v: v.startswith("-<int of about 5001") and v.endswith("07>"),
            id="-10**5000-7",
        ),
        ({1: "int key", (2, 3): "tuple key"}, lambda v: v["1"] == "int key"),
        ("lone \udc80 surrogate", lambda v: "surrogate" in v),
        (Weird(), lambda v: "unrepresentable" in v and "RuntimeError" in v),
        (Huge(), lambda v: len(v) < 5000),
        (_cycle(), lambda v: "<cycle>" in str(v)),
        (Path("/tmp/x"), lambda v: v == "/tmp/x"),
        (object(), lambda v: v.startswith("<object object")),
    ],
)
def test_values_json_cannot_encode_are_rendered_safely(value: Any, check: Any) -> None:
    sink = configure_lines(profile="production")
    servicelog.get_logger("t").info("odd value", value=value, sibling="kept")
    obj = check_ecs(sink.lines[0])
    assert check(obj["value"]), obj["value"]
    assert obj["sibling"] == "kept"


class StrExplodes(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str exploded")


class AttributeTrap:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"getattr {name}")


class FormatExplodes:
    def __format__(self, spec: str) -> str:
        raise RuntimeError("format exploded")

    def __str__(self) -> str:
        raise RuntimeError("str exploded")


def test_hostile_exceptions_and_objects_are_written_not_fatal() -> None:
    """Catalog I4, the rest: an exception whose ``__str__`` raises, a cyclic ``__cause__`` /
    ``__context__`` chain, an object whose ``__getattr__`` raises, one whose ``__format__`` and
    ``__str__`` raise (as a value and as a ``%s`` argument): every record is written, with
    placeholders, and servicelog counts no failure of its own."""
    sink = configure_lines(profile="production")
    log = servicelog.get_logger("t")
    try:
        raise StrExplodes
    except StrExplodes:
        log.exception("bad str")
    first, second = ValueError("first"), KeyError("second")
    first.__cause__, second.__context__ = second, first
    try:
        raise first
    except ValueError:
        log.exception("cyclic chain")
    log.info("values", trap=AttributeTrap(), fmt=FormatExplodes())
    log.info("message %s", FormatExplodes())
    records = [check_ecs(line) for line in sink.lines]
    assert [r["message"][:13] for r in records] == [
        "bad str", "cyclic chain", "values", "message %s (<"
    ]  # fmt: skip
    assert "unprintable StrExplodes" in records[0]["error.message"]
    assert (
        records[1]["error.type"] == "ValueError" and "KeyError" in records[1]["error.stack_trace"]
    )
    assert "AttributeTrap object" in records[2]["trap"] and "FormatExplodes" in records[2]["fmt"]
    assert servicelog.stats()["errors"] == {}


def test_deep_nesting_is_cut_not_fatal() -> None:
    sink = configure_lines(profile="production")
    deep: Any = "leaf"
    for _ in range(10_000):
        deep = [deep]
    servicelog.get_logger("t").info("deep", value=deep)
    obj = check_ecs(sink.lines[0])
    assert "<max depth>" in orjson.dumps(obj).decode()


@pytest.mark.parametrize(
    "evil",
    [
        "a\nb",
        "a\r\nb",
        "a\u2028b",
        "a\u2029b",
        "a\x85b",
        "\x1b[31mred\x1b[0m",
        "a\x00b",
        "\u202eevil",
    ],
)
def test_line_breaking_characters_cannot_forge_a_line(evil: str) -> None:
    sink = configure_lines(profile="production")
    servicelog.get_logger(f"log{evil}").info(f"msg {evil}", **{f"key{evil}": evil})
    line = sink.lines[0]
    assert line.count(b"\n") == 1
    text = line.decode("utf-8")
    assert len(text.splitlines()) == 1, "no Unicode line break survives raw"
    assert "\x1b" not in text
    obj = check_ecs(line)
    assert obj["message"] == f"msg {evil}"  # escaped, not lost


def test_long_records_are_cut_to_max_line_bytes_and_marked() -> None:
    sink = configure_lines(profile="production", max_line_bytes=2048)
    # Both texts are under the redaction policy's max_text (64 KiB), so only the renderer cuts.
    servicelog.get_logger("t").info("big " + "m" * 50_000, blob="b" * 60_000, small=1)
    line = sink.lines[0]
    assert len(line) <= 2048
    obj = check_ecs(line)
    assert obj["truncated"] is True
    assert obj["small"] == 1
    assert obj["message"].startswith("big mmm")
    assert obj["log.original_bytes"] > 110_000


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda log: log.info("m" * (1 << 20)), id="1 MiB message"),
        pytest.param(lambda log: log.info("x", blob="b" * (1 << 20)), id="1 MiB value"),
        pytest.param(
            lambda log: log.info("x", **{f"k{i}": i for i in range(10**5)}), id="1e5 keys"
        ),
        pytest.param(lambda log: log.info("x", items=list(range(10**6))), id="1e6-item list"),
        pytest.param(
            lambda log: logging.getLogger("app").info(
                "x", extra={f"k{i}": i for i in range(10**5)}
            ),
            id="1e5 stdlib extra keys",
        ),
    ],
)
def test_oversized_input_gives_one_marked_line_within_the_cap(call: Any) -> None:
    """Catalog item I3: whatever the size of the input, one valid line of at most
    ``max_line_bytes``, marked as cut (``truncated``, ``log.dropped_fields`` or a container's
    ``"<N more items>"``), with its head."""
    capture = servicelog.CaptureOptions(
        stdlib=True, warnings=False, excepthooks=False, structlog=False, loguru=False
    )
    sink = configure_lines(profile="production", capture=capture)
    call(servicelog.get_logger("t"))
    servicelog.flush()
    [line] = sink.lines
    assert len(line) <= 16384
    obj = check_ecs(line)
    marked = obj.get("truncated") is True or obj.get("log.dropped_fields", 0) > 0
    assert marked or "more items>" in line.decode()
    assert obj["log.level"] == "info" and obj["message"].startswith(("x", "mmm"))


def test_the_safe_path_counts_items_across_nesting_and_marks_what_it_cuts() -> None:
    """The renderer's safe path (a record orjson refused, or a line over the cap) looks at
    10,000 container items in all (a renderer: one per byte of its line), not a million:
    containers reached after that are written as their marker alone. A set longer than 1,000
    items says how many it dropped, as a list does, on the fast path too."""
    from servicelog.render.json import JsonRenderer, jsonable

    out = jsonable([list(range(1000))] * 1000)
    assert len(out) == 1000
    assert out[8] == list(range(1000))  # the outer list's 1,000 and nine inner lists: 10,000
    assert out[9] == out[999] == "<1000 items cut>"
    shared = {f"k{i}": i for i in range(1000)}
    out = jsonable({"a": [shared] * 20})
    # 1 + 20 items, nine whole dicts, then what is left (979 items) and the marker of the rest
    assert out["a"][8] == shared and len(out["a"][9]) == 980
    assert out["a"][9]["<truncated>"] == "21 more items"
    assert out["a"][10] == out["a"][19] == "<1000 items cut>"
    kept = jsonable(set(range(1500)))
    assert kept[:1000] == list(range(1000)) and kept[1000:] == ["<500 more items>"]
    line = orjson.loads(JsonRenderer()({"message": "m", "s": set(range(1500))}))
    assert line["s"][-1] == "<500 more items>"


def test_a_redacted_record_is_not_cut_again_by_the_renderer() -> None:
    """The renderer counts one item per byte of its line, more than a redacted record holds
    (``max_total_items``, 10,000): a redaction marker is written as it is, not cut again into
    a marker of a marker."""
    from servicelog.redaction import RedactionPolicy
    from servicelog.render.json import JsonRenderer, _prepared

    value = {"b": [list(range(999))] * 10, "c": list(range(6))}
    out = RedactionPolicy()({"message": "m", "v": value}, 20)
    assert out["v"]["b"][9][-1] == "<3 more items>" and out["v"]["c"] == "<6 items cut>"
    # What the renderer makes of the record when its line is too long: the same value.
    assert _prepared(out, JsonRenderer().max_line_bytes)["v"][1] == out["v"]
    assert orjson.loads(JsonRenderer()(out))["truncated"] is True


@pytest.mark.parametrize("where", ["message", "value"])
def test_a_huge_text_costs_at_most_twice_its_size_in_memory(where: str) -> None:
    """Catalog item I3: peak extra memory <= 2x the input. The policy cuts the text to
    ``max_text`` before anything scans, copies or renders it (it was ~4.7x, 256 KiB scanned)."""
    sink = configure_lines(profile="production")
    text = "m" * (1 << 20)
    log = servicelog.get_logger("t")
    log.info("warm-up")
    tracemalloc.start()
    try:
        if where == "message":
            log.info(text)
        else:
            log.info("x", blob=text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= 2 * len(text), f"peak {peak} bytes for a {len(text)}-byte text"
    assert len(sink.lines[-1]) <= 16384


def test_many_fields_are_cut_to_max_line_bytes() -> None:
    sink = configure_lines(profile="production", max_line_bytes=1024)
    servicelog.get_logger("t").info("wide", **{f"k{i}": "v" * 50 for i in range(2000)})
    line = sink.lines[0]
    assert len(line) <= 1024
    obj = check_ecs(line)
    assert obj["truncated"] is True and obj["log.dropped_fields"] > 0


def test_nan_is_null_on_the_slow_path_too() -> None:
    """A field of another kind sends the whole record down the slow path: a float field's
    JSON type must not change with it."""
    sink = configure_lines()
    servicelog.get_logger("t").info("m", ratio=math.nan, big=2**70, peak=-math.inf)
    obj = orjson.loads(sink.lines[0])
    assert (obj["ratio"], obj["peak"], obj["big"]) == (None, None, str(2**70))


@pytest.mark.parametrize("escaped", ["\x1b", "\u2028"])
def test_many_fields_and_a_message_of_escaped_characters_stay_within_the_cap(
    escaped: str,
) -> None:
    """Each of these characters is written as 6 bytes: the head is cut in characters, so it
    is cut shorter until it fits."""
    for cap in (1024, 2048):
        sink = configure_lines(profile="production", max_line_bytes=cap)
        fields = {f"field_{i}": "v" * 80 for i in range(60)}
        servicelog.get_logger("t").info(escaped * 600, **fields)
        (line,) = sink.lines
        assert len(line) <= cap
        assert check_ecs(line)["truncated"] is True


class RaisingZone(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta:
        raise RuntimeError("tz database gone")


class WrongZone(tzinfo):
    def utcoffset(self, dt: datetime | None) -> Any:
        return 5  # not a timedelta: orjson wrote a garbage offset


@pytest.mark.parametrize("zone", [RaisingZone(), WrongZone(), timezone(timedelta(hours=2))])
def test_a_datetime_with_any_tzinfo_is_written_never_fatal(tmp_path: Path, zone: tzinfo) -> None:
    """orjson 3.13 crashes the process (SIGSEGV) on an aware datetime whose ``utcoffset()``
    raises: datetimes never reach it; Python's ``isoformat()`` checks the zone."""
    from .conftest import NO_CAPTURE

    path = tmp_path / "app.jsonl"
    servicelog.configure(service="shop", stream="none", file=path, capture=NO_CAPTURE)
    when = datetime(2020, 1, 1, 12, 0, tzinfo=zone)
    servicelog.get_logger("t").info("placed", when=when, nested={"at": [when]})
    servicelog.flush()
    (obj,) = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    if isinstance(zone, timezone):
        assert obj["when"] == obj["nested"]["at"][0] == "2020-01-01T12:00:00+02:00"
    else:
        assert obj["when"].startswith("datetime.datetime(2020, 1, 1, 12, 0, tzinfo=")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(message=st.text(), fields=st.dictionaries(st.text(min_size=1, max_size=20), json_values))
def test_any_record_is_one_valid_utf8_json_line(message: str, fields: dict[str, Any]) -> None:
    renderer = JsonRenderer(4096)
    record = {"@timestamp": "2026-11-29T00:00:00.000000Z", "log.level": "info", "message": message}
    record.update({f"f.{k}": v for k, v in fields.items()})
    line = renderer(record)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert len(line) <= 4096
    assert len(line.decode("utf-8").splitlines()) == 1
    assert isinstance(orjson.loads(line), dict)


def test_production_tracebacks_skip_caret_markers_development_keeps_them() -> None:
    def fail() -> None:
        numbers = [1]
        numbers[5] += 1  # a subscript: Python 3.11+ marks its position under the line

    for profile, expect in (("production", False), ("development", True)):
        sink = configure_lines(profile=profile)
        try:
            fail()
        except IndexError:
            servicelog.get_logger("t").exception("boom")
        trace = orjson.loads(sink.lines[-1])["error.stack_trace"]
        assert "numbers[5] += 1" in trace
        assert ("^^^" in trace) is expect


@pytest.mark.parametrize("call", ["info", "warning", "exception", "log"])
def test_any_name_is_free_for_a_field_even_the_parameters(call: str) -> None:
    # The message (and log()'s level) are positional only: event=, message= and level= are
    # fields like any other (event and message kept as fields.*, as every ECS object root).
    sink = configure_lines(level="info")
    log = servicelog.get_logger("shop")
    fields = {"event": "e", "message": "m", "level": "l"}
    if call == "log":
        log.log("warning", "placed", **fields)
    else:
        getattr(log, call)("placed", **fields)
    (line,) = sink.lines
    obj = check_ecs(line)
    assert obj["message"] == "placed"
    assert (obj["fields.event"], obj["fields.message"], obj["level"]) == ("e", "m", "l")
    assert servicelog.stats()["errors"] == {}


def test_a_message_given_as_event_is_the_message() -> None:
    # structlog's way, log.info(event="..."), which servicelog took before its message became
    # positional only.
    sink = configure_lines(level="info")
    log = servicelog.get_logger("shop")
    log.info(event="placed", order=7)
    log.log("warning", event="late")
    log.bind(user="u").error(event="failed")
    assert [orjson.loads(line)["message"] for line in sink.lines] == ["placed", "late", "failed"]
    assert orjson.loads(sink.lines[0])["order"] == 7
    assert servicelog.stats()["errors"] == {}


def test_a_record_just_over_the_limit_keeps_nearly_all_of_its_long_value() -> None:
    """Long values are cut as little as the line needs (each long value was cut to a quarter
    of the limit: a 17,000-character value kept 4,119 of the 16 KiB allowed)."""
    sink = configure_lines(profile="production")
    servicelog.get_logger("t").info("big", blob="a" * 8000 + "b" * 9000, small="kept")
    (line,) = sink.lines
    obj = check_ecs(line)
    assert len(line) <= 16384 < len(line) + 1000
    assert obj["truncated"] is True and obj["small"] == "kept"
    assert obj["blob"].startswith("a" * 7500) and obj["blob"].endswith("b" * 7500)


def test_fields_dropped_to_fit_spare_the_error_and_the_service() -> None:
    """With too many fields, the error and the service's fields are kept before the
    application's own (they went first: they come last in a record)."""
    sink = configure_lines(profile="production", max_line_bytes=1024)
    fields = {f"context_{i}": "c" * 60 for i in range(12)}
    try:
        raise ValueError("the order was not found")
    except ValueError:
        servicelog.get_logger("t").exception("lookup failed", **fields)
    (line,) = sink.lines
    obj = check_ecs(line)
    assert len(line) <= 1024 and obj["log.dropped_fields"] > 0
    assert obj["error.type"] == "ValueError"
    assert obj["error.message"] == "the order was not found"
    assert "Traceback" in obj["error.stack_trace"]
    assert obj["service.name"] and obj["event.dataset"] and obj["log.logger"] == "t"


def test_a_record_cut_to_fit_with_odd_keys_is_written() -> None:
    """A StrEnum key and a key with a lone surrogate: the cut record was handed to orjson with
    them as they were, which raised, and the record was lost."""
    import enum

    class Key(enum.StrEnum):
        NOTE = "note"

    sink = configure_lines(profile="production", max_line_bytes=1024)
    log = servicelog.get_logger("t")
    log.info("enum key", **{Key.NOTE: "y" * 5000})  # type: ignore[arg-type]
    log.info("surrogate key", **{"bad\udc80key": "z" * 5000})
    first, second = (check_ecs(line) for line in sink.lines)
    assert first["truncated"] is True and first["note"].startswith("yyy")
    assert second["truncated"] is True and any(k.startswith("bad") for k in second)
    assert all(len(line) <= 1024 for line in sink.lines)


class UUID:  # named as uuid6's and uuid_utils' classes are, which orjson refuses
    def __str__(self) -> str:
        return "0190b2a6-7c1e-7d60-bbdf-0b6bfada5f31"


class Picky(str):
    """A str subclass whose own methods fail."""

    def __getitem__(self, index: Any) -> str:
        raise RuntimeError("no slicing")

    def encode(self, *args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("no encoding")


def test_odd_values_in_a_record_cut_to_fit_are_written() -> None:
    """Review 2026-11-30: each of these lost the record (or broke the limit) once it had to be
    cut: a UUID class of another package, a str subclass whose methods raise, a message that a
    processor made a 4,000-digit int among many fields, and a huge dropped-fields count."""
    sink = configure_lines(profile="production", max_line_bytes=1024)
    log = servicelog.get_logger("t")
    log.info("uuid", order=UUID(), blob="x" * 5000)
    log.info("picky", note=Picky("p" * 5000))
    log.info("fast uuid", order=UUID())
    (first, second, fast) = (check_ecs(line) for line in sink.lines)
    assert first["order"] == fast["order"] == "0190b2a6-7c1e-7d60-bbdf-0b6bfada5f31"
    assert first["truncated"] is True and second["note"].startswith("ppp")
    renderer = JsonRenderer(1024)
    many = {f"field{i}": "v" * 20 for i in range(100)}
    for record in (
        {"@timestamp": "t", "log.level": "info", "message": 10**4000, **many},
        {
            "@timestamp": "t",
            "log.level": "info",
            "message": "m",
            "log.dropped_fields": 10**60,
            **many,
        },
    ):
        line = renderer(record)
        assert len(line) <= 1024 and orjson.loads(line)["truncated"] is True
    assert servicelog.stats()["errors"] == {}
