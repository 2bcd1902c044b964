"""Key rules: case and separators do not matter, suffixes catch compound names, short words
match whole keys only, and servicelog's own fields are never touched."""

from __future__ import annotations

from typing import Any

import pytest

from servicelog.redaction import (
    DEFAULT_KEY_SUFFIXES,
    DEFAULT_KEYS,
    OWN_FIELDS,
    PII_KEYS,
    REDACTED,
    RedactionPolicy,
    normalize_key,
)

DENIED = [
    # one key, every spelling (catalog item I6)
    "api_key",
    "Api-Key",
    "apiKey",
    "APIKEY",
    "X-API-KEY",
    "x_api_key",
    "api.key",
    "api key",
    # suffixes
    "password",
    "Password",
    "db_password",
    "DB-PASSWORD",
    "userPassword",
    "user[password]",
    "passwd",
    "client_secret",
    "X-Foo-Secret",
    "webhookSecret",
    "access_token",
    "refreshToken",
    "X-Auth-Token",
    "csrftoken",
    "XSRF-TOKEN",
    "Authorization",
    "Proxy-Authorization",
    "Cookie",
    "Set-Cookie",
    "sessionid",
    "PHPSESSID",
    "credentials",
    "private_key",
    "aws_secret_access_key",
    "passphrase",
    "connection_string",
    # whole keys
    "auth",
    "pwd",
    "session",
    "ssn",
    "credit_card",
    "cvv",
    "key",
    "connect.sid",
]

PLAIN = [
    "message",
    "user",
    "username",
    "author",
    "oauth_provider",
    "authenticated",
    "tokens_used",
    "max_tokens",
    "token_count",
    "password_reset_required_at",
    "cache_key",
    "keyboard",
    "secretary_name",
    "session_count",
    "cookies_enabled",
    "path",
    "status",
]


@pytest.mark.parametrize("key", DENIED)
def test_denied_keys_in_any_spelling(key: str) -> None:
    """Case and separators (``-``, ``_``, ``.``, space, brackets) are ignored."""
    policy = RedactionPolicy()
    assert policy.is_denied(key)
    assert policy.redact_mapping({key: "s3cr3t-value"}) == {key: REDACTED}


@pytest.mark.parametrize("key", PLAIN)
def test_plain_keys_are_not_denied(key: str) -> None:
    """Short words match whole keys only; no substring matching (the guide's "auth" in
    "author" problem)."""
    policy = RedactionPolicy()
    assert not policy.is_denied(key)
    value = {key: "plain value"}
    assert policy.redact_mapping(value) is value


@pytest.mark.parametrize("key", [*sorted(OWN_FIELDS), "service.name", "process.pid"])
def test_servicelog_own_fields_are_never_touched(key: str) -> None:
    """Own ID and metadata fields keep their value even if it looks like a secret."""
    policy = RedactionPolicy(pii=True)
    record = {key: "password=hunter2 AKIAIOSFODNN7EXAMPLE john@example.com"}
    assert policy(record, 20) is record


@pytest.mark.parametrize(
    ("key", "normalised"),
    [
        ("X-API-KEY", "xapikey"),
        ("apiKey", "apikey"),
        ("api_key", "apikey"),
        ("Api-Key", "apikey"),
        ("user.password", "userpassword"),
        ("user[password]", "userpassword"),
        ("Set Cookie", "setcookie"),
        # a key's repr, as reports of local variables write a dict's bytes keys
        ("b'X-Session-Token'", "xsessiontoken"),
        ('b"password"', "password"),
        ("'api_key'", "apikey"),
        ("it's", "it's"),
    ],
)
def test_normalize_key(key: str, normalised: str) -> None:
    assert normalize_key(key) == normalised


def test_a_dict_keyed_by_bytes_reprs_is_redacted_by_its_keys() -> None:
    """Sentry (and other reporters of local variables) write ``{b"x-session-token": ...}``
    with the key's repr: it is judged by what is between the quotes."""
    headers = {"b'x-session-token'": "b'tok_abcdefghijkl0123'", "b'password'": "b'x'"}
    redacted = RedactionPolicy().redact_mapping({"first": {**headers, "b'host'": "b'shop'"}})
    assert redacted["first"] == {**dict.fromkeys(headers, REDACTED), "b'host'": "b'shop'"}


def test_every_default_key_is_stored_normalised() -> None:
    """The tables hold normalised keys, or a key there could never match."""
    for key in (*DEFAULT_KEYS, *DEFAULT_KEY_SUFFIXES, *PII_KEYS):
        assert normalize_key(key) == key


