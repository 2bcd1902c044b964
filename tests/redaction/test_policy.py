"""The policy as a pipeline processor and as helpers: what it returns, the callback, text in
exceptions and tracebacks, bytes, hostile objects, and the request-data helpers."""

from __future__ import annotations

import dataclasses
import traceback
from collections import deque
from enum import Enum
from typing import Any

import pytest

import servicelog
from servicelog import _errors
from servicelog.redaction import (
    REDACTED,
    REDACTION_FAILED,
    Match,
    RedactionPolicy,
    get_policy,
    redact_headers,
    redact_mapping,
    redact_query,
    redact_text,
    redact_url,
)


def record(**fields: Any) -> dict[str, Any]:
    """A record shaped like a front-end's: head fields, static fields, then the call's own."""
    return {
        "@timestamp": "2026-11-29T15:14:20.678341Z",
        "log.level": "info",
        "message": "request completed",
        "ecs.version": "8.11.0",
        "service.name": "shop",
        "log.logger": "app",
        "request_id": "3f1c2a9e-5b7d-4c8e-9a1f-2b3c4d5e6f70",
        **fields,
    }


# --- the processor ----------------------------------------------------------------------------
def test_a_clean_record_is_returned_as_is(policy: RedactionPolicy) -> None:
    """No copy when nothing changes: the first time (slow path) and every time after."""
    rec = record(method="GET", path="/items/42", status=200, duration_ms=1.2)
    for _ in range(3):
        assert policy(rec, 20) is rec


