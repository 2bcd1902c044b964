"""Hypothesis properties of the policy over random nested structures (catalog item S1)."""

from __future__ import annotations

import string
import uuid
from typing import Any
from urllib.parse import quote

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from servicelog.redaction import REDACTED, RedactionPolicy, normalize_key
from servicelog.render.json import JsonRenderer

POLICY = RedactionPolicy(pii=True)

# Denied keys in random case and with random separators.
DENIED_STEMS = [
    "password",
    "api_key",
    "secret",
    "access_token",
    "authorization",
    "cookie",
    "passwd",
]


@st.composite
def denied_keys(draw: st.DrawFn) -> str:
    stem = draw(st.sampled_from(DENIED_STEMS))
    prefix = draw(st.sampled_from(["", "x-", "db_", "User.", "my "]))
    chars = [c.upper() if draw(st.booleans()) else c for c in prefix + stem]
    sep = draw(st.sampled_from(["", "-", "_", ".", " "]))
    return "".join(chars).replace("_", sep)


# Plain keys: never denied (and not one of servicelog's own fields, which are exempt).
plain_keys = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12).filter(
    lambda k: not POLICY.is_denied(k)
)
# Plain values: no pattern can match them (letters and spaces only, short words), and none is
# a denied name ("mobile" under pii=True): a (name, value) pair of them is judged by its name.
plain_text = st.text("abcdefghij klmnop", max_size=30).filter(lambda t: not POLICY.is_denied(t))
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | plain_text


def nested(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4)
            | st.tuples(children, children)
            | st.dictionaries(plain_keys, children, max_size=4)
        ),
        max_leaves=15,
    )


@st.composite
def planted(draw: st.DrawFn) -> tuple[Any, str]:
    """A random structure with a canary under a denied key at a random depth."""
    canary = f"CANARY-{uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))}"
    secret: Any = {draw(denied_keys()): canary}
    for _ in range(draw(st.integers(0, 6))):
        wrap = draw(st.sampled_from(["dict", "list", "tuple"]))
        sibling = draw(nested(scalars))
        if wrap == "dict":
            secret = {draw(plain_keys) + "_x": secret, "sibling": sibling}
        elif wrap == "list":
            secret = [sibling, secret]
        else:
            secret = (secret, sibling)
    return {"payload": secret, "other": draw(nested(scalars))}, canary


@settings(max_examples=300, deadline=None)
@given(
    secret=st.text(string.ascii_letters + string.digits + "-_.~", min_size=6, max_size=40),
    layers=st.integers(1, 3),
    before=plain_text,
    after=plain_text,
)
def test_a_percent_encoded_oauth_code_never_survives(
    secret: str, layers: int, before: str, after: str
) -> None:
    """A callback URL encoded (once or more) into a redirect's query loses its code."""
    inner = f"/callback?state=s1&code={secret}"
    for _ in range(layers):
        inner = quote(inner, safe="")
    text = f"{before} /login?next={inner} {after}"
    assume(secret not in text.replace(inner, ""))
    out = POLICY.redact_text(text)
    assert secret not in out
    assert POLICY.redact_text(out) == out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(planted())
