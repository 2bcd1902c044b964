"""Instructions per request of the HTTP benchmark's apps, counted by callgrind (deterministic).

Wall-clock ratios on a shared 2-core VM move by ±10 % between runs; instruction counts do not.
Each variant's uvicorn server runs under ``valgrind --tool=callgrind``; a keep-alive client sends
a warm-up, then *n* requests to ``/items/42``, in two runs with different *n*: the difference
of the two totals divided by the difference of *n* is the cost of one request (start-up,
warm-up and shutdown cancel out). Instructions are not time (cache misses, the kernel's share
and the writer thread's system calls are not counted), so this guides optimisation; the HTTP
benchmark (``http_bench.py``) remains the measure.

``--cache-sim`` also counts, per request, the first-level cache misses callgrind simulates
(instruction fetches, data reads and data writes). Work that runs once per request between a
web framework's own work is cold: in 2026-11 servicelog's stack added 14 % to bare FastAPI's
instructions but 15 % to its I1 and D1 misses, and ~20 % to its time. Fewer distinct functions
and objects touched per request is what shortens it, not only fewer instructions.

``--load SECONDS`` counts under load instead, as the HTTP benchmark loads the server: one
server per variant, ``wrk -t1 -c32`` for 5 s of warm-up, the counters zeroed
(``callgrind_control -z``), *SECONDS* of ``wrk -t1 -c32``, the counters dumped
(``callgrind_control -d``), divided by wrk's count of requests. Records are then handled in
bursts of many per event-loop iteration, as at full speed; but the server runs ~50x slower
under valgrind while timers keep wall-clock time, so the sink's idle writer wake-ups count for
~1 k instructions per request that they do not cost at full speed.

    python bench/http_instructions.py [--only a,s,c] [--requests 300,1300] [--cache-sim]
    python bench/http_instructions.py --load 20 [--only a,s] [--cache-sim]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {
    "a": "bare FastAPI",
    "s": "servicelog full stack",
    "n": "servicelog, rate limit off",
    "c": "asgi-correlation-id + structlog",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def send_requests(port: int, count: int, deadline: float) -> None:
    """Wait for the server, then send *count* keep-alive GETs (each must answer 200)."""
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            conn.request("GET", "/items/1")
            conn.getresponse().read()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    for _ in range(count):
        conn.request("GET", "/items/42", headers={"User-Agent": "bench"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"/items/42 answered {response.status}")
    conn.close()


EVENTS = ("Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw")


def start_server(key: str, out: Path, cache_sim: bool) -> tuple[subprocess.Popen[str], int]:
    """A uvicorn server of variant *key* under callgrind (its counts to *out*), and its port;
    its log files go to a new folder beside *out*."""
    port = free_port()
    log_dir = Path(tempfile.mkdtemp(dir=out.parent))
    env = {**os.environ, "BENCH_LOG_DIR": str(log_dir), "PYTHONHASHSEED": "0"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "src")])
    command = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
        f"--cache-sim={'yes' if cache_sim else 'no'}",
        sys.executable, "-m", "uvicorn", f"bench.http.app_{key}:app",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
        "--loop", "uvloop", "--http", "httptools", "--log-level", "warning",
    ]  # fmt: skip
    return subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True), port


def instructions(key: str, count: int, tmp: Path, cache_sim: bool = False) -> dict[str, int]:
    """Totals (instructions; with *cache_sim* also data accesses and first-level cache misses)
    of a server of variant *key* that answered *count* requests."""
    server, port = start_server(key, tmp / f"callgrind.{key}.{count}", cache_sim)
    try:
        send_requests(port, 200, time.monotonic() + 120)  # warm-up, the same in both runs
        send_requests(port, count, time.monotonic() + 120)
    finally:
        server.send_signal(2)
        _, err = server.communicate(timeout=120)
    totals = re.findall(r"Collected : ([\d ]+)", err)
    if not totals:
        raise RuntimeError(f"no callgrind total for {key}: {err[-500:]}")
    # Ir alone, or Ir Dr Dw I1mr D1mr D1mw followed by the last-level counts (not kept)
    return dict(zip(EVENTS, (int(n) for n in totals[-1].split()), strict=False))


def under_load(key: str, seconds: int, tmp: Path, cache_sim: bool = False) -> dict[str, float]:
    """Counts per request (as :func:`instructions`) of a server of variant *key* under
    ``wrk -t1 -c32`` for *seconds*, after a warm-up (see the module docstring)."""
    out = tmp / f"callgrind.{key}.load"
    server, port = start_server(key, out, cache_sim)
    url = f"http://127.0.0.1:{port}/items/42"
    try:
        send_requests(port, 0, time.monotonic() + 120)  # up
        wrk = ["wrk", "-t1", "-c32", "--timeout", "30s"]
        subprocess.run([*wrk, "-d5s", url], capture_output=True, check=True)
        subprocess.run(
            ["callgrind_control", "-z", str(server.pid)], capture_output=True, check=True
        )
        load = subprocess.run(
            [*wrk, f"-d{seconds}s", url], capture_output=True, text=True, check=True
        )
        subprocess.run(
            ["callgrind_control", "-d", str(server.pid)], capture_output=True, check=True
        )
        dump = Path(f"{out}.1")  # callgrind_control -d writes it, a moment later
        deadline = time.monotonic() + 60
        while (summary := _summary(dump)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no callgrind dump for {key}")
            time.sleep(0.5)
        served = re.search(r"(\d+) requests in", load.stdout)
        if served is None:
            raise RuntimeError(f"no request count for {key}: {load.stdout[-300:]}")
    finally:
        server.send_signal(2)
        server.communicate(timeout=120)
    requests = int(served.group(1))
    counts = (int(n) for n in summary.group(1).split())
    return {event: total / requests for event, total in zip(EVENTS, counts, strict=False)}


def _summary(dump: Path) -> re.Match[str] | None:
    """The totals line of a callgrind dump, once it is written."""
    text = dump.read_text(errors="replace") if dump.exists() else ""
    return re.search(r"^summary: ([\d ]+)$", text, re.M)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="a,s", help="variant keys (a,s,n,c)")
    parser.add_argument("--requests", default="300,1300", help="the two request counts")
    parser.add_argument(
        "--cache-sim", action="store_true", help="also count first-level cache misses"
    )
    parser.add_argument(
        "--load", type=int, default=0, metavar="SECONDS", help="count under wrk -c32 instead"
    )
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # bench/run.py passes every script the same arguments
        print(f"http_instructions: ignoring {' '.join(unknown)}", file=sys.stderr)
    if shutil.which("valgrind") is None:
        print("# Instructions per request\n\nn/a: valgrind is not installed")
        return 0
    if args.load and shutil.which("wrk") is None:
        print("# Instructions per request\n\nn/a: wrk is not installed")
        return 0
    low, high = (int(n) for n in args.requests.split(","))
    keys = [k for k in args.only.split(",") if k]
    how = f"under wrk -c32 for {args.load} s" if args.load else "one keep-alive client"
    print(f"# Instructions per request (callgrind, /items/42, {how})\n")
    columns = ["instructions per request", "vs a"]
    if args.cache_sim:
        columns += ["I1 misses", "vs a", "D1 misses (read + write)", "vs a"]
    print(f"| variant | {' | '.join(columns)} |")
    print(f"|---|{'---:|' * len(columns)}")
    bare: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="http-instr-") as tmp:
        for key in keys:
            if args.load:
                per = under_load(key, args.load, Path(tmp), args.cache_sim)
            else:
                low_totals = instructions(key, low, Path(tmp), args.cache_sim)
                high_totals = instructions(key, high, Path(tmp), args.cache_sim)
                per = {e: (high_totals[e] - low_totals[e]) / (high - low) for e in high_totals}
            if "D1mr" in per:
                per["D1"] = per["D1mr"] + per["D1mw"]
            if key == "a":
                bare = per
            cells = []
            for event in ("Ir", "I1mr", "D1") if args.cache_sim else ("Ir",):
                ratio = f"{per[event] / bare[event]:.3f}" if bare.get(event) else "n/a"
                cells += [f"{per[event]:,.0f}", ratio]
            print(f"| {key} {VARIANTS.get(key, key)} | {' | '.join(cells)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
