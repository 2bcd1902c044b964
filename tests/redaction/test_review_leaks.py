"""Leaks found in review (each test failed before its fix): values written under a key the
policy never compared, values in text masked only in part, and a quadratic rename."""

from __future__ import annotations

import base64
import collections
import dataclasses
import enum
import logging
from typing import Any, NamedTuple

import orjson
import pytest

import servicelog
from servicelog.redaction import REDACTED, RedactionPolicy
from servicelog.render.json import JsonRenderer
from servicelog.sinks import MemorySink

Creds = collections.namedtuple("Creds", "user password")


class Login(NamedTuple):
    user: str
    token: str


class Field(enum.StrEnum):
    PASSWORD = "password"
    USER = "user"


def rendered(value: Any) -> Any:
    """What the JSON renderer writes for a value (the line is the contract)."""
    return orjson.loads(JsonRenderer()({"v": value}))["v"]


# --- 1. namedtuples ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Creds("bob", "hunter2"), f"Creds(user='bob', password='{REDACTED}')"),
        (Login("bob", "t-123"), f"Login(user='bob', token='{REDACTED}')"),
        (Creds("bob", {"api_key": "k"}), f"Creds(user='bob', password='{REDACTED}')"),
        (Creds("bob", {"api_key": "k"})._replace(user="x@corp.io"), "Creds(user='***@***.io',"),
    ],
)
def test_a_namedtuple_is_checked_by_its_field_names(
    policy: RedactionPolicy, value: Any, expected: str
) -> None:
    """orjson does not know namedtuples, so the renderer writes their repr, field names
    included: a denied field's value goes, and the result reads as the renderer writes it."""
    out = policy.redact_mapping({"creds": value})["creds"]
    assert out.startswith(expected)
    assert rendered(out) == out


class _NoRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_a_namedtuple_with_a_field_whose_repr_raises_is_still_redacted(
    policy: RedactionPolicy,
) -> None:
    """Building the redacted repr called that field's repr, which raised: the whole value was
    "[REDACTION FAILED]". The field is written as the renderers write it."""
    out = policy.redact_mapping({"creds": Creds(_NoRepr(), "hunter2")})["creds"]
    assert out == (
        f"Creds(user=<unrepresentable _NoRepr: repr() raised RuntimeError>, password='{REDACTED}')"
    )


def test_a_clean_namedtuple_is_left_as_it_is(policy: RedactionPolicy) -> None:
    """Nothing to redact: the value itself, which the renderer writes as its repr."""
    point = collections.namedtuple("Point", "x y")
    for value in ({"at": point(1, "fine")}, {"creds": Creds("bob", None)}):
        assert policy.redact_mapping(value) is value


# --- 2. dataclass attributes ------------------------------------------------------------------
@dataclasses.dataclass
class DbConfig:
    host: str
    _port: int = 5432

    def __post_init__(self) -> None:
        self.password = "hunter2"  # an attribute, not a declared field
        self._secret = "never written"  # orjson skips names starting with "_"


def test_dataclass_attributes_outside_its_fields_are_checked(policy: RedactionPolicy) -> None:
    """orjson writes a dataclass from its ``__dict__``: what it writes is what is walked."""
    value = DbConfig("db.internal")
    out = policy.redact_mapping({"db": value})["db"]
    assert out == {"host": "db.internal", "password": REDACTED}
    assert list(out) == list(rendered(value)), "the same fields the renderer writes"


# --- 3. bytes keys ----------------------------------------------------------------------------
def test_bytes_keys_are_checked(policy: RedactionPolicy) -> None:
    """A parsed form's ``{b"password": b"..."}``, as a mapping and as its repr in text."""
    form = {b"username": b"bob", b"password": b"hunter2"}
    assert policy.redact_mapping(form) == {b"username": b"bob", b"password": REDACTED}
    assert policy.redact_text(f"form: {form}") == (
        f"form: {{b'username': b'bob', b'password': '{REDACTED}'}}"
    )


def test_a_b_before_a_key_is_a_prefix_only_before_a_quote(policy: RedactionPolicy) -> None:
    """``bkey=1`` is the key "bkey", not "key"; ``'bob': 1`` has no prefix."""
    for text in ("bkey=1 abkey=2", "{'bob': 'x'}", "Bkey: 1"):
        assert policy.redact_text(text) == text


