"""``configure(redaction=..., rate_limit=...)`` and ``SERVICELOG_REDACTION``: defaults by
profile, explicit policies, off switches, and where the processors sit in the pipeline."""

from __future__ import annotations

from typing import Any

import pytest

import servicelog
from servicelog.logger import current_runtime
from servicelog.ratelimit import RateLimit
from servicelog.redaction import RedactionPolicy, default_policy
from servicelog.sinks import MemorySink

from ..conftest import NO_CAPTURE


def configure(**options: Any) -> servicelog.Settings:
    options.setdefault("stream", "none")
    options.setdefault("capture", NO_CAPTURE)
    return servicelog.configure(**options)


def test_redaction_is_on_in_every_profile_pii_in_production_only() -> None:
    for profile, pii in (("development", False), ("debug", False), ("production", True)):
        policy = configure(profile=profile).redaction
        assert isinstance(policy, RedactionPolicy) and policy.pii is pii
        assert policy is default_policy(pii=pii), "shared, so its caches stay warm"


def test_rate_limit_is_on_in_production_only() -> None:
    assert isinstance(configure(profile="production").rate_limit, RateLimit)
    assert configure(profile="development").rate_limit is None
    assert isinstance(configure(profile="development", rate_limit=True).rate_limit, RateLimit)
    assert configure(profile="production", rate_limit=False).rate_limit is None


def test_explicit_policy_and_off() -> None:
    mine = RedactionPolicy(keys=["badge"])
    assert configure(redaction=mine).redaction is mine
    assert configure(redaction=False).redaction is None
    assert configure(redaction=True).redaction is default_policy()


@pytest.mark.parametrize(("env", "on"), [("0", False), ("off", False), ("1", True), ("yes", True)])
def test_the_environment_variable(monkeypatch: pytest.MonkeyPatch, env: str, on: bool) -> None:
    monkeypatch.setenv("SERVICELOG_REDACTION", env)
    assert (configure().redaction is not None) is on
    assert configure(redaction=True).redaction is not None, "an argument wins"


def test_bad_values_name_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(servicelog.ConfigError, match="redaction"):
        configure(redaction="sometimes")
    with pytest.raises(servicelog.ConfigError, match="rate_limit"):
        configure(rate_limit=5)
    monkeypatch.setenv("SERVICELOG_REDACTION", "maybe")
    with pytest.raises(servicelog.ConfigError, match="SERVICELOG_REDACTION"):
        configure()


def test_processor_order_rate_limit_redaction_then_users() -> None:
    """Rate limit first, redaction second: the user's processors only see redacted records."""
    seen: list[dict[str, Any]] = []

    def mine(record: dict[str, Any], levelno: int) -> dict[str, Any]:
        seen.append(record)
        return record

    settings = configure(profile="production", processors=[mine], sinks=[MemorySink()])
    assert settings.rate_limit is not None and settings.redaction is not None
    assert current_runtime().pipeline.processors == (
        settings.rate_limit.__call__,
        settings.redaction.__call__,
        mine,
    )
    servicelog.get_logger("t").info("x", password="hunter2")
    assert seen[0]["password"] == "[REDACTED]"


def test_with_redaction_off_records_pass_untouched(memory: MemorySink) -> None:
    configure(sinks=[memory], redaction=False)
    servicelog.get_logger("t").info("x", password="hunter2")
    assert memory.records[0]["password"] == "hunter2"
    assert current_runtime().pipeline.processors == ()