def test_a_record_like_one_seen_before_takes_the_fast_path(
    policy: RedactionPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same keys, numbers still numbers, strings already known clean: no walk at all, even
    when records of two shapes with the same number of keys alternate."""
    a = record(method="GET", status=200)
    b = record(verb="GET", code=200)
    assert policy(a, 20) is a and policy(b, 20) is b

    def no_walk(self: RedactionPolicy, record: Any) -> Any:
        raise AssertionError("the slow path ran")

    monkeypatch.setattr(RedactionPolicy, "_redact_record", no_walk)
    for _ in range(3):
        assert policy(dict(a, status=404), 20) == dict(a, status=404)
        assert policy(dict(b, code=500), 20) == dict(b, code=500)


def test_a_container_in_a_known_shape_is_walked_alone_and_still_checked(
    policy: RedactionPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dict or list value cannot be known clean, so the plan for its record's shape walks
    that value on every record, and never the whole record again (it used to: ~7 us per call).
    A secret that appears inside it later is caught, in ``__call__`` and in ``fuse_emit``."""
    first = record(path="/a", order={"id": 1, "items": [1, 2, "x"]})
    assert policy(first, 20) is first

    def no_walk(self: RedactionPolicy, record: Any) -> Any:
        raise AssertionError("the whole record was walked")

    monkeypatch.setattr(RedactionPolicy, "_redact_record", no_walk)
    again = record(path="/a", order={"id": 2, "items": [3, 4, "x"]})
    assert policy(again, 20) is again
    token = record(path="/a", order={"id": 3, "items": ["token=abc"]})
    assert policy(token, 20)["order"] == {"id": 3, "items": [f"token={REDACTED}"]}
    password = record(path="/a", order={"id": 4, "password": "hunter2"})
    assert policy(password, 20)["order"] == {"id": 4, "password": REDACTED}
    assert password["order"]["password"] == "hunter2", "the caller's dict is not mutated"
    emitted: list[dict[str, Any]] = []
    emit = policy.fuse_emit(lambda rec, levelno: emitted.append(rec))
    emit(again, 20)
    emit(token, 20)
    assert emitted[0] is again
    assert emitted[1]["order"] == {"id": 3, "items": [f"token={REDACTED}"]}


def test_a_record_with_a_secret_is_copied_not_mutated(policy: RedactionPolicy) -> None:
    rec = record(password="hunter2", path="/login")
    out = policy(rec, 20)
    assert out is not rec and rec["password"] == "hunter2"
    assert out == {**rec, "password": REDACTED}
    assert list(out) == list(rec), "key order is kept"


def test_new_values_under_known_keys_are_still_checked(policy: RedactionPolicy) -> None:
    """The cached plan for a record shape never lets a new value through unchecked."""
    clean = record(path="/items/1", note="fine", n=1)
    assert policy(clean, 20) is clean
    assert policy(record(path="/items/2", note="password=x", n=2), 20)["note"] == (
        f"password={REDACTED}"
    )
    assert policy(record(path="/items/3", note=["token=x"], n=3), 20)["note"] == [
        f"token={REDACTED}"
    ]
    assert policy(record(path="/items/4", note="ok", n={"secret": 1}), 20)["n"] == {
        "secret": REDACTED
    }
    assert policy(record(path="/items/5", note=b"AKIAIOSFODNN7EXAMPLE", n=5), 20)["note"] == (
        REDACTED
    )


@pytest.mark.parametrize(
    "values",
    [
        [1, "password=x", 2.5, "token=y"],
        [None, {"secret": "s"}, None, ["api_key=k"]],
        [True, b"password=x", False, bytearray(b"token=y")],
        ["fine", 10**40, "AKIAIOSFODNN7EXAMPLE", float("nan")],
    ],
)
def test_a_field_that_changes_kind_between_records_is_always_checked(
    policy: RedactionPolicy, values: list[Any]
) -> None:
    """The per-shape plan remembers which values were numbers and which strings; a value that
    becomes something else takes the slow path, every time."""
    for i in range(3):
        for value in values:
            out = policy(record(path=f"/{i}", field=value), 20)
            assert "=x" not in repr(out["field"]) and "=y" not in repr(out["field"])
            assert "AKIA" not in repr(out["field"]) and "'s'" not in repr(out["field"])
            assert "=k" not in repr(out["field"])


def test_short_whole_word_keys_in_text_need_a_quote_or_equals(policy: RedactionPolicy) -> None:
    """``session:4155`` is a cache key, ``session=4155`` a parameter, ``'session': ...`` a
    dict; ``password:x`` is a password in any form."""
    assert policy.redact_text("cache miss for session:415594") == "cache miss for session:415594"
    assert policy.redact_text("?session=415594") == f"?session={REDACTED}"
    assert policy.redact_text("{'session': 'abc'}") == f"{{'session': '{REDACTED}'}}"
    assert policy.redact_text("password:hunter2") == f"password:{REDACTED}"
    assert policy.redact_text("    key = 'abc'") == f"    key = '{REDACTED}'"
    # The decision is remembered per key, the form is still read per pair.
    both = "session:415594 then session=415594"
    assert policy.redact_text(both) == f"session:415594 then session={REDACTED}"


def test_source_lines_in_tracebacks_keep_their_code(policy: RedactionPolicy) -> None:
    """``password = get_password(...)`` is code, not a secret; a literal is one."""
    line = '    password = read_secret("db")'
    assert policy.redact_text(line) == line
    assert policy.redact_text('    password = "hunter2"') == f'    password = "{REDACTED}"'


@pytest.mark.parametrize(
    "line",
    [
        "    for row in sorted(rows, key=lambda row: row[0]):",
        "    best = max(items, key=lambda: 0)",
        "    groups = groupby(data, key=lambda item, *rest: item.kind)",
    ],
)
def test_a_lambda_after_a_denied_key_is_code(policy: RedactionPolicy, line: str) -> None:
    """``key=lambda ...:`` is in every traceback through a sort by key; the lambda's defaults
    are judged as pairs of their own."""
    assert policy.redact_text(line) == line


def test_a_lambda_does_not_hide_what_follows(policy: RedactionPolicy) -> None:
    assert policy.redact_text("key=lambda") == f"key={REDACTED}"
    assert policy.redact_text("password=lambda:hunter2") == f"password={REDACTED}"
    compact = "    rows.sort(key=lambda r:r[0])"  # a lambda with parameters: code, spaced or not
    assert policy.redact_text(compact) == compact
    assert policy.redact_text("key=lambdas-are-fun") == f"key={REDACTED}"
    line = "    f(key=lambda x, token='tok_abc123': x)"
    assert policy.redact_text(line) == f"    f(key=lambda x, token='{REDACTED}': x)"


def test_the_message_and_error_fields_are_redacted(policy: RedactionPolicy) -> None:
    rec = record(
        **{
            "error.type": "ValueError",
            "error.message": "login failed: password=hunter2",
            "error.stack_trace": "Traceback...\n    token = 'abc123'\nValueError: x",
        }
    )
    rec["message"] = "Authorization: Bearer abcdef123456"
    out = policy(rec, 40)
    assert out["message"] == "Authorization: Bearer [REDACTED]"
    assert out["error.message"] == "login failed: password=[REDACTED]"
    assert out["error.stack_trace"] == "Traceback...\n    token = '[REDACTED]'\nValueError: x"


def test_locals_in_a_real_traceback_are_redacted_by_key(policy: RedactionPolicy) -> None:
    """``capture_locals`` writes ``name = repr(value)`` lines: denied names lose their value,
    including inside dicts shown by repr."""

    def login() -> None:
        password = "CANARY-pw"  # noqa: F841 - the point of the test
        api_key = b"CANARY-key"  # noqa: F841
        payload = {"user": "bob", "secret": "CANARY-nested"}  # noqa: F841
        user = "bob"  # noqa: F841
        raise RuntimeError("boom")

    try:
        login()
    except RuntimeError as exc:
        te = traceback.TracebackException.from_exception(exc, capture_locals=True)
        text = "".join(te.format())
    assert "CANARY" in text
    out = policy.redact_text(text)
    assert "CANARY" not in out
    assert "user = 'bob'" in out and "'user': 'bob'" in out


def test_bytes_values_are_decoded_and_redacted_when_needed(policy: RedactionPolicy) -> None:
    raw = b"token=abc123&x=1"
    assert policy.redact_mapping({"body": raw}) == {"body": f"token={REDACTED}&x=1"}
    clean = {"body": b"\x00\xffplain", "view": memoryview(b"ok"), "ba": bytearray(b"ok")}
    assert policy.redact_mapping(clean) is clean


def test_exceptions_dataclasses_enums_and_objects_as_values(policy: RedactionPolicy) -> None:
    """Values the renderers write as text (an exception, a repr) or as fields (a dataclass)."""

    @dataclasses.dataclass
    class Login:
        user: str
        password: str

    class Env(Enum):
        KEY = "AKIAIOSFODNN7EXAMPLE"

    class Creds:
        def __repr__(self) -> str:
            return "Creds(user='bob', password='hunter2')"

    out = policy.redact_mapping(
        {
            "exc": ValueError("password=hunter2"),
            "dc": Login("bob", "hunter2"),
            "enum": Env.KEY,
            "obj": Creds(),
        }
    )
    assert out == {
        "exc": f"ValueError: password={REDACTED}",
        "dc": {"user": "bob", "password": REDACTED},
        "enum": REDACTED,
        "obj": f"Creds(user='bob', password='{REDACTED}')",
    }


def test_str_subclasses_are_scanned(policy: RedactionPolicy) -> None:
    class Text(str):
        pass

    assert policy.redact_mapping({"a": Text("password=x")}) == {"a": f"password={REDACTED}"}
    clean = {"a": Text("fine")}
    assert policy.redact_mapping(clean) is clean


# --- the callback -----------------------------------------------------------------------------
def test_the_callback_sees_path_value_and_match_and_can_keep_a_value() -> None:
    seen: list[tuple[Any, Any, Match]] = []

    def callback(path: Any, value: Any, match: Match) -> Any:
        seen.append((path, value, match))
        if match.rule == "email" and str(value).endswith("@example.com"):
            return value  # keep our own test addresses
        if match.rule == "key" and match.text == "token":
            return "[TOKEN]"
        return match.replacement

    policy = RedactionPolicy(pii=True, callback=callback)
    out = policy.redact_mapping(
        {
            "user": {"token": "t-1", "mail": "ops@example.com", "other": "bob@corp.io"},
            "items": ["AKIAIOSFODNN7EXAMPLE"],
        }
    )
    assert out == {
        "user": {"token": "[TOKEN]", "mail": "ops@example.com", "other": "bo***@***.io"},
        "items": [REDACTED],
    }
    by_rule = {m.rule: (path, value, m) for path, value, m in seen}
    assert by_rule["key"][0] == ("user", "token") and by_rule["key"][1] == "t-1"
    assert by_rule["aws_access_key"][0] == ("items", 0)
    assert by_rule["aws_access_key"][2].text == "AKIAIOSFODNN7EXAMPLE"
    assert by_rule["email"][2].replacement == "bo***@***.io"


def test_a_failing_callback_gets_the_default_replacement() -> None:
    def callback(path: Any, value: Any, match: Match) -> Any:
        raise RuntimeError("bug in the app's callback")

    policy = RedactionPolicy(callback=callback)
    assert policy.redact_mapping({"password": "x"}) == {"password": REDACTED}
    assert policy.redact_text("password=x") == f"password={REDACTED}"
    assert _errors.counters["redaction_failed"] == 2
    _errors.counters.pop("redaction_failed")


def test_user_patterns_and_replacement() -> None:
    policy = RedactionPolicy(patterns={"employee": r"EMP-[0-9]{6}"}, replacement="<hidden>")
    assert policy.redact_text("by EMP-123456 today") == "by <hidden> today"
    assert policy.redact_mapping({"secret": "x"}) == {"secret": "<hidden>"}
    with pytest.raises(ValueError, match="employee"):
        RedactionPolicy(patterns={"employee": "EMP-("})


# --- never raise ------------------------------------------------------------------------------
class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")


class BadMapping(dict[str, Any]):
    def items(self) -> Any:
        raise RuntimeError("items exploded")


class BadIterable(list[Any]):
    def __iter__(self) -> Any:
        raise RuntimeError("iter exploded")


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str exploded")


class HugeRepr:
    def __repr__(self) -> str:
        return "password=hunter2 " + "x" * 10_000_000


def test_hostile_values_never_raise(policy: RedactionPolicy) -> None:
    """Objects whose methods raise are written as the renderer would write them: what it can
    read is redacted, what nobody can read stays (the renderer writes a placeholder)."""
    cyclic: dict[str, Any] = {"password": "x"}
    cyclic["self"] = cyclic
    bad_map = BadMapping(token="s3cr3t", ok=1)
    bad_list = BadIterable(["token=s3cr3t"])
    value = {
        "bad_repr": (bad := BadRepr()),
        "bad_map": bad_map,
        "bad_list": bad_list,
        "huge": HugeRepr(),
        "cyclic": cyclic,
        "bad_str": BadStr("password=hunter2"),
    }
    out = policy.redact_mapping(value)
    assert out["bad_str"] == f"BadStr('password={REDACTED}')", "the renderer would use repr"
    assert out["bad_repr"] is bad
    assert out["bad_map"] == {"token": REDACTED, "ok": 1}, "read as orjson reads a dict"
    assert out["bad_list"] == [f"token={REDACTED}"]
    assert out["huge"].startswith(f"password={REDACTED} xxx") and len(out["huge"]) < 5000
    assert out["cyclic"] == {"password": REDACTED, "self": "<cycle>"}


def test_cycles_never_let_the_original_through(policy: RedactionPolicy) -> None:
    """A cycle back to a redacted container must not point at the unredacted original."""
    a: list[Any] = ["token=x"]
    a.append(a)
    out = policy.redact_mapping({"a": a})
    assert out == {"a": [f"token={REDACTED}", "<cycle>"]}


def test_depth_is_capped(policy: RedactionPolicy) -> None:
    deep: Any = "password=x"
    for _ in range(10_000):
        deep = [deep]
    out = policy.redact_mapping({"deep": deep})
    depth = 0
    node = out["deep"]
    while isinstance(node, list):
        node, depth = node[0], depth + 1
    assert node == "<max depth>" and depth <= 64


def test_an_internal_failure_redacts_everything_and_is_reported(
    policy: RedactionPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If redaction itself breaks, nothing unredacted is written: every value that is not
    servicelog's own becomes "[REDACTION FAILED]"; under pytest the bug is raised."""

    def broken(self: RedactionPolicy, record: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(RedactionPolicy, "_redact_record", broken)
    rec = record(password="hunter2", status=200)
    with pytest.raises(RuntimeError, match="bug"):
        policy(rec, 20)
    _errors.set_strict(False)
    out = policy(rec, 20)
    assert out["password"] == REDACTION_FAILED and out["message"] == REDACTION_FAILED
    assert out["status"] == 200 and out["request_id"] == rec["request_id"]
    assert servicelog.stats()["errors"] == {"redaction": 2}


# --- helpers ----------------------------------------------------------------------------------
def test_redact_headers_keeps_the_shape_and_the_scheme(policy: RedactionPolicy) -> None:
    asgi = [
        (b"authorization", b"Bearer abc.def.ghi"),
        (b"cookie", b"session=abc; theme=dark"),
        (b"x-api-key", b"k-123"),
        (b"x-foo-secret", b"s"),
        (b"referer", b"https://u:pw@example.com/?token=abc"),
        (b"accept", b"*/*"),
    ]
    assert policy.redact_headers(asgi) == [
        (b"authorization", b"Bearer [REDACTED]"),
        (b"cookie", b"[REDACTED]"),
        (b"x-api-key", b"[REDACTED]"),
        (b"x-foo-secret", b"[REDACTED]"),
        (b"referer", b"https://u:[REDACTED]@example.com/?token=[REDACTED]"),
        (b"accept", b"*/*"),
    ]
    assert policy.redact_headers({"Proxy-Authorization": "Basic dTpw", "Host": "x"}) == {
        "Proxy-Authorization": "Basic [REDACTED]",
        "Host": "x",
    }


def test_name_value_pairs_are_judged_by_their_name(policy: RedactionPolicy) -> None:
    # A scope's raw headers logged as a field (or httpx's .raw, or a dict's items()): the value
    # of a denied name is redacted as under a mapping key, also when the same record comes back
    # and its strings are known clean (the fast path).
    headers = [(b"authorization", b"Bearer abc"), (b"x-session-token", b"tok_0123456789abcd")]
    headers += [(b"accept", b"*/*")]
    for _ in range(3):
        out = policy(record(headers=headers, items=[["password", "hunter2"], ["user", "bob"]]))
        assert out["headers"] == [
            (b"authorization", REDACTED),
            (b"x-session-token", REDACTED),
            (b"accept", b"*/*"),
        ]
        assert out["items"] == [["password", REDACTED], ["user", "bob"]]
    # as sentry-sdk serialises an ASGI scope's headers: reprs of bytes
    sentry = {"scope": {"headers": [["b'authorization'", "b'Basic dTpw'"], ["b'host'", "b'x'"]]}}
    assert policy.redact_mapping(sentry) == {
        "scope": {"headers": [["b'authorization'", REDACTED], ["b'host'", "b'x'"]]}
    }
    # not pairs: left alone
    assert policy.redact_mapping([("password", 1, 2), ("a", "b")]) == [
        ("password", 1, 2),
        ("a", "b"),
    ]
    # a denied name that is itself a secret is masked as a key is (review)
    assert policy.redact_mapping([("alice@example.com_reset_token", "t-1")]) == [
        ("ali***@***.com_reset_token", REDACTED)
    ]
    # a first item too long for a name is text (a search result's (text, score)): it is
    # scanned as a value, never normalised as a key (an 8 MB one cost seconds per pair)
    text = "some text " * 40 + "password"
    assert policy.redact_mapping([(text, 0.5)]) == [(text, 0.5)]
    # in a deque or a set too (a deque is written as its repr: scanning that text missed them)
    assert policy.redact_mapping(deque([("x-api-key", "k-1")])) == deque([("x-api-key", REDACTED)])
    assert policy.redact_mapping({("password", "hunter2")}) == {("password", REDACTED)}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://u:pw@h.example/p?a=1", "https://u:[REDACTED]@h.example/p?a=1"),
        (
            "https://h/cb?code=abc&access_token=t0k&state=s",
            "https://h/cb?code=[REDACTED]&access_token=[REDACTED]&state=s",
        ),
        (
            "https://h/cb#access_token=t0k&expires=3600",
            "https://h/cb#access_token=[REDACTED]&expires=3600",
        ),
        ("/login;jsessionid=ABC123?next=/", "/login;jsessionid=[REDACTED]?next=/"),
        ("/p?api%5Fkey=abc&b=2", "/p?api%5Fkey=[REDACTED]&b=2"),
        ("https://h/p?q=a%20b&page=2", "https://h/p?q=a%20b&page=2"),
        ("http://[::1/oops?password=x", "http://[::1/oops?password=[REDACTED]"),
    ],
)
def test_redact_url(policy: RedactionPolicy, url: str, expected: str) -> None:
    assert policy.redact_url(url) == expected
    assert policy.redact_url(expected) == expected


def test_redact_query_keeps_encoding_and_type(policy: RedactionPolicy) -> None:
    assert policy.redact_query("a=1&password=p%40ss;token=t&b=x+y") == (
        "a=1&password=[REDACTED];token=[REDACTED]&b=x+y"
    )
    raw = b"page=2&sort=desc"
    assert policy.redact_query(raw) is raw
    assert policy.redact_query(b"q=x&secret=1") == b"q=x&secret=[REDACTED]"
    assert policy.redact_query("email=john%40example.com") == "email=joh***@***.com"


def test_signed_urls_and_oauth_codes_in_query_strings(policy: RedactionPolicy) -> None:
    """OpenTelemetry's list of signed URLs' parameters, and an OAuth 2.0 authorization code (a
    bearer credential, RFC 6749 10.5), which only a query string holds under ``code``."""
    query = "code=SplxlOBeZQQYbYS6WxSbIA&state=xyz&sig=QWERTY&X-Goog-Signature=abc&error_code=E1"
    assert policy.redact_query(query) == (
        f"code={REDACTED}&state=xyz&sig={REDACTED}&X-Goog-Signature={REDACTED}&error_code=E1"
    )
    assert policy({"code": "E1234", "sig": "SIGTERM"}, 20) == {"code": "E1234", "sig": "SIGTERM"}
    assert RedactionPolicy(allow_keys=["code"]).redact_query("code=abc") == "code=abc"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "GET https://idp/token?code=Splx&state=s",
            f"GET https://idp/token?code={REDACTED}&state=s",
        ),
        ("blob https://a/b?sv=1&sig=abc%3D ok", f"blob https://a/b?sv=1&sig={REDACTED} ok"),
        ("x" * 300 + " /cb?a=1;code=Sp", "x" * 300 + f" /cb?a=1;code={REDACTED}"),  # prefilter
        ("got signal sig=15, error code=E1", "got signal sig=15, error code=E1"),
        ("Append ?code= to the URL", "Append ?code= to the URL"),  # prose: no value
        ("to https://app/cb#code=Splx&state=s", f"to https://app/cb#code={REDACTED}&state=s"),
        ("/cb#state=s&code=Splx", f"/cb#state=s&code={REDACTED}"),
        ("see #code=5 or issue#sig=1", "see #code=5 or issue#sig=1"),  # no path: prose
        ("if (flags&code=0x1)", "if (flags&code=0x1)"),  # no "?" before it: not a URL
        # A URL in JSON text whose "&" was escaped (Go's encoder does it by default)
        (
            r'{"url": "https://app/cb?state=s\u0026code=Splx\u0026x=1"}',
            rf'{{"url": "https://app/cb?state=s\u0026code={REDACTED}\u0026x=1"}}',
        ),
        ("x" * 300 + r" /blob?sv=1\u0026sig=abc", "x" * 300 + rf" /blob?sv=1\u0026sig={REDACTED}"),
        (r"see \u0026code=5, flags\u0026code=0x1", r"see \u0026code=5, flags\u0026code=0x1"),
    ],
)
def test_query_only_keys_in_urls_inside_text(
    policy: RedactionPolicy, text: str, expected: str
) -> None:
    """A URL logged as text (httpx's "HTTP Request: GET ..." line, a ``url=`` field) holds its
    query's ``code`` and ``sig`` after ``?``, ``&`` or ``;``; elsewhere they are plain words."""
    assert policy.redact_text(text) == expected


