from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

WORKER = str(Path(__file__).with_name("worker.py"))


def soak_seconds(default: float = 2.0) -> float:
    """How long a load scenario runs: short in CI, ``SERVICELOG_SOAK_SECONDS`` for a soak."""
    return float(os.environ.get("SERVICELOG_SOAK_SECONDS", default))


def worker_command(path: Path, proc: int, *args: str) -> list[str]:
    return [sys.executable, WORKER, "--path", str(path), "--proc", str(proc), *args]


def run_workers(
    path: Path, count: int, args: Sequence[str], *, timeout: float = 120.0
) -> list[dict[str, Any]]:
    """Start *count* worker processes at once, wait for them, and return their reports."""
    procs = []
    for p in range(count):
        report = path.parent / f"report-{p}.json"
        cmd = worker_command(path, p, "--report", str(report), *args)
        procs.append(
            (subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE), report)
        )
    reports = []
    try:
        for proc, report in procs:
            _, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, err.decode()
            assert b"Logging error" not in err and b"Traceback" not in err, err.decode()
            reports.append(orjson.loads(report.read_bytes()))
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    return reports


def expected_from(reports: Sequence[dict[str, Any]]) -> dict[tuple[int, int], int]:
    return {
        (p, int(t)): n for p, report in enumerate(reports) for t, n in report["produced"].items()
    }


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "logs"
