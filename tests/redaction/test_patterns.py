"""Value patterns: each secret format is found inside text, masked as documented, and text that
only looks similar is left alone. Every case is also checked for idempotence."""

from __future__ import annotations

import pytest

from servicelog.redaction import REDACTED, RedactionPolicy

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)

# (text, expected): the secret is replaced and nothing else changes.
FOUND = [
    # JWTs, anywhere in text
    (f"token {JWT} sent", f"token {REDACTED} sent"),
    (f"jwt={JWT}", f"jwt={REDACTED}"),
    ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", REDACTED),  # alg "none": no signature
    # Bearer / Basic / Token credentials keep their scheme
    ("Authorization: Bearer abc.def-123", "Authorization: Bearer [REDACTED]"),
    ("sent bearer 9f8e7d6c5b4a to upstream", "sent bearer [REDACTED] to upstream"),
    ("got Basic dXNlcjpodW50ZXIy back", "got Basic [REDACTED] back"),
    ("auth header was BASIC YWxhZGRpbjpvcGVuc2VzYW1l", "auth header was BASIC [REDACTED]"),
    ("Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b", "Token [REDACTED]"),
    # card numbers, Luhn-checked, with or without separators; the last 4 digits stay
    ("paid with 4111111111111111", "paid with ****-****-****-1111"),
    ("card 4111 1111 1111 1111 exp 12/29", "card ****-****-****-1111 exp 12/29"),
    ("mc 5555-5555-5555-4444.", "mc ****-****-****-4444."),
    ("amex 378282246310005", "amex ****-****-****-0005"),
    ("amex 3782 822463 10005", "amex ****-****-****-0005"),
    ("discover 6011111111111117", "discover ****-****-****-1117"),
    ("order 12 for 4012888888881881", "order 12 for ****-****-****-1881"),
    ("jcb 3530111333300000", "jcb ****-****-****-0000"),
    ("diners 36227206271667 / 30569309025904", "diners ****-****-****-1667 / ****-****-****-5904"),
    ("unionpay 6200000000000005", "unionpay ****-****-****-0005"),
    ("mastercard 2-series 2223003122003222", "mastercard 2-series ****-****-****-3222"),
    ("visa 13 digits 4222222222222", "visa 13 digits ****-****-****-2222"),
    # URL passwords
    ("postgres://app:s3cr3t@db:5432/x", "postgres://app:[REDACTED]@db:5432/x"),
    ("redis://:p4ss@cache:6379/0", "redis://:[REDACTED]@cache:6379/0"),
    ("https://u:p@ss@host.example/", "https://u:[REDACTED]@host.example/"),
    # provider key formats
    ("AKIAIOSFODNN7EXAMPLE", REDACTED),
    ("id=ASIAY34FZKBOKMUTVV7A;", f"id={REDACTED};"),
    ("ghp_16C7e42F292c6912E7710c838347Ae178B4a", REDACTED),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", REDACTED),
    ("key sk_live_4eC39HqLyjWDarjtT1zdp7dc ok", f"key {REDACTED} ok"),
    ("rk_test_51H0abcdEFGHijklMNOP", REDACTED),
    ("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", REDACTED),
    ("AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe", REDACTED),
    ("OPENAI sk-proj-Abc123Def456Ghi789Jkl012Mno345", f"OPENAI {REDACTED}"),
    ("glpat-xxxxxxxxxxxxxxxxxxxx", REDACTED),
    ("npm_abcdefghijklmnopqrstuvwxyz0123456789", REDACTED),
    # high-entropy secrets with no known prefix (an AWS secret access key)
    ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", REDACTED),
    ("secret is Zr8kQ2vN7xL4pW9mT3bY6cH1fJ5dG0sA in env", f"secret is {REDACTED} in env"),
    # private key blocks
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\nok",
        f"{REDACTED}\nok",
    ),
    ("x -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA", f"x {REDACTED}"),
]