def test_denied_keys_after_a_json_escaped_ampersand(policy: RedactionPolicy) -> None:
    """``\\u0026`` is ``&`` in JSON text: the key after it is judged without it, and the value
    ends before the next escaped parameter."""
    text = r'{"next": "/p?a=1\u0026session=abc123\u0026key=k-1\u0026token=t0k\u0026b=2"}'
    assert policy.redact_text(text) == (
        rf'{{"next": "/p?a=1\u0026session={REDACTED}\u0026key={REDACTED}'
        rf'\u0026token={REDACTED}\u0026b=2"}}'
    )


def test_a_callback_is_asked_with_the_key_after_a_json_escaped_ampersand() -> None:
    asked: list[tuple[Any, str]] = []

    def callback(path: Any, value: Any, match: Match) -> Any:
        asked.append((path, match.text))
        return match.replacement

    policy = RedactionPolicy(callback=callback)
    assert policy.redact_text(r"/p?a=1\u0026session=abc") == rf"/p?a=1\u0026session={REDACTED}"
    assert asked == [(("session",), "session")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # OAuth's redirect: the callback URL, with its code, encoded in a query value.
        (
            "redirect to /login?next=%2Fcallback%3Fstate%3Dxyz%26code%3DSplxlOBeZQQYbYS6WxSbIA now",
            f"redirect to /login?next=%2Fcallback%3Fstate%3Dxyz%26code%3D{REDACTED} now",
        ),
        # Encoded twice (a redirect inside a redirect).
        (
            "/login?next=%252Fcb%253Fstate%253D1%2526code%253DSplxlOBeZQQYbYS6WxSbIA",
            f"/login?next=%252Fcb%253Fstate%253D1%2526code%253D{REDACTED}",
        ),
        # A denied key's pair, and a URL's password, encoded in a path or a value.
        ("q=password%3Dhunter2 and more", f"q=password%3D{REDACTED} and more"),
        (
            "/r/https%3A%2F%2Fuser%3Ahunter2%40example.com%2F",
            f"/r/https%3A%2F%2Fuser%3A{REDACTED}%40example.com%2F",
        ),
        ("a%3D1%26token%3Dt0k3n%26b%3D2", f"a%3D1%26token%3D{REDACTED}%26b%3D2"),
        # Nothing secret: kept as written, encoding and all.
        ("/search?q=a%3Db%26page%3D2", "/search?q=a%3Db%26page%3D2"),
        ("100%3D and %3A%2F%2F alone", "100%3D and %3A%2F%2F alone"),
    ],
)
def test_pairs_and_urls_hidden_by_percent_encoding(
    policy: RedactionPolicy, text: str, expected: str
) -> None:
    """A run of text holding an encoded "=" or "://" is scanned decoded too, and only what the
    rules changed there is replaced in it: the rest keeps its encoding. Redacting again
    changes nothing."""
    assert policy.redact_text(text) == expected
    assert policy.redact_text(expected) == expected