def test_pii_keys_only_with_the_pii_switch() -> None:
    record = {"phone": "0170 1234567", "x_forwarded_for": "203.0.113.9"}
    assert RedactionPolicy().redact_mapping(record) is record
    assert RedactionPolicy(pii=True).redact_mapping(record) == dict.fromkeys(record, REDACTED)


def test_denied_keys_at_any_depth_and_in_any_container() -> None:
    """Nested dicts, lists, tuples and sets are all walked; siblings stay as they are."""
    value: dict[str, Any] = {
        "user": {"name": "bob", "auth": {"password": "x", "otp": "123456"}},
        "items": [{"token": "t1"}, ({"secret": "s"}, "kept")],
        "tags": frozenset({"a", "b"}),
        "n": 3,
    }
    out = RedactionPolicy().redact_mapping(value)
    assert out == {
        "user": {"name": "bob", "auth": REDACTED},
        "items": [{"token": REDACTED}, ({"secret": REDACTED}, "kept")],
        "tags": frozenset({"a", "b"}),
        "n": 3,
    }
    assert out["tags"] is value["tags"], "unchanged containers are not copied"
    assert value["user"]["auth"]["password"] == "x", "the input is never mutated"


def test_none_booleans_and_empty_values_of_denied_keys_stay() -> None:
    """They reveal nothing, and "no password was given" helps debugging."""
    record = {"password": None, "token": "", "secret": False, "api_key": True}
    assert RedactionPolicy().redact_mapping(record) is record


def test_any_value_of_a_denied_key_is_replaced() -> None:
    value = {"credentials": {"user": "bob"}, "token": 12345, "cookie": b"sid=1", "pin": 1234}
    assert RedactionPolicy().redact_mapping(value) == dict.fromkeys(value, REDACTED)


def test_extra_keys_suffixes_and_allowed_keys() -> None:
    """Users add whole keys and suffixes, and allow keys (which are then not even scanned)."""
    policy = RedactionPolicy(
        keys=["employee-id"], key_suffixes=["_dob"], allow_keys=["Session", "note"]
    )
    value = {
        "employeeId": "E-1",
        "customer_dob": "1990-01-01",
        "session": "abc",
        "note": "password=visible-on-purpose",
        "other": "password=hidden",
    }
    assert policy.redact_mapping(value) == {
        "employeeId": REDACTED,
        "customer_dob": REDACTED,
        "session": "abc",
        "note": "password=visible-on-purpose",
        "other": f"password={REDACTED}",
    }


def test_defaults_false_starts_from_nothing() -> None:
    policy = RedactionPolicy(defaults=False, keys=["pin"])
    assert policy.redact_mapping({"password": "x", "pin": "1"}) == {
        "password": "x",
        "pin": REDACTED,
    }
    assert policy.redact_text("password=x pin=1") == "password=x pin=[REDACTED]"
    assert policy.redact_text("AKIAIOSFODNN7EXAMPLE") == "AKIAIOSFODNN7EXAMPLE", "no patterns"


def test_a_key_that_is_itself_a_secret_is_renamed() -> None:
    """A dict keyed by e-mail or by token must not leak through its keys."""
    value = {"john@example.com": 3, "AKIAIOSFODNN7EXAMPLE": "x", "plain": 1}
    out = RedactionPolicy(pii=True).redact_mapping(value)
    assert out == {"joh***@***.com": 3, REDACTED: "x", "plain": 1}


def test_renamed_keys_never_collide() -> None:
    value = {"AKIAIOSFODNN7EXAMPLE": 1, "AKIAI44QH8DHBEXAMPLE": 2}
    out = RedactionPolicy().redact_mapping(value)
    assert sorted(out.values()) == [1, 2] and len(out) == 2


def test_only_short_keys_found_in_text_are_remembered() -> None:
    """The policy remembers per key found in text whether it is denied, but only keys of up to
    32 characters: a longer "key" may itself be a token, which must not stay in memory."""
    policy = RedactionPolicy()
    token_like = "a9f3c1e7b2d84f60a1c3e5b7d9f1a2c4e6"  # 34 characters
    text = f"user_name=alice {token_like}=1 password=hunter2"
    assert policy.redact_text(text) == f"user_name=alice {token_like}=1 password={REDACTED}"
    remembered = set(policy._pair_keys)
    assert {"user_name", "password"} <= remembered
    assert token_like not in remembered
    assert all(len(key) <= 32 for key in remembered)