# --- 4. str subclass keys at the top level ----------------------------------------------------
def test_a_str_subclass_key_is_checked_at_the_top_level(policy: RedactionPolicy) -> None:
    record = {"message": "login", Field.PASSWORD: "hunter2", Field.USER: "bob"}
    out = policy(record, 20)
    assert out[Field.PASSWORD] == REDACTED and out[Field.USER] == "bob"


def test_a_str_subclass_key_renders_as_its_text() -> None:
    """orjson refuses such a key ("Dict key must be str"); the safe path writes its text
    rather than losing the record."""
    line = JsonRenderer()({"message": "login", Field.USER: "bob"})
    assert orjson.loads(line) == {"message": "login", "user": "bob"}


def test_a_record_with_a_str_subclass_key_reaches_the_file(tmp_path: Any) -> None:
    path = tmp_path / "app.jsonl"
    servicelog.configure(profile="production", stream="none", file=str(path), strict=True)
    servicelog.get_logger("t").info("login", **{Field.PASSWORD: "hunter2", Field.USER: "bob"})
    servicelog.get_logger("t").info("nested", data={Field.PASSWORD: "hunter2"})
    servicelog.reset()
    records = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [(r["message"], r.get("password"), r.get("data")) for r in records] == [
        ("login", REDACTED, None),
        ("nested", None, {"password": REDACTED}),
    ]


# --- 5. values of denied keys in text ---------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # (a) a value followed by "(" or "[" is not source code
        ("login failed: password=Tr0ub4dor(3)x", f"login failed: password={REDACTED}"),
        ("login failed: password=hunter2[1]", f"login failed: password={REDACTED}"),
        # (b) letters are not quotes
        ("login failed: password=burr", f"login failed: password={REDACTED}"),
        ("login failed: password=BRUb", f"login failed: password={REDACTED}"),
        ("login failed: password=uNone", f"login failed: password={REDACTED}"),
        ("password=rb'x' y", f"password='{REDACTED}' y"),
        # (c) the whole value, and a header's whole line
        (
            "request headers: Cookie: theme=dark; sessid=8f1e2c9a77",
            f"request headers: Cookie: {REDACTED}",
        ),
        (
            'Authorization: Digest username="bob", response="6629fae4"\nnext',
            f"Authorization: Digest {REDACTED}\nnext",
        ),
        ("login failed: password=abc;def&ghi", f"login failed: password={REDACTED}"),
        ("config: password=abc,def", f"config: password={REDACTED}"),
    ],
)
def test_the_whole_value_of_a_denied_key_in_text_is_masked(
    policy: RedactionPolicy, text: str, expected: str
) -> None:
    assert policy.redact_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("?token=abc&page=1", f"?token={REDACTED}&page=1"),
        ("a=1;token=zz;b=2", f"a=1;token={REDACTED};b=2"),
        ("user=bob,password=x,role=admin", f"user=bob,password={REDACTED},role=admin"),
        ("Creds(user=bob, password=hunter2)", f"Creds(user=bob, password={REDACTED})"),
        ('{"h": "Cookie: a=1; b=2", "x": 1}', f'{{"h": "Cookie: {REDACTED}", "x": 1}}'),
        ("password=None, user=bob", "password=None, user=bob"),
        ("password='None'", "password='None'"),
        ("password=b''", "password=b''"),
        ('    password = read_secret("db")', '    password = read_secret("db")'),
        ('    password = os.environ["DB_PASSWORD"]', '    password = os.environ["DB_PASSWORD"]'),
        ("    api_key = keys[idx]", "    api_key = keys[idx]"),
        ("password=os.environ[x]", f"password={REDACTED}"),  # not spaced as code
    ],
)
def test_a_bare_value_ends_where_its_context_does(
    policy: RedactionPolicy, text: str, expected: str
) -> None:
    """The next query parameter, the bracket the pair sits in and the string a header sits
    in are not part of the value; ``None`` and code stay."""
    assert policy.redact_text(text) == expected


# --- 6. over-long values ----------------------------------------------------------------------
LONG = base64.b64encode(bytes(range(256)) * 20).decode()  # 6,828 characters, no spaces