def test_past_32_encoded_runs_the_rest_is_read_as_one(policy: RedactionPolicy) -> None:
    """Thousands of encoded runs cost a few scans: the first 32 are read one by one, the rest
    as one run, where nothing secret survives either, and the encoding is kept."""
    runs = [f"a%3D{i}%26token%3Dsecret{i:04d}" for i in range(200)]
    out = policy.redact_text(" ".join(runs))
    assert out == " ".join(f"a%3D{i}%26token%3D{REDACTED}" for i in range(200))
    assert policy.redact_text(out) == out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Clean text between two secrets keeps its encoding (UTF-8 and spaces too).
        (
            "GET /login?next=%2Fcb%3Fcode%3DAAAsecret%26city%3DS%C3%A3o%20Paulo"
            "%26access_token%3DBBBsecret 302",
            f"GET /login?next=%2Fcb%3Fcode%3D{REDACTED}%26city%3DS%C3%A3o%20Paulo"
            f"%26access_token%3D{REDACTED} 302",
        ),
        # UTF-8 is decoded as UTF-8: its bytes 0x85 and 0xA0 are no whitespace that would
        # end the value or hide the "?".
        ("q=password%3Dpass%C3%A0word99", f"q=password%3D{REDACTED}"),
        (
            "/login?next=%2Fcb%3Fcity%3Dvoil%C3%A0%26code%3DSeCrEt123",
            f"/login?next=%2Fcb%3Fcity%3Dvoil%C3%A0%26code%3D{REDACTED}",
        ),
        # An encoded space is no end of the run (the "?" before it counts) nor of a value.
        (
            "next=%2Fcb%3Fq%3Da%20b%26code%3DSeCrEt123",
            f"next=%2Fcb%3Fq%3Da%20b%26code%3D{REDACTED}",
        ),
        ("msg=password%3A%20hunter2", f"msg=password%3A{REDACTED}"),
        # Any escape, not only an encoded "=": a URL's password, JSON, an encoded "?" only.
        (
            "postgres%3A//app%3AS3cretPw%40db.internal%3A5432/orders",
            f"postgres%3A//app%3A{REDACTED}%40db.internal%3A5432/orders",
        ),
        ("postgres:%2F%2Fapp:S3cretPw@db", f"postgres:%2F%2Fapp:{REDACTED}@db"),
        (
            "body=%7B%22password%22%3A%22hunter2%22%7D",
            f"body=%7B%22password%22%3A%22{REDACTED}%22%7D",
        ),
        ("GET /login?next=%2Fcb%3Fcode=SeCrEt123", f"GET /login?next=%2Fcb%3Fcode={REDACTED}"),
        # A "?" more than 4,096 characters before the code still makes it a query's.
        (
            "GET /cb?state=" + "a" * 5000 + "&code=SECRET123 HTTP/1.1",
            "GET /cb?state=" + "a" * 5000 + f"&code={REDACTED} HTTP/1.1",
        ),
    ],
)
def test_encoded_runs_are_decoded_faithfully(
    policy: RedactionPolicy, text: str, expected: str
) -> None:
    assert policy.redact_text(text) == expected
    assert policy.redact_text(expected) == expected


