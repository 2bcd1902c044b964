"""Retention planning (servicelog.retention) and the ``servicelog cleanup`` command."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def _run_cleanup(
    *argv: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    prefix: Sequence[str] = (),
    **kwargs: Any,
) -> Any:
    """``python -m servicelog.cli cleanup ...`` in a real process (bytes in, bytes out)."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "servicelog.cli", "cleanup", *argv],
        capture_output="stdout" not in kwargs,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
        **kwargs,
    )


def _bound_by_permissions() -> list[str]:
    """A command prefix under which file permissions apply: root bypasses them, unless it
    drops the capabilities that let it (``setpriv``, from util-linux)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be tested")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_file_another_process_holds_open_is_never_deleted(tmp_path: Path) -> None:
    """A log written by a process without a servicelog lock file (a stdlib FileHandler, a
    shell redirection) is active as long as some process holds it open."""
    old = _file(tmp_path, "old.log", 100, 400)
    held = tmp_path / "worker.log"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(held)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
        os.utime(held, (time.time() - 400 * DAY,) * 2)
        assert {os.path.basename(f.path): f.active for f in scan(tmp_path)} == {
            "old.log": False,
            "worker.log": True,
        }
        out = _run_cleanup("--dir", str(tmp_path), "--max-size", "1KB", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert held.exists() and not old.exists()
    finally:
        writer.communicate("", timeout=30)
    assert _names(scan(tmp_path)) == ["worker.log"]
    assert not scan(tmp_path)[0].active, "closed: an ordinary file again"


WRITER = """
import sys
f = open(sys.argv[1], "a")
f.write("y" * 2000 + "\\n")
f.flush()
print("ready", flush=True)
sys.stdin.read()
"""


def _cleanup_in_mode(tmp_path: Path, mode: int) -> tuple[Path, Any]:
    """``cleanup --days 1`` on a directory with one old log and *mode*, bound by permissions
    (even as root); the directory's mode is restored after."""
    prefix = _bound_by_permissions()
    logs = tmp_path / "logs"
    logs.mkdir()
    _file(logs, "a.log", 10, 60)
    logs.chmod(mode)
    try:
        return logs, _run_cleanup("--dir", str(logs), "--days", "1", cwd=tmp_path, prefix=prefix)
    finally:
        logs.chmod(0o755)


def test_cli_unreadable_directory_exits_1_with_one_line(tmp_path: Path) -> None:
    logs, out = _cleanup_in_mode(tmp_path, 0o000)
    assert out.returncode == 1
    assert out.stderr.decode() == f"servicelog cleanup: cannot read {logs}: Permission denied\n"
    assert out.stdout == b""


def test_cli_skips_entries_it_cannot_stat(tmp_path: Path) -> None:
    """A directory that can be listed but not searched (r without x): no entry can be
    examined, so none is deleted, and the command says so without a traceback."""
    logs, out = _cleanup_in_mode(tmp_path, 0o644)
    assert out.returncode == 0, out.stderr
    assert out.stderr == b""
    assert b"freed 0 B in 0 file(s)" in out.stdout
    assert (logs / "a.log").exists()


def test_scan_skips_an_entry_it_cannot_stat(logs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_stat = os.stat

    def stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if os.fspath(path).endswith("app_2026-10-01.jsonl.gz"):
            raise PermissionError(13, "Permission denied", path)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    names = _names(scan(logs))
    assert "app_2026-10-01.jsonl.gz" not in names and "worker.log.1" in names
    plan = plan_cleanup(logs, days=1, now=NOW)
    assert _names(plan.delete) == [
        "worker.log.1",
        "app_2026-11-01.jsonl.gz",
        "app_2026-11-20.jsonl",
    ]


def test_cli_stdout_closed_exits_1_without_a_traceback(tmp_path: Path) -> None:
    """``servicelog cleanup --dry-run | head -1``: the reader going away is not an error to
    report at length."""
    for i in range(20):
        _file(tmp_path, f"f{i}.log", 10, 400)
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to stdout fails with EPIPE, deterministically
    try:
        out = _run_cleanup(
            "--dir", str(tmp_path), "--days", "30", "--dry-run", cwd=tmp_path,
            stdout=write_end, stderr=subprocess.PIPE,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert out.returncode == 1
    assert out.stderr == b""
    assert len(list(tmp_path.iterdir())) == 20


def test_cli_reports_names_that_are_not_utf8(tmp_path: Path) -> None:
    """A file name that is not valid UTF-8 is printed with backslash escapes, under a strict
    UTF-8 stdout too; every file deleted is reported."""
    directory = os.fsencode(tmp_path)
    for name in (b"a.log", b"b\xff.log", b"c.log"):
        path = os.path.join(directory, name)
        with open(path, "wb") as f:
            f.write(b"x\n")
        os.utime(path, (time.time() - 60 * DAY,) * 2)
    out = _run_cleanup(
        "--dir", str(tmp_path), "--days", "30", cwd=tmp_path, env={"PYTHONIOENCODING": "utf-8"}
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == b""
    assert out.stdout.count(b"deleted ") == 3
    assert b"b\\udcff.log" in out.stdout
    assert os.listdir(tmp_path) == []
