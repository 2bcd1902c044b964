"""HTTP latency at a steady request rate: what servicelog adds to each request's response time.

``http_bench.py`` saturates the server and compares throughput. Most services run far below
saturation, where the question is latency: how much longer does a request take? This is the
research catalog's item L3 (``anchors-reliability.md``: "FastAPI app at 1,000 rps, with and
without our middleware, access log, redaction [...] Pass: added latency p50 <= 100 us and p99
<= 500 us").

Method: the apps of ``http_bench.py`` (``bench/http/app_*.py``), one fresh uvicorn server per
(variant, round), pinned to CPU 0; on CPU 1 a single-threaded open-loop client sends
``GET /items/42`` at a fixed rate over keep-alive connections (a new request goes out on
schedule on an idle connection, whatever the earlier ones are doing). Latency is from the
request's first byte written to its response's last byte read, measured by the client with
``perf_counter_ns``. A warm-up at the same rate comes first. Rounds rotate the order of the
variants; each added latency (variant minus bare, per percentile) is taken inside one round
before the median. The server's CPU time per request at that rate is read from /proc. Every
answered request must have left exactly one access line (none lost).

    python bench/http_latency_bench.py                 # 1,000 req/s, 20 s, 3 rounds (~3 min)
    python bench/http_latency_bench.py --quick         # smoke run: 5 s, 1 round
    python bench/http_latency_bench.py --rate 2000 --only a,s,c
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import json
import os
import select
import socket
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from _tables import DASH, med, rotated
from http_bench import (
    CLK_TCK,
    REPO,
    RESULTS_DIR,
    SERVER_CPU,
    SERVICELOG,
    VARIANTS,
    CopyProblem,
    Harness,
    bench_lock,
    copied_code,
    count_logs,
    machine_info,
    paired,
    preflight,
    process_ticks,
    raised_priority,
    speedups_note,
    start_server,
    stop_server,
    variant_keys,
    wait_quiet,
)

PATH = "/items/42"
RATE, DURATION, WARMUP, ROUNDS, CONNECTIONS = 1000, 20, 3, 3, 32
PERCENTILES = (50, 90, 99, 99.9)
TARGETS = {50: 100.0, 99: 500.0}  # added latency in us (catalog item L3)
MAX_LAG_US = 1000.0  # a client this late at p99 did not keep its schedule: say so
DEFAULT_VARIANTS = "a,s,c"


# --- the client ---------------------------------------------------------------------------------
def precise_timers() -> None:
    """Ask Linux for 1 us timer slack instead of 50 us, so select() wakes on schedule."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(29, 1000, 0, 0, 0)  # PR_SET_TIMERSLACK, in nanoseconds
    except (OSError, AttributeError):  # not Linux: the schedule is only looser
        pass


class Conn:
    """One keep-alive connection: at most one request in flight, its response read back."""

    __slots__ = ("buf", "need", "sent", "sock", "status")

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.buf = b""
        self.need = -1  # bytes of the whole response, once its head is read
        self.sent = 0
        self.status = 0

    def receive(self) -> bool:
        """Read what arrived; True when the whole response is in."""
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed a keep-alive connection")
        self.buf += chunk
        if self.need < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = self.buf[:end].decode("latin-1").split("\r\n")
            self.status = int(head[0].split()[1])
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            self.need = end + 4 + length
        return len(self.buf) >= self.need


class Run(NamedTuple):
    latencies_ns: list[int]
    lags_ns: list[int]  # how late each request left, against its schedule
    statuses: Counter[int]
    connections: int