@pytest.mark.parametrize(
    "template",
    [
        "upstream rejected session_token={} (retry)",
        'vault reply {{"secret": "{}"}}',
        "password=[{}] done",
    ],
)
def test_a_long_value_is_masked_to_its_end(policy: RedactionPolicy, template: str) -> None:
    """Values used to be masked for their first 2,048 (or 4,096) characters only."""
    out = policy.redact_text(template.format(LONG))
    assert LONG[-100:] not in out and LONG[:100] not in out
    assert out.endswith((" (retry)", '"}', " done"))


# --- 7. service.* and process.* ---------------------------------------------------------------
def test_only_servicelog_own_top_level_fields_are_exempt(policy: RedactionPolicy) -> None:
    """A user's ``process.command_line`` or ``service.api_key`` is checked like any key, and
    so is a nested ``service.*`` key; ``service.name`` and ``process.thread.name`` are not."""
    record = {
        "message": "spawned",
        "process.command_line": "psql postgres://app:S3cretPw@db/prod --password=S3cretPw",
        "service.api_key": "S3cretPw",
        "settings": {"service.db_password": "S3cretPw", "request_id": "password=S3cretPw"},
        "service.name": "password=kept-as-is",
        "process.thread.name": "password=kept-as-is",
    }
    out = policy(record, 20)
    assert "S3cretPw" not in repr(out)
    assert out["service.name"] == out["process.thread.name"] == "password=kept-as-is"


def test_extra_fields_from_logging_under_own_prefixes_are_redacted() -> None:
    memory = MemorySink()
    servicelog.configure(profile="production", stream="none", sinks=[memory])
    logging.getLogger("lib").warning("started", extra={"service.api_key": "S3cretPw"})
    assert memory.records[-1]["service.api_key"] == REDACTED


# --- 9. the max_text cut ----------------------------------------------------------------------
def test_a_pair_straddling_the_cut_keeps_no_value(policy: RedactionPolicy) -> None:
    """The tail of an over-long text used to be cut first: "word: Hunter2-Corp!" kept the
    secret without its key. The tail is redacted with the text before it."""
    half = policy.max_text // 2 - 64
    secret = "Hunter2-Corp!"
    rest = "y" * (half - len("word: " + secret + " "))
    text = "a " * 40000 + "password: " + secret + " " + rest
    out = policy.redact_text(text)
    assert secret not in out and "chars cut>" in out
    assert policy.redact_text(out) == out


# --- 10. URL userinfo -------------------------------------------------------------------------
@pytest.mark.parametrize("pii", [False, True])
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp://alerts@corp.com:S3cretPw@smtp.corp.com:587",
            f":{REDACTED}@smtp.corp.com:587",
        ),
        ("postgres://app:S3cr/etPw@db/x", f"postgres://app:{REDACTED}@db/x"),
        ("amqp://u:S3cret#Pw@mq//", f"amqp://u:{REDACTED}@mq//"),
        ("https://u:p@ss@host.example/", f"https://u:{REDACTED}@host.example/"),
    ],
)
def test_the_whole_url_password_is_masked(pii: bool, url: str, expected: str) -> None:
    """The password ends at the authority's last "@"; with PII on, no e-mail mask keeps its
    first three characters."""
    out = RedactionPolicy(pii=pii).redact_text(url)
    assert out.endswith(expected) and "S3c" not in out


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://user:p#ss@db/x", f"postgres://user:{REDACTED}@db/x"),
        ("https://u:a#b@host/path#frag", f"https://u:{REDACTED}@host/path#frag"),
        ("amqp://u:S3cr/et#Pw@mq/v?x=1", f"amqp://u:{REDACTED}@mq/v?x=1"),
        (
            "git+https://u:ghtoken1@github.com/org/repo@v1.0#egg=x",
            f"git+https://u:{REDACTED}@github.com/org/repo@v1.0#egg=x",
        ),
    ],
)
def test_redact_url_masks_a_password_holding_a_hash(url: str, expected: str) -> None:
    """``redact_url`` split at "#" before it looked for the password: one with a "#" in it
    was left whole."""
    policy = RedactionPolicy()
    assert policy.redact_url(url) == expected == policy.redact_text(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8000/users/john.doe@example.com",
        "https://user@host:8080/p?email=a@b.com",
        "https://h/p?x=a:b@c",
    ],
)
def test_a_port_or_a_query_is_no_url_password(url: str) -> None:
    assert RedactionPolicy().redact_text(url) == url


