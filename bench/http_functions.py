"""Instructions per request of each Python function of an HTTP benchmark app (callgrind).

``http_instructions.py`` counts a whole request; this says where the count goes. Python 3.12+
can run every Python function through a small trampoline of its own (``-X perf``, for Linux
``perf``), and writes where each trampoline is to ``/tmp/perf-<pid>.map``. Under callgrind each
trampoline is a function without a name; this script gives it the Python function's name, and
prints the instructions spent in each function *and everything it calls* (inclusive), per
request. The trampolines add a few hundred instructions to every call: compare functions of
one run, and variants of one interpreter, not these counts with ``http_instructions.py``'s.

It needs a Python 3.12+ interpreter with the benchmark's packages (``--python``; this
checkout's ``src`` and ``bench`` are put on its path)::

    python3.12 -m venv /tmp/v312 && /tmp/v312/bin/pip install -e ".[dev,bench]"
    python bench/http_functions.py --python /tmp/v312/bin/python --only a,s [--match servicelog]

A server of each variant runs under callgrind; a keep-alive client sends a warm-up, the counters
are zeroed (``callgrind_control -z``), *n* requests to ``/items/42`` are counted and dumped.
"""

from __future__ import annotations

import argparse
import bisect
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from http_instructions import ROOT, VARIANTS, free_port, send_requests


def profile(python: str, key: str, count: int, tmp: Path) -> tuple[Path, Path]:
    """Run variant *key* under callgrind with perf trampolines; the dump and the perf map."""
    out = tmp / f"callgrind.{key}"
    log_dir = Path(tempfile.mkdtemp(dir=tmp))
    env = {**os.environ, "BENCH_LOG_DIR": str(log_dir), "PYTHONHASHSEED": "0"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "src")])
    port = free_port()
    command = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no",
        python, "-X", "perf", "-m", "uvicorn", f"bench.http.app_{key}:app",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
        "--loop", "uvloop", "--http", "httptools", "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        send_requests(port, 300, time.monotonic() + 120)  # warm-up
        control = ["callgrind_control", "-z", str(server.pid)]
        subprocess.run(control, capture_output=True, check=True)
        send_requests(port, count, time.monotonic() + 600)
        control[1] = "-d"
        subprocess.run(control, capture_output=True, check=True)
        dump = Path(f"{out}.1")
        deadline = time.monotonic() + 60
        while not (dump.exists() and re.search(r"^summary:", dump.read_text(), re.M)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no callgrind dump for {key}")
            time.sleep(0.5)
    finally:
        server.send_signal(2)
        server.communicate(timeout=120)
    return dump, Path(f"/tmp/perf-{server.pid}.map")


def functions(dump: Path, perf_map: Path) -> dict[str, int]:
    """Inclusive instructions of each Python function (by ``name:file``) in *dump*."""
    entries = []
    for line in perf_map.read_text().splitlines():
        start, size, name = line.split(" ", 2)
        entries.append((int(start, 16), int(size, 16), name.removeprefix("py::")))
    entries.sort()
    starts = [entry[0] for entry in entries]
    annotate = ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(dump)]
    text = subprocess.run(annotate, capture_output=True, text=True, check=True).stdout
    found: dict[str, int] = {}
    for match in re.finditer(r"^\s*([\d,]+) \([^)]*\)\s+\?\?\?:0x([0-9a-f]+)('\d+)? ", text, re.M):
        address = int(match.group(2), 16)
        i = bisect.bisect_right(starts, address) - 1
        if i < 0 or address >= entries[i][0] + entries[i][1]:
            continue
        name = entries[i][2]
        cost = int(match.group(1).replace(",", ""))
        found[name] = max(found.get(name, 0), cost)  # a recursive one: its outermost call
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", required=True, help="a Python 3.12+ with the bench deps")
    parser.add_argument("--only", default="a,s", help="variant keys (a,s,n,c)")
    parser.add_argument("--requests", type=int, default=1000, help="requests counted")
    parser.add_argument("--match", default="", help="only functions whose name has this")
    parser.add_argument("--top", type=int, default=40, help="rows per variant")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("n/a: valgrind is not installed")
        return 0
    keys = [k for k in args.only.split(",") if k]
    with tempfile.TemporaryDirectory(prefix="http-functions-") as tmp:
        for key in keys:
            dump, perf_map = profile(args.python, key, args.requests, Path(tmp))
            try:
                costs = functions(dump, perf_map)
            finally:
                perf_map.unlink(missing_ok=True)
            print(f"\n# {key} {VARIANTS.get(key, '')}: inclusive instructions per request\n")
            print("| instructions | function |\n|---:|---|")
            rows = sorted(costs.items(), key=lambda item: -item[1])
            shown = [(n, c) for n, c in rows if args.match in n][: args.top]
            for name, cost in shown:
                print(f"| {cost / args.requests:,.0f} | `{name}` |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