def test_no_denied_value_survives(case: tuple[Any, str]) -> None:
    value, canary = case
    out = POLICY.redact_mapping(value)
    assert canary not in repr(out)
    assert REDACTED in repr(out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(planted())
def test_siblings_are_unchanged(case: tuple[Any, str]) -> None:
    """Everything but the denied value is equal before and after (and the plain parts are
    the very same objects: nothing is copied that did not change)."""
    value, _ = case
    out = POLICY.redact_mapping(value)
    assert out["other"] is value["other"]

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: "<denied>" if POLICY.is_denied(k) else strip(v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return type(node)(strip(v) for v in node)
        return node

    assert strip(out) == strip(value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nested(st.text(max_size=60) | st.binary(max_size=30) | scalars))
def test_redaction_is_idempotent(value: Any) -> None:
    once = POLICY.redact_mapping({"v": value})
    assert POLICY.redact_mapping(once) == once


# Text built from fragments that look like secrets, parts of secrets and separators.
fragments = st.sampled_from(
    [
        "password=",
        "token: ",
        "'secret': '",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "eyJhbGciOiJIUzI1NiJ9.",
        "eyJzdWIiOiIxIn0.",
        "AKIAIOSFODNN7EXAMPLE",
        "4111 1111 1111 1111",
        "john@example.com",
        "(555) 123-4567",
        "123-45-6789",
        "https://u:p@h/",
        "?a=1&",
        "\n",
        "\u2028",
        "\x1b[31m",
        " ",
        "'",
        '"',
        "=",
        ":",
        "{",
        "}",
        "[REDACTED]",
        "***",
        # Percent-encoded pairs and URLs, read decoded as well.
        "%3D",
        "%253D",
        "%26code%3D",
        "%3Fpassword%3D",
        "https%3A%2F%2Fu%3Ap%40h%2F",
        "%20",
        "%",
    ]
)
texts = st.lists(fragments | st.text(max_size=8), max_size=25).map("".join)


@settings(max_examples=500, deadline=None)
@given(texts)
def test_text_redaction_is_idempotent(text: str) -> None:
    once = POLICY.redact_text(text)
    assert POLICY.redact_text(once) == once


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    message=texts,
    fields=st.dictionaries(
        st.one_of(plain_keys, denied_keys(), st.text(max_size=10)),
        nested(st.text(max_size=40) | st.binary(max_size=20) | scalars),
        max_size=6,
    ),
)
def test_a_redacted_record_renders_as_one_valid_json_line(
    message: str, fields: dict[str, Any]
) -> None:
    record = {"@timestamp": "2026-11-29T00:00:00.000000Z", "log.level": "info", "message": message}
    record.update({f"f.{k}": v for k, v in fields.items()})
    out = POLICY(record, 20)
    line = JsonRenderer(4096)(out)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert len(line.decode("utf-8").splitlines()) == 1
    parsed = orjson.loads(line)
    for key, value in fields.items():
        if POLICY.is_denied(f"f.{key}") and value not in (None, True, False, "", REDACTED):
            assert parsed.get(f"f.{key}") == REDACTED


# One long-lived policy, so that its plans and clean-string cache are warm, as in a service:
# records of one shape repeat, and only the containers in them change.
WARM = RedactionPolicy(pii=True)
warm_leaves = st.sampled_from(["fine", "ok", "token=abc", "AKIAIOSFODNN7EXAMPLE"]) | scalars
warm_keys = plain_keys | denied_keys() | st.sampled_from(["id", "items", "service.name"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    order=st.recursive(
        warm_leaves,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(warm_keys, children),
        max_leaves=12,
    ),
    note=st.sampled_from(["fine", "password=x", "u1"]),
)
def test_a_warm_policy_redacts_containers_as_a_fresh_one_does(order: Any, note: str) -> None:
    """The fast path walks only a record's containers, and skips even that when they hold only
    known-clean parts: its result is always what a fresh policy's full walk gives, in
    ``__call__`` and in ``fuse_emit``."""
    record = {"@timestamp": "t", "log.level": "info", "message": "m", "note": note, "order": order}
    expected = RedactionPolicy(pii=True)(dict(record), 20)
    assert WARM(dict(record), 20) == expected
    emitted: list[dict[str, Any]] = []
    WARM.fuse_emit(lambda rec, levelno: emitted.append(rec))(dict(record), 20)
    assert emitted == [expected]


def test_the_key_strategy_only_makes_denied_keys() -> None:
    """A guard on the test itself: every stem is denied in every spelling."""
    for stem in DENIED_STEMS:
        assert RedactionPolicy().is_denied(stem.upper()), normalize_key(stem)


def _reference_luhn(digits: str) -> bool:
    """Luhn's checksum as textbooks write it: double every second digit from the right."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


@given(st.text(alphabet="0123456789", min_size=1, max_size=40))
def test_the_luhn_check_agrees_with_the_textbook_one(digits: str) -> None:
    """The card rule sums digits with C calls only (bytes sums, a translate()); the result is
    Luhn's, for every length and either parity."""
    from servicelog.redaction import _luhn

    assert _luhn(digits) is _reference_luhn(digits)