# --- 11. colliding redacted keys --------------------------------------------------------------
def test_colliding_redacted_keys_get_numbered_suffixes(policy: RedactionPolicy) -> None:
    value = {"AKIAIOSFODNN7EXAMPLE": 1, "AKIAI44QH8DHBEXAMPLE": 2, "AKIAJ55RI9EICEXAMPLE": 3}
    out = policy.redact_mapping(value)
    assert out == {REDACTED: 1, f"{REDACTED}~2": 2, f"{REDACTED}~3": 3}
    assert policy.redact_mapping(out) == out


def test_thousands_of_colliding_keys_take_linear_time() -> None:
    """4,999 e-mail keys masked alike took ~8 s: a "~" added per earlier collision made the
    keys, and the work, grow with their number. Short suffixes mean linear work."""
    policy = RedactionPolicy(pii=True, max_items=5000)
    record = {"message": "m", "by_user": {f"user{i}@corp.com": i for i in range(4999)}}
    out = policy(record, 20)
    assert len(out["by_user"]) == 4999
    assert max(len(key) for key in out["by_user"]) < 24


# --- values written by one rendering and judged by another (review of 2026-12-01) --------------
@dataclasses.dataclass
class Conn:
    host: str
    _password: str


class Masked(tuple):  # type: ignore[type-arg]
    """A tuple subclass whose repr (what the renderers write: orjson refuses it) shows more
    than its items."""

    secret = "token=abc123secret"

    def __repr__(self) -> str:
        return f"Masked({self.secret})"


class Hidden(Creds):
    def __repr__(self) -> str:
        return f"Hidden<{self.user}:{self.password}>"


class Described(collections.namedtuple("Point", "x y")):
    def __repr__(self) -> str:
        return "Described(AKIAIOSFODNN7EXAMPLE)"


@pytest.mark.parametrize(
    ("value", "secret"),
    [
        # the safe path (an int orjson refuses, or a line over 16 KiB) wrote the repr, private
        # fields included; orjson and the walk skip those
        pytest.param({"conn": Conn("db", "hunter2"), "big": 2**70}, "hunter2", id="dataclass"),
        pytest.param({"conn": Conn("db", "hunter2"), "pad": "y" * 20000}, "hunter2", id="cut"),
        pytest.param({"t": Masked((1, 2))}, "abc123secret", id="tuple subclass repr"),
        pytest.param({"t": Described(1, 2)}, "AKIAIOSFODNN7EXAMPLE", id="namedtuple repr"),
        # a repr of its own that shows no field name: the fields are still judged by name,
        # and on the safe path (the line writes the items) as well
        pytest.param({"t": Hidden("bob", "hunter2")}, "hunter2", id="namedtuple, own repr"),
        pytest.param({"t": [Hidden("bob", "hunter2")]}, "hunter2", id="in a list"),
        pytest.param({Hidden("bob", "hunter2"): 1}, "hunter2", id="as a key"),
        pytest.param({"t": Hidden("bob", "hunter2"), "big": 2**70}, "hunter2", id="safe path"),
        # a key orjson refuses is written as its repr: a pair by its name, text by its patterns
        pytest.param({("password", "hunter2"): 1}, "hunter2", id="pair key"),
        pytest.param({("aws", "AKIAIOSFODNN7EXAMPLE"): 2}, "AKIAIOSFODNN7EXAMPLE", id="tuple key"),
        pytest.param({frozenset({"token=abc123secret"}): 3}, "abc123secret", id="frozenset key"),
    ],
)
def test_what_the_renderer_writes_is_what_the_policy_judged(value: Any, secret: str) -> None:
    sink = MemorySink(JsonRenderer())
    servicelog.configure(service="t", profile="production", stream="none", sinks=[sink])
    servicelog.get_logger("t").info("m", field=value)
    servicelog.flush()
    [line] = sink.lines
    assert secret not in line.decode()
    assert orjson.loads(line)["message"] == "m"