def test_a_redacted_url_is_redacted_once_and_for_all(policy: RedactionPolicy) -> None:
    """What the encoded path's redaction writes keeps the path's encoding: read again, the
    URL splits where it did (an encoded "?" written decoded used to start a query)."""
    url = "https://h/r/%2Fx%3Fpassword%3Dp1%26next%3D%2Fcb%3Ftoken%3Dab%22cd"
    once = policy.redact_url(url)
    assert (
        once == f"https://h/r/%2Fx%3Fpassword%3D{REDACTED}%26next%3D%2Fcb%3Ftoken%3D{REDACTED}%22cd"
    )
    assert policy.redact_url(once) == once
    # A query value is read as written too: decoded once, "a b&code=" is no single run.
    nested = "https://app.example/login?next=%2Fcb%3Fq%3Da%20b%26code%3DSeCrEt123"
    assert policy.redact_url(nested) == nested.replace("SeCrEt123", REDACTED)


def test_percent_encoded_secrets_in_a_query_string_and_a_records_path(
    policy: RedactionPolicy,
) -> None:
    """The query-string helper decodes a value once; a second layer of encoding is found by
    the text rule. A record's ``url.path`` (the access record's) is text like any other."""
    assert policy.redact_query("next=%252Fcb%253Fcode%253Dabcdef&x=1") == (
        f"next=%252Fcb%253Fcode%253D{REDACTED}&x=1"
    )
    out = policy(record(**{"url.path": "/oauth/return/%3Fcode%3DSplxlOBeZQQYbYS6WxSbIA"}))
    assert out["url.path"] == f"/oauth/return/%3Fcode%3D{REDACTED}"


