"""Microseconds per request of the HTTP benchmark's apps, called in-process (no server).

``http_bench.py`` measures through uvicorn and wrk, where a run's ratio moves by a few per cent;
this calls each app directly (an ASGI scope for ``GET /items/42``, ``receive`` and ``send``
that do nothing) from 32 concurrent tasks under uvloop on one core, so what servicelog's layers
add is measured without the server and the network, to ±1 µs. Runs are interleaved (every app
once per round) and each app's best round is reported, with its difference to the first app.
It does not replace the HTTP benchmark: a server's own work is not in it.

    python bench/http_inprocess.py [--only a,s] [--requests 40000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import asyncio, gc, importlib, os, sys, time
sys.path.insert(0, {root!r})
import uvloop
app = importlib.import_module("bench.http.app_" + sys.argv[1]).app
n = int(sys.argv[2])
scope = {{"type": "http", "asgi": {{"version": "3.0", "spec_version": "2.3"}}, "http_version": "1.1",
          "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000), "scheme": "http",
          "method": "GET", "root_path": "", "path": "/items/42", "raw_path": b"/items/42",
          "query_string": b"", "headers": [(b"host", b"127.0.0.1:8000")]}}

async def receive():
    return {{"type": "http.request", "body": b"", "more_body": False}}

async def send(message):
    pass

async def worker(count):
    for _ in range(count):
        await app({{**scope, "state": {{}}}}, receive, send)
        await asyncio.sleep(0)

async def main():
    await worker(2000)  # warm-up
    gc.collect()
    start = time.perf_counter()
    await asyncio.gather(*(worker(n // 32) for _ in range(32)))
    print((time.perf_counter() - start) / (n // 32 * 32) * 1e6)

uvloop.run(main())
"""


def run(key: str, requests: int) -> float:
    """One run of app *key*: microseconds per request."""
    env = {**os.environ, "BENCH_LOG_DIR": tempfile.mkdtemp(prefix="servicelog-inproc-")}
    out = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c", CHILD.format(root=str(ROOT)), key,
         str(requests)],
        capture_output=True, text=True, env=env, check=True, timeout=600,
    )  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", default="a,s", help="app keys (bench/http/app_<key>.py)")
    parser.add_argument("--requests", type=int, default=40000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if importlib.util.find_spec("uvloop") is None:
        sys.exit("http_inprocess: uvloop is not installed (pip install -e '.[bench]')")
    keys = args.only.split(",")
    runs: dict[str, list[float]] = {key: [] for key in keys}
    for number in range(args.rounds):
        for key in keys:
            runs[key].append(run(key, args.requests))
            print(f"round {number + 1}: {key} {runs[key][-1]:.2f} us/request", flush=True)
    base = min(runs[keys[0]])
    print("\n| app | best µs/request | rounds | vs first |\n|---|---:|---|---:|")
    for key in keys:
        best = min(runs[key])
        rounds = " ".join(f"{value:.1f}" for value in runs[key])
        print(f"| {key} | {best:.2f} | {rounds} | {best - base:+.2f} µs ({base / best:.3f}) |")


if __name__ == "__main__":
    main()
