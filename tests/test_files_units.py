"""Parsing of the file-set options: sizes, durations, times of day, rotation, retention,
compression. Every bad value raises ConfigError naming the option, the value and what is
allowed."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servicelog import ConfigError
from servicelog._units import parse_duration, parse_size, parse_time_of_day
from servicelog.sinks.rotating import (
    Daily,
    Every,
    parse_compression,
    parse_retention,
    parse_rotation,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100 MB", 100_000_000),
        ("100MB", 100_000_000),
        ("1 MiB", 1_048_576),
        ("1.5 GiB", 1_610_612_736),
        ("512 kb", 512_000),
        ("5GB", 5_000_000_000),
        ("42", 42),
        (4096, 4096),
        ("1 TB", 10**12),
    ],
)
def test_sizes(text: object, expected: int) -> None:
    """SI units are powers of 1000, IEC units (KiB, MiB) powers of 1024, a bare number bytes."""
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["100 M", "ten MB", "", "-1 MB", "0", 0, 1.5, True, None, "1 MBB"])
def test_bad_sizes_name_the_option_and_the_allowed_forms(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"option 'rotation' got .*; expected a size"):
        parse_size(bad, "rotation")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30 days", 30 * 86400),
        ("1 week", 604800),
        ("2 weeks", 1209600),
        ("6 hours", 21600),
        ("90 min", 5400),
        ("1 second", 1),
        ("1 h 30 min", 5400),
        ("1.5 days", 129600),
        (timedelta(minutes=5), 300),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["30", "a week", "3 fortnights", "0 days", "", 30, None])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ConfigError, match="expected a duration"):
        parse_duration(bad, "retention")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:00", time(0)),
        ("13:30", time(13, 30)),
        ("at 02:00", time(2)),
        ("23:59:59", time(23, 59, 59)),
    ],
)
def test_times_of_day(text: str, expected: time) -> None:
    assert parse_time_of_day(text) == expected


@pytest.mark.parametrize("bad", ["24:00", "12:60", "noon", "1200", 12])
def test_bad_times_of_day(bad: object) -> None:
    with pytest.raises(ConfigError, match="expected a time of day"):
        parse_time_of_day(bad)


@given(st.integers(min_value=1, max_value=10**15))
def test_a_size_in_bytes_reads_back(n: int) -> None:
    assert parse_size(str(n)) == n == parse_size(f"{n} B")


def test_rotation_specs() -> None:
    """Every form the guide uses, and combinations (any one due rotates)."""
    daily = parse_rotation("00:00")
    assert isinstance(daily.period, Daily) and daily.period.at == time(0)
    weekly = parse_rotation("1 week")
    assert isinstance(weekly.period, Daily) and weekly.period.days == 7
    weekly_alias = parse_rotation("weekly").period
    assert isinstance(weekly_alias, Daily) and weekly_alias.days == 7
    hourly = parse_rotation("1 hour")
    assert isinstance(hourly.period, Every) and hourly.period.seconds == 3600
    assert parse_rotation("100 MB").size == 100_000_000
    assert parse_rotation(1024).size == 1024
    both = parse_rotation("1 week or 500 MB")
    assert isinstance(both.period, Daily) and both.size == 500_000_000
    listed = parse_rotation(["00:00", "100 MB"])
    assert listed.size == 100_000_000 and listed.period is not None

    def custom(path: str, stat: object) -> bool:
        return False

    assert parse_rotation(custom).custom is custom
    assert parse_rotation(None) == parse_rotation([])


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("soon", "expected a time of day"),
        ("0.5 seconds", "at least 1 second"),
        (["00:00", "1 hour"], "at most one time-based rotation"),
        (True, "expected a time of day"),
        (3.5, "expected a time of day"),
    ],
)
def test_bad_rotation_specs(bad: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_rotation(bad)  # type: ignore[arg-type]


def test_retention_specs() -> None:
    assert parse_retention(10) == (10, None)
    assert parse_retention("30 days") == (None, 30 * 86400)
    assert parse_retention((10, "1 week")) == (10, 604800)
    assert parse_retention(None) == (None, None)
    for bad in (0, "forever", True, 1.5):
        with pytest.raises(ConfigError, match="option 'retention'"):
            parse_retention(bad)


def test_compression_specs() -> None:
    assert [parse_compression(c) for c in ("gz", "gzip", "zip", "bz2", "xz", None)] == [
        "gz",
        "gz",
        "zip",
        "bz2",
        "xz",
        None,
    ]
    with pytest.raises(ConfigError, match="'gz', 'zip', 'bz2', 'xz', 'zstd' or None"):
        parse_compression("rar")


def test_zstd_needs_a_module_and_says_which() -> None:
    from servicelog.sinks.rotating import _zstd

    if _zstd() is not None:
        assert parse_compression("zstd") == "zstd"
    else:
        with pytest.raises(ConfigError, match="pip install zstandard"):
            parse_compression("zstd")


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (10**30, "at most 1 PiB"),
        ("9" * 400 + " TB", "at most 1 PiB"),  # float('9' * 400) is inf
        ("1025 TiB", "at most 1 PiB"),
        ("٣ MB", "expected a size"),  # ASCII digits only
    ],
)
def test_huge_or_non_ascii_sizes_are_config_errors(bad: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_size(bad, "rotation")


def test_the_largest_size_is_one_pib() -> None:
    assert parse_size("1024 TiB") == 1024**5
    assert parse_size(1024**5) == 1024**5


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("99999999999 weeks", "at most 100 years"),  # OverflowError in timedelta()
        ("1" + "0" * 400 + " s", "at most 100 years"),
        ("101 weeks 36500 days", "at most 100 years"),
        (timedelta(days=40000), "at most 100 years"),
        ("٣ days", "expected a duration"),
    ],
)
def test_huge_or_non_ascii_durations_are_config_errors(bad: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_duration(bad, "retention")


def test_a_time_of_day_takes_ascii_digits_only() -> None:
    with pytest.raises(ConfigError, match="expected a time of day"):
        parse_time_of_day("\u0660\u0662:\u0660\u0660")  # Arabic-Indic 02:00