def test_a_records_query_string_fields_are_redacted_as_query_strings(
    policy: RedactionPolicy,
) -> None:
    """``url.query`` (ECS) and ``http.query`` (sentry-sdk) fields a caller logs hold a query
    string: ``code`` and ``sig`` are denied there, every time (the same text known clean
    from another field, or a record shape seen before, is no shortcut); elsewhere they stay."""
    query = "code=SplxlOBeZQQYbYS6WxSbIA&state=xyz"
    assert policy(record(detail=query), 20)["detail"] == query  # text: clean, and remembered
    for _ in range(3):  # the record's plan, once made, still looks at the query
        out = policy(record(**{"url.query": query, "http.query": "sig=abc&sv=1"}, detail=query), 20)
        assert out["url.query"] == f"code={REDACTED}&state=xyz"
        assert out["http.query"] == f"sig={REDACTED}&sv=1"
        assert out["detail"] == query
    assert policy(record(**{"url.query": None}), 20)["url.query"] is None
    out = policy(record(**{"url.query": "code=abc"}), 20)  # the same shape, now with a query
    assert out["url.query"] == f"code={REDACTED}"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("p%61ssword=hunter2", f"p%61ssword={REDACTED}"),
        ("api+key=k1&page=2", f"api+key={REDACTED}&page=2"),
        ("note=token%3Dabc", f"note=token%3D{REDACTED}"),
        ("note=token+abc", "note=token+abc"),
        ("q=AKIAIOSFODNN7EXAMPLE", f"q={REDACTED}"),
    ],
)
def test_redact_query_decodes_keys_and_values_before_deciding(
    policy: RedactionPolicy, query: str, expected: str
) -> None:
    """A key or value is decoded (``%xx`` and ``+``) before it is judged, so an encoded
    ``password`` is denied and an encoded ``token=`` inside a value is found; parts with
    nothing to decode skip the decoder."""
    assert policy.redact_query(query) == expected


