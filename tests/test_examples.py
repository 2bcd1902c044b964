"""The examples under examples/ run, and show what they promise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = pytest.mark.slow


def _run(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def test_quickstart_in_production_prints_ecs_json() -> None:
    proc = _run("quickstart.py", {"SERVICELOG_ENV": "production"})
    assert proc.returncode == 0, proc.stderr
    records = [orjson.loads(line) for line in proc.stdout.splitlines()]
    assert [r["message"] for r in records] == [
        "order placed",
        "a library line, same shape",
        "lookup failed",
    ]
    assert all(r["request_id"] == "r-1" for r in records)
    assert records[2]["error.type"] == "KeyError"


def test_sync_threads_carry_the_request_id() -> None:
    proc = _run("sync_threads.py", {"SERVICELOG_ENV": "production"})
    assert proc.returncode == 0, proc.stderr
    records = [orjson.loads(line) for line in proc.stdout.splitlines()]
    done = [r for r in records if r["message"] == "blocking work done"]
    assert sorted(r["n"] for r in done) == [1, 2, 3]
    assert {r["request_id"] for r in done} == {"r-7"}