def run_load(port: int, rate: float, seconds: float, max_conns: int) -> Run:
    """Send GET PATH at *rate* per second for *seconds*, open loop; latency of each request.

    Idle connections are used in turn (first in, first out), so none stays idle long enough for
    uvicorn's keep-alive timeout (5 s) to close it. With *max_conns* requests in flight, the
    next request waits for a response; how late it left shows in the lags."""
    request = f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    idle = collections.deque([Conn(port)])
    conns = list(idle)
    busy: dict[socket.socket, Conn] = {}
    latencies: list[int] = []
    lags: list[int] = []
    statuses: Counter[int] = Counter()
    total = int(rate * seconds)
    interval = 1e9 / rate
    clock = time.perf_counter_ns
    start = clock() + 10_000_000
    sent = 0
    while sent < total or busy:
        now = clock()
        due = start + int(sent * interval) if sent < total else None
        if due is not None and now >= due and (idle or len(conns) < max_conns):
            if not idle:
                conns.append(Conn(port))
                idle.append(conns[-1])
            conn = idle.popleft()
            conn.buf, conn.need = b"", -1
            conn.sent = clock()
            conn.sock.sendall(request)
            busy[conn.sock] = conn
            lags.append(conn.sent - due)
            sent += 1
            continue
        timeout = 5.0 if due is None or now >= due else (due - now) / 1e9
        ready, _, _ = select.select(list(busy), [], [], timeout)
        for sock in ready:
            conn = busy[sock]
            if conn.receive():
                latencies.append(clock() - conn.sent)
                statuses[conn.status] += 1
                del busy[sock]
                idle.append(conn)
        if not ready and timeout == 5.0:
            raise RuntimeError("no response within 5 s")
    for conn in conns:
        conn.sock.close()
    return Run(latencies, lags, statuses, len(conns))