def test_a_clean_query_is_remembered_but_a_callback_sees_every_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same clean query string again (``?page=1``) is answered without a look; a query a
    callback kept unchanged is looked at every time, so the callback sees every match."""
    policy = RedactionPolicy()
    assert policy.redact_query("page=2&size=10") == "page=2&size=10"
    assert policy.redact_query("token=abc") == f"token={REDACTED}"

    def no_scan(self: RedactionPolicy, text: str, path: Any) -> str:
        raise AssertionError("scanned again")

    monkeypatch.setattr(RedactionPolicy, "_text", no_scan)
    assert policy.redact_query("page=2&size=10") == "page=2&size=10"
    monkeypatch.undo()
    assert policy.redact_query("token=abc") == f"token={REDACTED}", "a redacted one is not kept"

    calls: list[str] = []

    def keep(path: Any, value: Any, match: Match) -> Any:
        calls.append(match.text)
        return value

    kept = RedactionPolicy(callback=keep)
    assert kept.redact_query("password=x") == "password=x"
    assert kept.redact_query("password=x") == "password=x"
    assert calls == ["password", "password"]


def test_module_helpers_use_the_configured_policy() -> None:
    """Before configure() and with redaction off they use the default policy (no PII)."""
    assert get_policy().pii is False
    assert redact_text("password=x") == f"password={REDACTED}"
    servicelog.configure(profile="production", stream="none")
    assert get_policy().pii is True
    assert redact_text("mail john@example.com") == "mail joh***@***.com"
    assert redact_mapping({"token": 1}) == {"token": REDACTED}
    assert redact_headers({"Cookie": "a=b"}) == {"Cookie": REDACTED}
    assert redact_query("token=x") == f"token={REDACTED}"
    assert redact_url("https://u:p@h/") == f"https://u:{REDACTED}@h/"
    servicelog.configure(profile="production", stream="none", redaction=False)
    assert get_policy().pii is False


def test_the_policy_is_immutable() -> None:
    policy = RedactionPolicy()
    with pytest.raises(AttributeError, match="immutable"):
        policy.pii = True  # type: ignore[misc]


def test_the_policy_is_printable() -> None:
    text = repr(RedactionPolicy(pii=True, allow_keys=["session"]))
    assert "pii=True" in text and "session" in text
