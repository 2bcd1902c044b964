from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest

from servicelog.cli import main

pytestmark = pytest.mark.slow


def test_demo_prints_both_profiles(tmp_path: Path) -> None:
    """...and writes its JSON lines to one folder under the user's cache, overwritten by every
    run (no new temporary folder left behind per run)."""
    demo_dir = tmp_path / "servicelog" / "demo"
    demo_dir.mkdir(parents=True)
    (demo_dir / "app.jsonl").write_text('{"message": "from an earlier run"}\n')
    temp_dirs = set(Path(tempfile.gettempdir()).glob("servicelog-demo-*"))
    proc = subprocess.run(
        [sys.executable, "-m", "servicelog.cli", "demo", "--color", "never"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    dev, _, rest = out.partition("production profile")
    prod, _, http = rest.partition("a FastAPI service under uvicorn")
    assert "INFO      shop.orders" in dev and "order placed" in dev
    assert "Traceback (most recent call last):" in dev
    json_lines = [line for line in prod.splitlines() if line.startswith("{")]
    records = [orjson.loads(line) for line in json_lines]
    loggers = {r["log.logger"] for r in records}
    assert {"shop.orders", "sqlalchemy.engine", "payments", "py.warnings"} <= loggers
    assert {"servicelog.performance", "servicelog.uncaught"} <= loggers
    assert any(r.get("error.type") == "KeyError" for r in records)
    assert all(r["service.name"] == "demo-shop" for r in records)
    with_request = [r for r in records if r["log.logger"] != "servicelog.uncaught"]
    assert all(r["request_id"] == "9b2f6c1e-demo" for r in with_request)
    assert "'errors': {}" in out, "the demo itself caused no internal error"
    for status in ("200", "404", "422", "201", "429", "500"):
        assert f"-> {status} X-Request-ID: " in http
    assert "Rejected an invalid X-Request-ID header" in http
    assert "<script>" not in http.split("a hostile ID", 1)[1], "the hostile ID is never echoed"
    assert "hunter2" not in http.split("GET /boom", 1)[1].split("->", 1)[1].splitlines()[1]
    json_file = http.rsplit("one per line: ", 1)[1].split(" (", 1)[0]
    assert json_file == str(demo_dir / "app.jsonl")
    with open(json_file, "rb") as f:
        records = [orjson.loads(line) for line in f]
    assert sum(r["log.logger"] == "servicelog.access" for r in records) == 7
    assert all("log.logger" in r for r in records), "the earlier run's lines are gone"
    assert set(Path(tempfile.gettempdir()).glob("servicelog-demo-*")) <= temp_dirs


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "demo" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("servicelog ")


def _demo(*argv: str, cache: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``python -m servicelog.cli demo --color never ...`` in a real process."""
    return subprocess.run(
        [sys.executable, "-m", "servicelog.cli", "demo", "--color", "never", *argv],
        capture_output="stdout" not in kwargs,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_CACHE_HOME": str(cache)},
        check=False,
        **kwargs,
    )


def _demo_temp_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("servicelog-demo-*"))


def test_demo_with_stdout_closed_exits_1_without_a_traceback(tmp_path: Path) -> None:
    """``servicelog demo | head -3``: the reader going away ends the demo quietly."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to stdout fails with EPIPE, deterministically
    try:
        proc = _demo("--no-http", cache=tmp_path, stdout=write_end, stderr=subprocess.PIPE)
    finally:
        os.close(write_end)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr, proc.stderr


def test_demo_interrupted_exits_130_without_a_traceback(tmp_path: Path) -> None:
    """Ctrl-C during the HTTP part: status 130 (128 + SIGINT), no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "servicelog.cli", "demo", "--color", "never"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)},
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("GET /items/1 "):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err


def test_demo_without_a_cache_folder_uses_a_temporary_one(tmp_path: Path) -> None:
    """XDG_CACHE_HOME is a file (or HOME does not exist): the demo says so in one line and
    uses a temporary folder, removed at the end."""
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("x\n")
    before = _demo_temp_dirs()
    proc = _demo("--profile", "production", cache=not_a_dir)
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stdout.splitlines() if "uses a temporary folder" in line]
    assert len(notes) == 1 and f"cannot use {not_a_dir}" in notes[0]
    json_file = proc.stdout.rsplit("one per line: ", 1)[1].split(" (", 1)[0]
    assert not json_file.startswith(str(not_a_dir)) and not Path(json_file).exists()
    assert _demo_temp_dirs() <= before


def test_demo_beside_another_demo_uses_a_temporary_folder(tmp_path: Path) -> None:
    """Two demos at once never write into the same file: the second one, finding the demo
    folder locked, says so in one line and writes into a temporary folder."""
    demo_dir = tmp_path / "servicelog" / "demo"
    demo_dir.mkdir(parents=True)
    earlier = demo_dir / "app.jsonl"
    earlier.write_text('{"message": "the other demo\'s line"}\n')
    before = _demo_temp_dirs()
    with open(demo_dir / ".demo.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other demo, running
        proc = _demo("--profile", "production", cache=tmp_path)
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stdout.splitlines() if "another servicelog demo" in line]
    assert len(notes) == 1 and "temporary folder" in notes[0]
    assert "(23 lines;" in proc.stdout, "this run's lines only"
    assert earlier.read_text() == '{"message": "the other demo\'s line"}\n'
    assert _demo_temp_dirs() <= before


FAILING_STARTUP = """
import contextlib, sys
from fastapi import FastAPI
import servicelog.cli.demo_app as demo_app
from servicelog.cli import main

@contextlib.asynccontextmanager
async def lifespan(app):
    raise RuntimeError("the app cannot start")
    yield

demo_app.create_app = lambda **options: FastAPI(lifespan=lifespan)
raise SystemExit(main(["demo", "--profile", "production", "--color", "never"]))
"""


def test_demo_says_so_when_the_server_does_not_start(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", FAILING_STARTUP],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)},
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "servicelog demo: the HTTP server did not start" in proc.stdout
    assert "-> 200" not in proc.stdout