def percentile(sorted_values: list[int], pct: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return float(sorted_values[min(len(sorted_values), int(rank)) - 1])


def latency_summary(run: Run) -> dict[str, Any]:
    values = sorted(run.latencies_ns)
    lags = sorted(run.lags_ns)
    out: dict[str, Any] = {f"p{p}_us": percentile(values, p) / 1000 for p in PERCENTILES}
    out["max_us"] = values[-1] / 1000 if values else float("nan")
    out["mean_us"] = sum(values) / len(values) / 1000 if values else float("nan")
    out["lag_p99_us"] = percentile(lags, 99) / 1000
    out["requests"] = len(values)
    out["statuses"] = dict(run.statuses)
    out["connections"] = run.connections
    return out


# --- one scenario -------------------------------------------------------------------------------
class Config(NamedTuple):
    rate: int
    duration: int
    warmup: int
    rounds: int
    connections: int
    max_quiet_wait: float


def run_scenario(key: str, cfg: Config, harness: Harness, workdir: Path) -> dict[str, Any]:
    """Fresh server, warm-up and measured load at the same rate, graceful stop, log check."""
    variant = VARIANTS[key]
    with bench_lock() as lock_wait:
        quiet_wait = wait_quiet(cfg.max_quiet_wait)
        server = start_server(variant, harness, workdir)
        try:
            warm = run_load(server.port, cfg.rate, cfg.warmup, cfg.connections)
            ticks = process_ticks(server.pid)
            measured = run_load(server.port, cfg.rate, cfg.duration, cfg.connections)
            ticks = process_ticks(server.pid) - ticks
        finally:
            stopped = stop_server(server)
    result = latency_summary(measured)
    result.update(
        server_cpu_us_per_request=ticks / CLK_TCK * 1e6 / max(1, len(measured.latencies_ns)),
        lock_wait_s=lock_wait,
        quiet_wait_s=quiet_wait,
        stop=stopped,
        status_ok=set(measured.statuses) == {200} and set(warm.statuses) == {200},
    )
    if variant.classify is not None:
        logs = count_logs(variant, server.log_dir)
        answered = len(warm.latencies_ns) + len(measured.latencies_ns)
        access = logs.get("access", 0) + logs.get("suppressed_access", 0)
        result["logs"] = logs
        result["lost"] = max(0, answered - access)
        result["surplus"] = max(0, access - answered)
    return result


def run_rounds(
    keys: list[str], cfg: Config, harness: Harness, tmp: Path
) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
    for rnd in range(cfg.rounds):
        for key in rotated(keys, rnd, cfg.rounds):
            try:
                res = run_scenario(key, cfg, harness, tmp / f"r{rnd}-{key}")
            except Exception as exc:
                res = {"error": f"{type(exc).__name__}: {exc}"}
            res["round"] = rnd
            results[key].append(res)
            if "error" in res:
                print(
                    f"[round {rnd + 1}/{cfg.rounds}] {key.upper()}: {res['error']}", file=sys.stderr
                )
            else:
                print(
                    f"[round {rnd + 1}/{cfg.rounds}] {key.upper()}: p50 {res['p50_us']:,.0f} us  "
                    f"p99 {res['p99_us']:,.0f} us  CPU {res['server_cpu_us_per_request']:,.0f} "
                    f"us/req" + (f"  lost {res['lost']}" if "lost" in res else ""),
                    file=sys.stderr,
                    flush=True,
                )
    return results


# --- the report ---------------------------------------------------------------------------------
def added(runs: list[dict[str, Any]], refs: list[dict[str, Any]], field: str) -> list[float]:
    """Per round: this variant's value minus the bare app's (rounds where both ran)."""
    return [value - ref for value, ref in paired(runs, refs, field)]


def summarise(results: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for key, runs in results.items():
        ok = [r for r in runs if "error" not in r]
        row: dict[str, Any] = {"variant": key, "rounds": len(ok)}
        row["errors"] = [r["error"] for r in runs if "error" in r]
        for field in [f"p{p}_us" for p in PERCENTILES] + ["max_us", "lag_p99_us"]:
            row[field] = med([r[field] for r in ok])
        row["cpu_us"] = med([r["server_cpu_us_per_request"] for r in ok])
        refs = [r for r in results.get("a", []) if "error" not in r]
        for p in PERCENTILES:
            row[f"added_p{p}_us"] = med(added(ok, refs, f"p{p}_us"))
        cpu = added(ok, refs, "server_cpu_us_per_request")
        row["added_cpu_us"] = med(cpu)
        row["status_ok"] = all(r["status_ok"] for r in ok)
        if any("lost" in r for r in ok):
            row["lost"] = sum(r["lost"] for r in ok)
            row["logged"] = sum(r["logs"].get("access", 0) for r in ok)
        rows.append(row)
    return rows


def cell(value: float, fmt: str = ",.0f", sign: bool = False) -> str:
    if value != value:  # NaN
        return "n/a"
    return f"{value:+{fmt}}" if sign else f"{value:{fmt}}"


def results_table(rows: list[dict[str, Any]]) -> str:
    head = ["variant", *(f"p{p} µs" for p in PERCENTILES), "max µs"]
    head += ["added p50 µs", "added p99 µs", "server CPU µs/req", "added CPU µs/req", "lost lines"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for row in rows:
        if not row["rounds"]:
            lines.append(f"| {VARIANTS[row['variant']].label} | " + " | ".join(["n/a"] * 10) + " |")
            continue
        base = row["variant"] == "a"
        cells = [VARIANTS[row["variant"]].label]
        cells += [cell(row[f"p{p}_us"]) for p in PERCENTILES] + [cell(row["max_us"])]
        cells += [DASH if base else cell(row[f"added_p{p}_us"], sign=True) for p in (50, 99)]
        cells += [cell(row["cpu_us"]), DASH if base else cell(row["added_cpu_us"], sign=True)]
        cells.append(f"{row['lost']} of {row['logged']:,}" if "lost" in row else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets_section(rows: list[dict[str, Any]], rate: int) -> str:
    out = []
    for row in rows:
        if row["variant"] not in SERVICELOG or not row["rounds"]:
            continue
        parts = []
        for p, limit in TARGETS.items():
            value = row[f"added_p{p}_us"]
            verdict = "met" if value <= limit else "**missed**"
            parts.append(f"added p{p} {value:+,.0f} µs (target ≤ {limit:,.0f} µs: {verdict})")
        label = VARIANTS[row["variant"]].label
        out.append(f"- {label} at {rate:,} req/s: " + "; ".join(parts) + f"; lost {row['lost']}")
    lagging = [r["variant"] for r in rows if r["rounds"] and r["lag_p99_us"] > MAX_LAG_US]
    if lagging:
        out.append(
            f"- The client left its schedule by more than {MAX_LAG_US:,.0f} µs at p99 for "
            f"{', '.join(k.upper() for k in lagging)}: the machine was busy; read with care."
        )
    return "\n".join(out)


# --- entry point --------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 s, 1 round")
    parser.add_argument("--rate", type=int, default=RATE, help=f"requests/s (default {RATE})")
    parser.add_argument("--duration", type=int, default=None, help=f"default {DURATION} s")
    parser.add_argument("--warmup", type=int, default=WARMUP, help=f"default {WARMUP} s")
    parser.add_argument("--rounds", "--reps", type=int, default=None, help=f"default {ROUNDS}")
    parser.add_argument("--connections", type=int, default=CONNECTIONS, help="most at once")
    parser.add_argument("--max-quiet-wait", type=float, default=30)
    parser.add_argument("--nice", type=int, default=-20 if os.geteuid() == 0 else 0)
    parser.add_argument("--only", default=DEFAULT_VARIANTS, help="variant keys (a is added)")
    parser.add_argument("--src", choices=("worktree", "head"), default="worktree")
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # bench/run.py passes every script the same arguments
        print(f"http_latency_bench: ignoring {' '.join(unknown)}", file=sys.stderr)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = preflight()
    if problem:
        print(f"# HTTP latency benchmark\n\nn/a: {problem}")
        return 1
    keys, bad = variant_keys(args.only, [])
    if bad:
        print(f"unknown variant: {bad}", file=sys.stderr)
        return 2
    cfg = Config(
        rate=args.rate,
        duration=args.duration or (5 if args.quick else DURATION),
        warmup=args.warmup,
        rounds=args.rounds or (1 if args.quick else ROUNDS),
        connections=args.connections,
        max_quiet_wait=args.max_quiet_wait,
    )
    precise_timers()
    try:
        with (
            copied_code(args.src, args.nice, "http-latency-") as (harness, code, tmp),
            raised_priority(args.nice) as priority,
        ):
            return run_benchmark(keys, cfg, harness, code, priority, tmp)
    except CopyProblem as exc:
        print(f"# HTTP latency benchmark\n\nn/a: the copied servicelog does not import: {exc}")
        return 1


def run_benchmark(
    keys: list[str],
    cfg: Config,
    harness: Harness,
    code: dict[str, Any],
    priority: str,
    tmp: Path,
) -> int:
    info = machine_info(harness.server_args)
    info["priority"] = priority
    started = datetime.now(UTC)
    print("# HTTP latency benchmark\n")
    print(f"Python {info['python']}, {info['platform']}, CPUs {info['cpus']}")
    dirty = " + uncommitted changes" if code["uncommitted_changes_in_src"] else ""
    print(f"servicelog: commit {code['commit']}{dirty}, from the {code['source']}")
    print(
        f"Server: `taskset -c {SERVER_CPU} uvicorn bench.http.app_x:app "
        f"{' '.join(harness.server_args)}`, one worker, fresh per run. Load: `GET {PATH}` at "
        f"{cfg.rate:,} req/s, open loop, for {cfg.duration} s after a {cfg.warmup} s warm-up, "
        f"{cfg.rounds} round(s), order rotated. Priority: {priority}.\n",
        flush=True,
    )
    note = speedups_note()
    if note:
        print(f"**{note}**\n", flush=True)
        print(note, file=sys.stderr)
    results = run_rounds(keys, cfg, harness, tmp)
    rows = summarise(results)
    print(f"## Latency at {cfg.rate:,} req/s (medians of {cfg.rounds} round(s); added: paired)\n")
    print(results_table(rows) + "\n")
    print("## servicelog against the catalog's target (L3)\n")
    print(targets_section(rows, cfg.rate) + "\n")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"http-latency-{started:%Y%m%dT%H%M%SZ}.json"
    payload = {
        "started": started.isoformat(),
        "seconds": (datetime.now(UTC) - started).total_seconds(),
        "machine": info,
        "servicelog_code": code,
        "config": cfg._asdict(),
        "summary": rows,
        "runs": results,
    }
    out.write_text(json.dumps(payload, indent=1, default=str))
    print(f"Results written to {out.relative_to(REPO)}")
    return 1 if failed(rows) else 0


def failed(rows: list[dict[str, Any]]) -> bool:
    """A required variant errored, or servicelog lost lines or answered unexpected statuses."""
    for row in rows:
        variant = VARIANTS[row["variant"]]
        if row["errors"] and not variant.optional:
            return True
        if variant.key in SERVICELOG and row["rounds"] and (row["lost"] or not row["status_ok"]):
            return True
    return False


if __name__ == "__main__":
    sys.exit(main())