# PII (pii=True): e-mails masked the guide's way, phone numbers, SSNs.
FOUND_PII = [
    ("mail john@example.com now", "mail joh***@***.com now"),
    ("jo@example.org", "j***@***.org"),
    ("first.last+tag@sub.example.co.uk", "fir***@***.uk"),
    ("call (555) 123-4567", "call ***-***-****"),
    ("call 555-123-4567 or 555.987.6543", "call ***-***-**** or ***-***-****"),
    ("uk +44 20 7946 0958", "uk ***-***-****"),
    ("us +1 415 555 2671.", "us ***-***-****."),
    ("ssn 123-45-6789", "ssn ***-**-****"),
]

# Text that must come out unchanged.
NOT_FOUND = [
    "request completed",
    "GET /items/42 200",
    "user 12345 logged in from 10.0.0.1",
    "3f1c2a9e-5b7d-4c8e-9a1f-2b3c4d5e6f70",  # UUID
    "4BF92F3577B34DA6A3CE929D0E0E4736",  # trace id, upper case
    "00f067aa0ba902b7",  # span id
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # SHA-256
    "da39a3ee5e6b4b0d3255bfef95601890afd80709",  # SHA-1 / git commit
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # traceparent
    "2026-11-29T15:14:20.678341Z",
    "price $1,234.56 (EUR 1.234,56)",
    "order ORD-2024-000123, invoice 2024/11/000045",
    "/usr/lib/python3.11/site-packages/starlette/middleware/errors.py",
    "/Users/JohnSmith/Library/Caches/ThingApp2024/data.sqlite",
    "https://api.example.com/v1/users/42/orders?page=2&sort=desc",
    "ThisIsAVeryLongCamelCaseClassName2024Handler",
    "UserProfileSettingsController_v2_Updated",
    "4111111111111112",  # fails Luhn
    "3782822463100050",  # passes Luhn, but American Express numbers have 15 digits
    "1234567890123456",  # no card issuer starts with 1
    "ts 1732890000 ms 1732890000123",  # unix timestamps
    "the bearer instrument; basic information; the token expired",
    "Basic plan, Basic auth not configured",
    "version 1.2.3 build 20241129",
    "sk-short",
    "tokens_used=1234 max_tokens=4096",  # "tokens" is not "token"
    "author=alice oauth_provider=github",  # "auth" matches whole keys only
    "ssn format is 000-12-3456",  # an impossible SSN
]


@pytest.mark.parametrize(("text", "expected"), FOUND)
def test_secrets_in_text_are_replaced(policy: RedactionPolicy, text: str, expected: str) -> None:
    """Each secret format is replaced wherever it sits in the text; the rest is unchanged."""
    assert policy.redact_text(text) == expected


@pytest.mark.parametrize(("text", "expected"), FOUND_PII)
def test_pii_is_masked_with_the_pii_switch(text: str, expected: str) -> None:
    """With ``pii=True`` e-mails, phone numbers and SSNs are masked; without it they stay."""
    assert RedactionPolicy(pii=True).redact_text(text) == expected
    assert RedactionPolicy(pii=False).redact_text(text) == text


@pytest.mark.parametrize("text", NOT_FOUND)
def test_benign_text_is_left_alone(policy: RedactionPolicy, text: str) -> None:
    """IDs, hashes, dates, prices, paths, URLs and words that resemble a secret stay as they are
    (the guide's "32+ alphanumerics is a key" rule would break half of these)."""
    assert policy.redact_text(text) == text


@pytest.mark.parametrize(("text", "_"), FOUND + FOUND_PII)
def test_redacting_twice_is_redacting_once(policy: RedactionPolicy, text: str, _: str) -> None:
    """Masks and markers never match a pattern again."""
    once = policy.redact_text(text)
    assert policy.redact_text(once) == once


def test_the_entropy_rule_can_be_turned_off() -> None:
    """``entropy=False`` keeps prefix-less random tokens (known formats are still found)."""
    policy = RedactionPolicy(entropy=False)
    assert policy.redact_text("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY").startswith("wJalr")
    assert policy.redact_text("AKIAIOSFODNN7EXAMPLE") == REDACTED


def test_a_key_glued_to_a_longer_token_is_not_a_key(policy: RedactionPolicy) -> None:
    """A provider prefix inside a longer word is not the start of a key."""
    text = "xAKIAIOSFODNN7EXAMPLE"
    assert policy.redact_text(text) == text
