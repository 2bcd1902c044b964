from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

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
