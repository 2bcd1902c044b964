"""Retention planning (servicelog.retention) and the ``servicelog cleanup`` command."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from servicelog import ConfigError
from servicelog.cli import cleanup
from servicelog.retention import apply_cleanup, plan_cleanup, scan

DAY = 86400
NOW = 1_800_000_000.0


def _file(directory: Path, name: str, size: int, age_days: float) -> Path:
    path = directory / name
    path.write_bytes(b"x" * size)
    os.utime(path, (NOW - age_days * DAY,) * 2)
    return path


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    _file(d, "app_2026-10-01.jsonl.gz", 1000, 60)
    _file(d, "app_2026-11-01.jsonl.gz", 2000, 29)
    _file(d, "app_2026-11-20.jsonl", 3000, 10)
    _file(d, "app.jsonl", 50_000, 45)  # old but active: a quiet service
    (d / ".app.jsonl.lock").write_bytes(b"")
    _file(d, "worker.log.1", 700, 40)
    _file(d, "worker.log", 800, 40)  # active: numbered backups name it
    _file(d, "notes.txt", 10, 400)  # not a log
    _file(d, ".app_2026-11-20.jsonl.gz.part", 10, 400)  # being compressed
    return d


def _names(files: tuple[object, ...] | list[object]) -> list[str]:
    return [os.path.basename(f.path) for f in files]  # type: ignore[attr-defined]


def test_scan_finds_logs_and_marks_active_files(logs: Path) -> None:
    found = {os.path.basename(f.path): f.active for f in scan(logs)}
    assert found == {
        "app_2026-10-01.jsonl.gz": False,
        "app_2026-11-01.jsonl.gz": False,
        "app_2026-11-20.jsonl": False,
        "app.jsonl": True,
        "worker.log.1": False,
        "worker.log": True,
    }


def test_plan_by_age_never_takes_an_active_file(logs: Path) -> None:
    plan = plan_cleanup(logs, days=30, now=NOW)
    assert _names(plan.delete) == ["app_2026-10-01.jsonl.gz", "worker.log.1"]
    assert plan.freed_bytes == 1700


def test_plan_by_size_deletes_oldest_first_until_under(logs: Path) -> None:
    total = 1000 + 2000 + 3000 + 50_000 + 700 + 800
    plan = plan_cleanup(logs, max_bytes=total - 2500, now=NOW)
    assert plan.total_bytes == total
    assert _names(plan.delete) == [
        "app_2026-10-01.jsonl.gz",
        "worker.log.1",
        "app_2026-11-01.jsonl.gz",
    ]
    assert not plan.unreachable


def test_a_size_below_the_active_files_is_reported_unreachable(logs: Path) -> None:
    plan = plan_cleanup(logs, max_bytes=1000, now=NOW)
    assert plan.unreachable
    assert all(not f.active for f in plan.delete)
    assert {os.path.basename(f.path) for f in plan.keep} == {"app.jsonl", "worker.log"}


def test_apply_deletes_and_tolerates_files_already_gone(logs: Path) -> None:
    plan = plan_cleanup(logs, days=30, now=NOW)
    (logs / "worker.log.1").unlink()
    result = apply_cleanup(plan)
    assert _names(result.deleted) == ["app_2026-10-01.jsonl.gz", "worker.log.1"]
    assert result.errors == [] and not (logs / "app_2026-10-01.jsonl.gz").exists()
    assert (logs / "app.jsonl").exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "--days and/or --max-size"),
        ({"days": 0}, "greater than zero"),
        ({"max_bytes": -1}, "zero or more"),
    ],
)
def test_plan_refuses_bad_options(logs: Path, kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        plan_cleanup(logs, **kwargs)  # type: ignore[arg-type]


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="servicelog")
    cleanup.add_parser(parser.add_subparsers(dest="command"))
    return cleanup.run(parser.parse_args(["cleanup", *argv]))


def test_cli_dry_run_prints_and_deletes_nothing(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for f in logs.iterdir():  # make "now" the real now for the command
        st = f.stat()
        os.utime(f, (st.st_atime + time.time() - NOW,) * 2)
    assert _cli("--dir", str(logs), "--days", "30", "--dry-run") == 0
    out = capsys.readouterr().out
    assert f"would delete {logs}/app_2026-10-01.jsonl.gz (1.0 KB)" in out
    assert "would free 1.7 KB in 2 file(s)" in out
    assert (logs / "app_2026-10-01.jsonl.gz").exists()
    assert _cli("--dir", str(logs), "--days", "30") == 0
    assert "freed 1.7 KB in 2 file(s)" in capsys.readouterr().out
    assert not (logs / "app_2026-10-01.jsonl.gz").exists()


def test_cli_max_size(logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("--dir", str(logs), "--max-size", "55KB") == 0
    out = capsys.readouterr().out
    assert out.count("deleted ") == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--days", "soon"], "--days got 'soon'; expected a number of days greater than zero"),
        (["--days", "-3"], "expected a number of days greater than zero"),
        (["--max-size", "5 bananas"], "--max-size got '5 bananas'; expected a size"),
    ],
)
def test_cli_bad_arguments_exit_2_with_a_clear_message(
    logs: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _cli("--dir", str(logs), *argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_without_a_policy_or_directory_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli("--dir", str(tmp_path)) == 2
    assert "give --days N and/or --max-size SIZE" in capsys.readouterr().err
    assert _cli("--dir", str(tmp_path / "missing"), "--days", "3") == 1
    assert "is not a directory" in capsys.readouterr().err


@pytest.mark.slow
def test_the_module_runs_as_a_command(logs: Path) -> None:
    """``python -m servicelog.cli.cleanup`` works on its own (what deploy/ can call)."""
    out = subprocess.run(
        [sys.executable, "-m", "servicelog.cli.cleanup", "--dir", str(logs), "--max-size", "1GB"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "freed 0 B in 0 file(s)" in out.stdout


DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def _commands() -> list[list[str]]:
    """The ``servicelog cleanup`` command lines the deploy files run."""
    import shlex

    lines = (DEPLOY / "cron" / "servicelog-cleanup").read_text().splitlines()
    lines += (DEPLOY / "systemd" / "servicelog-cleanup.service").read_text().splitlines()
    out = []
    for line in lines:
        if "servicelog cleanup --" in line and not line.lstrip().startswith("#"):
            words = shlex.split(line.split("servicelog cleanup", 1)[1].split("2>&1")[0])
            out.append(words)
    return out


def test_the_deploy_files_run_valid_cleanup_commands(logs: Path) -> None:
    """Each command line in deploy/ parses with the real parser (so a flag renamed in the code
    cannot silently break a timer), and the systemd pair is complete."""
    import configparser

    commands = _commands()
    assert len(commands) == 3
    for words in commands:
        words[words.index("--dir") + 1] = str(logs)
        assert _cli(*words, "--dry-run") == 0
    timer = configparser.ConfigParser(strict=False)
    timer.read(DEPLOY / "systemd" / "servicelog-cleanup.timer")
    assert timer["Timer"]["OnCalendar"] and timer["Install"]["WantedBy"] == "timers.target"
    service = configparser.ConfigParser(strict=False, interpolation=None)
    service.read(DEPLOY / "systemd" / "servicelog-cleanup.service")
    assert service["Service"]["Type"] == "oneshot"
