"""HTTP benchmark: what request IDs, an access log and error handling cost a FastAPI service.

Method (from the team's research note ``perf-http-baseline.md``): one FastAPI app per variant
(``bench/http/app_*.py``) with ``GET /items/{id}`` (a small JSON) and ``GET /boom`` (an unhandled
exception). Each scenario (path, variant) gets a fresh server:

    taskset -c 0 python -m uvicorn bench.http.app_x:app --no-access-log --loop uvloop --http httptools
    taskset -c 1 wrk -t1 -c32 -d<W>s <url>              # warm-up, not measured
    taskset -c 1 wrk -t1 -c32 -d<D>s --latency <url>    # measured

The server's CPU time (utime+stime from /proc/<pid>/stat) is read around the measured run. After
a graceful stop (SIGINT: the lifespans drain their loggers) the log files are read back: every
handled request must have left exactly one access line. Every round runs all scenarios in a
rotated order; each cell is the median of the rounds, and each ratio to the bare app is taken
inside one round (paired) before the median. As root, the server and wrk run at ``nice -n -20``
so that other work on this shared machine disturbs them less (``--nice 0`` turns it off).

    python bench/http_bench.py              # full run: D=10 s, 5 rounds (about 15 minutes)
    python bench/http_bench.py --quick      # smoke run: D=3 s, 1 round
    python bench/http_bench.py --profile s  # py-spy profile of one variant under load, no timing
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gzip
import http.client
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from _tables import DASH, TIMES, child_env, med, rotated, spread

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
LOCK_FILE = Path(tempfile.gettempdir()) / "servicelog-bench.lock"

PATHS = {"items": "/items/42", "boom": "/boom"}
ECHO_ID = "0123456789abcdef0123456789abcdef"  # nginx-style: every variant should accept it
DURATION, WARMUP, ROUNDS, CONNECTIONS = 10, 2, 5, 32
SERVER_CPU, LOAD_CPU = "0", "1"
START_TIMEOUT, STOP_TIMEOUT = 30.0, 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
QUIET = 0.10  # both CPUs below this busy fraction before a scenario starts
DISTURBED = 0.05  # other work's share of the server CPU that makes a measured run run again
TARGETS = {"items": 0.85, "boom": 0.70}  # servicelog's req/s vs bare, from issue 4
P99_TARGET = 1.5


# --- the variants -------------------------------------------------------------------------------
Classify = Callable[[dict[str, Any]], str]  # one parsed log line -> "access" | "error" | "other"


def classify_servicelog(obj: dict[str, Any]) -> str:
    if "log.suppressed" in obj:  # the rate limit's summary of the records it dropped
        kind = "access" if obj.get("log.logger") == "servicelog.access" else "error"
        return f"summary:{kind}"
    if obj.get("log.logger") == "servicelog.access":
        return "access"
    return "error" if obj.get("message") == "Unhandled exception" else "other"


def classify_loguru(obj: dict[str, Any]) -> str:
    message = obj.get("record", {}).get("message")
    if message == "request completed":
        return "access"
    return "error" if message == "Unhandled exception" else "other"


def classify_structlog(obj: dict[str, Any]) -> str:
    event = obj.get("event")
    if event == "request completed":
        return "access"
    return "error" if event == "unhandled exception" else "other"


def classify_fapilog(obj: dict[str, Any]) -> str:
    # fapilog's access line is request_completed, or request_failed for an exception.
    message = obj.get("log", {}).get("message")
    return "access" if message in ("request_completed", "request_failed") else "other"


class Variant(NamedTuple):
    key: str
    label: str
    module: str
    classify: Classify | None  # None: writes no log
    optional: bool = False  # a failure is reported as n/a, not as a failed benchmark


VARIANTS = {
    v.key: v
    for v in (
        Variant("a", "A bare FastAPI", "app_a", None),
        Variant("s", "S servicelog full stack", "app_s", classify_servicelog),
        Variant("n", "N servicelog, rate limit off", "app_n", classify_servicelog),
        Variant("g", "G guide: 2x BaseHTTPMiddleware + loguru(enqueue)", "app_g", classify_loguru),
        Variant(
            "c", "C asgi-correlation-id + ASGI access log + structlog", "app_c", classify_structlog
        ),
        Variant("f", "F fapilog FastAPI integration", "app_f", classify_fapilog, optional=True),
    )
}
# A /boom request also logs the traceback line, except with fapilog (no handlers of its own).
EXPECTED_ERROR_LINES = {"s": 1, "n": 1, "g": 1, "c": 1, "f": 0}
SERVICELOG = ("s", "n")


# --- the code under test, copied once -----------------------------------------------------------
class Harness(NamedTuple):
    """What every server shares: the copied code (its working directory) and its environment."""

    root: Path
    env: dict[str, str]
    server_args: list[str]
    nice: list[str]  # command prefix giving the server and wrk priority over other work


def git(*args: str) -> str:
    proc = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def snapshot_code(into: Path, src: str, nice: int) -> tuple[Harness, dict[str, Any]]:
    """Copy src/servicelog (from the working tree, or from HEAD with ``src="head"``) and
    bench/http once, so that every round measures the same code even while the working tree is
    being edited. Servers run in the copy, which comes first on PYTHONPATH."""
    info: dict[str, Any] = {
        "commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "source": src,
        "uncommitted_changes_in_src": src == "worktree"
        and bool(git("status", "--porcelain", "--", "src")),
    }
    into.mkdir(parents=True)
    if src == "head":
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "HEAD", "src/servicelog"],
            capture_output=True,
            check=True,
        )
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
        (into / "src" / "servicelog").rename(into / "servicelog")
    else:
        shutil.copytree(
            REPO / "src" / "servicelog",
            into / "servicelog",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copytree(
        BENCH_DIR / "http", into / "bench" / "http", ignore=shutil.ignore_patterns("__pycache__")
    )
    env = child_env(str(into), "FAPILOG_")
    prefix = ["nice", "-n", str(nice)] if nice else []
    return Harness(into, env, server_args(), prefix), info


def import_problem(harness: Harness) -> str | None:
    """Whether the copied servicelog imports (the working tree may be half-edited)."""
    code = "import servicelog, servicelog.fastapi; print(servicelog.__file__)"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=harness.root, env=harness.env, capture_output=True
    )
    if proc.returncode != 0:
        return proc.stderr.decode(errors="replace").strip().splitlines()[-1]
    if not proc.stdout.decode().startswith(str(harness.root)):
        return f"servicelog was imported from {proc.stdout.decode().strip()}, not the copy"
    return None


def server_args() -> list[str]:
    """uvicorn's options: uvloop and httptools when installed (see :func:`speedups_note`)."""
    args = ["--no-access-log"]
    if importlib.util.find_spec("uvloop"):
        args += ["--loop", "uvloop"]
    if importlib.util.find_spec("httptools"):
        args += ["--http", "httptools"]
    return args


def speedups_note() -> str | None:
    """A warning when uvloop or httptools is missing (the ``bench`` extra, which ``./run bench``
    installs): uvicorn then runs on asyncio and h11, about twice the server's own work per
    request, and every ratio to bare moves toward 1. ``None`` when both are there."""
    missing = [name for name in ("uvloop", "httptools") if not importlib.util.find_spec(name)]
    if not missing:
        return None
    return (
        f"WARNING: {' and '.join(missing)} not installed: uvicorn runs without them, so these "
        "figures are not comparable with the research note's (install the bench extra: "
        "`pip install -e '.[bench]'`, or run `./run bench`)"
    )


# --- one server ---------------------------------------------------------------------------------
class Server(NamedTuple):
    proc: subprocess.Popen[bytes]
    port: int
    log_dir: Path
    out_dir: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(variant: Variant, harness: Harness, workdir: Path) -> Server:
    """Start a fresh server pinned to the server CPU; return once it accepts connections."""
    log_dir, out_dir = workdir / "logs", workdir / "out"
    log_dir.mkdir(parents=True)
    out_dir.mkdir()
    port = free_port()
    cmd = [*harness.nice, "taskset", "-c", SERVER_CPU, sys.executable, "-m", "uvicorn"]
    cmd += [f"bench.http.{variant.module}:app", "--host", "127.0.0.1", "--port", str(port)]
    cmd += harness.server_args
    env = {**harness.env, "BENCH_LOG_DIR": str(log_dir)}
    with open(out_dir / "stdout", "wb") as stdout, open(out_dir / "stderr", "wb") as stderr:
        proc = subprocess.Popen(cmd, cwd=harness.root, env=env, stdout=stdout, stderr=stderr)
    server = Server(proc, port, log_dir, out_dir)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {stderr_tail(server)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return server  # a bare connect sends no request, so it logs nothing
        time.sleep(0.05)
    stop_server(server)
    raise RuntimeError(f"server not listening after {START_TIMEOUT:.0f} s")


def stop_server(server: Server) -> dict[str, Any]:
    """SIGINT: uvicorn's graceful shutdown, which runs the lifespan's drain. SIGKILL if stuck."""
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGINT)
    try:
        code = server.proc.wait(STOP_TIMEOUT)
        return {"exit_code": code, "killed": False}
    except subprocess.TimeoutExpired:
        server.proc.kill()
        return {"exit_code": server.proc.wait(), "killed": True}


def stderr_tail(server: Server, lines: int = 3) -> str:
    text = (server.out_dir / "stderr").read_text(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:]) or "(no stderr)"


# --- CPU accounting from /proc ------------------------------------------------------------------
def process_ticks(pid: int) -> int:
    """utime + stime of the process, all threads, in clock ticks."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def cpu_ticks() -> dict[str, tuple[int, int]]:
    """Per CPU: (ticks running tasks, total ticks), from /proc/stat. Interrupt time is left out
    of the first: the loopback traffic itself causes it, and no process is charged for it."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            user, nice, system, _idle, _iowait, _irq, _softirq, steal = map(int, values[:8])
            out[name[3:]] = (user + nice + system + steal, sum(map(int, values[:8])))
    return out


class Sample(NamedTuple):
    wall: float
    server: int
    children: float  # CPU seconds of this script's finished children: wrk (and taskset)
    cpus: dict[str, tuple[int, int]]


def sample(pid: int) -> Sample:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Sample(
        time.monotonic(), process_ticks(pid), usage.ru_utime + usage.ru_stime, cpu_ticks()
    )


def cpu_usage(before: Sample, after: Sample, requests: int) -> dict[str, Any]:
    """Server CPU per request, and how busy each CPU was with work that was not ours."""
    server_s = (after.server - before.server) / CLK_TCK
    wrk_s = after.children - before.children
    busy = {}
    for cpu in (SERVER_CPU, LOAD_CPU):
        (busy0, total0), (busy1, total1) = before.cpus[cpu], after.cpus[cpu]
        busy[cpu] = (busy1 - busy0) / max(1, total1 - total0)
    wall = after.wall - before.wall
    return {
        "server_cpu_s": server_s,
        "server_cpu_us_per_request": server_s * 1e6 / requests if requests else None,
        "load_cpu_busy": busy[LOAD_CPU],
        # Busy time that belonged neither to the server (CPU 0) nor to wrk (CPU 1): other work
        # on the machine disturbing the run.
        "foreign_busy_server_cpu": max(0.0, busy[SERVER_CPU] - server_s / wall),
        "foreign_busy_load_cpu": max(0.0, busy[LOAD_CPU] - wrk_s / wall),
    }


def wait_quiet(max_wait: float) -> float:
    """Wait until both CPUs are nearly idle (other benchmarks done); return the seconds waited.
    Gives up after *max_wait* seconds: the run then goes ahead, and its foreign busy time shows."""
    start = time.monotonic()
    while True:
        before = cpu_ticks()
        time.sleep(1.0)
        after = cpu_ticks()
        busy = [
            (after[c][0] - before[c][0]) / max(1, after[c][1] - before[c][1])
            for c in (SERVER_CPU, LOAD_CPU)
        ]
        waited = time.monotonic() - start
        if max(busy) < QUIET or waited >= max_wait:
            return waited
        time.sleep(2.0)


# --- wrk ----------------------------------------------------------------------------------------
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def latency_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unknown latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests, requests/s, latency percentiles, socket errors and non-2xx from wrk's report."""
    result: dict[str, Any] = {"socket_errors": {}, "non_2xx": 0}
    if m := re.search(r"(\d+) requests in ([\d.]+)(\w+),", output):
        result["requests"] = int(m.group(1))
    if m := re.search(r"Requests/sec:\s+([\d.]+)", output):
        result["rps"] = float(m.group(1))
    for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", output, re.M):
        result[f"p{pct}_ms"] = latency_ms(value)
    if m := re.search(r"Socket errors: (.*)", output):
        result["socket_errors"] = {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", m.group(1))}
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        result["non_2xx"] = int(m.group(1))
    missing = {"requests", "rps", "p50_ms", "p99_ms"} - result.keys()
    if missing:
        raise RuntimeError(f"no {sorted(missing)} in wrk's output: {output.strip()[-400:]!r}")
    return result


def wrk_command(port: int, path: str, seconds: int, connections: int, nice: list[str]) -> list[str]:
    """The ``wrk`` run that loads one server, pinned to the load CPU."""
    cmd = [*nice, "taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    return [*cmd, "--latency", f"http://127.0.0.1:{port}{path}"]


def run_wrk(
    port: int, path: str, seconds: int, connections: int, nice: list[str]
) -> dict[str, Any]:
    cmd = wrk_command(port, path, seconds, connections, nice)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return parse_wrk(proc.stdout)


@contextlib.contextmanager
def raised_priority(nice: int) -> Iterator[str]:
    """Give this session's processes (this script, the servers, wrk) priority over other work;
    yield what was done, for the header.

    ``nice`` on each command ranks processes only within one autogroup when the kernel groups
    them by session (``/proc/sys/kernel/sched_autogroup_enabled``), so the session's group gets
    the same niceness for the duration, and its previous niceness back at the end (the group
    outlives this script: it holds the shell that started it)."""
    group = Path("/proc/self/autogroup")
    if not nice:
        yield "normal priority"
        return
    try:
        before = group.read_text().split()[-1]  # "/autogroup-5 nice 0"
        group.write_text(str(nice))
    except (OSError, IndexError):
        yield f"nice {nice}"
        return
    try:
        yield f"nice {nice}, and the same for this session's scheduler autogroup"
    finally:
        with contextlib.suppress(OSError):
            group.write_text(before)


@contextlib.contextmanager
def bench_lock() -> Iterator[float]:
    """Hold a machine-wide lock during warm-up and measurement; yield the seconds waited.
    Benchmarks that take the same lock never overlap a timed window."""
    start = time.monotonic()
    with open(LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield time.monotonic() - start
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- reading the logs back ----------------------------------------------------------------------
def log_lines(log_dir: Path) -> Iterator[bytes]:
    for path in sorted(log_dir.iterdir()):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            yield from handle


def count_logs(variant: Variant, log_dir: Path) -> dict[str, Any]:
    """Lines by kind (access / error / other / invalid JSON), bytes, the largest line, and the
    records that servicelog's rate limit dropped and counted in its summary lines."""
    assert variant.classify is not None
    kinds: Counter[str] = Counter()
    suppressed: Counter[str] = Counter()
    size = largest = 0
    for line in log_lines(log_dir):
        size += len(line)
        largest = max(largest, len(line))
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            kinds["invalid"] += 1
            continue
        kind = variant.classify(obj) if isinstance(obj, dict) else "invalid"
        kinds[kind] += 1
        if kind.startswith("summary:"):
            suppressed[kind.split(":")[1]] += int(obj.get("log.suppressed", 0))
    return {
        "lines": sum(kinds.values()),
        **dict(kinds),
        "suppressed_access": suppressed["access"],
        "suppressed_error": suppressed["error"],
        "bytes": size,
        "largest_line": largest,
    }


def log_check(
    variant: Variant, path_key: str, logs: dict[str, Any], handled: int
) -> dict[str, Any]:
    """Compare the access lines with the requests wrk saw answered (warm-up + measured).

    The server may handle up to one more request per connection than wrk counts (those wrk
    abandoned in flight when it stopped), so a small surplus is expected. A deficit is lost,
    unless a rate-limit summary line in the log counts it as dropped."""
    access = logs.get("access", 0)
    errors = logs.get("error", 0)
    counted = logs.get("suppressed_access", 0)
    check = {
        "handled_by_wrk": handled,
        "access_lines": access,
        "rate_limited": min(counted, max(0, handled - access)),
        "lost": max(0, handled - access - counted),
        "surplus": max(0, access + counted - handled),
        "lines_per_request": logs["lines"] / access if access else None,
        "bytes_per_request": logs["bytes"] / access if access else None,
    }
    if path_key == "boom":
        # Error lines the rate limit dropped are counted in its summary lines: not missing.
        expected = EXPECTED_ERROR_LINES[variant.key] * access
        limited = min(logs.get("suppressed_error", 0), max(0, expected - errors))
        check["rate_limited_error_lines"] = limited
        check["missing_error_lines"] = max(0, expected - errors - limited)
    return check


# --- one scenario -------------------------------------------------------------------------------
class Config(NamedTuple):
    duration: int
    warmup: int
    rounds: int
    connections: int
    max_quiet_wait: float
    retries: int


def run_scenario(
    path_key: str, variant: Variant, cfg: Config, harness: Harness, workdir: Path
) -> dict[str, Any]:
    """Fresh server, warm-up, measured run with CPU accounting, graceful stop, log check."""
    path = PATHS[path_key]
    with bench_lock() as lock_wait:
        quiet_wait = wait_quiet(cfg.max_quiet_wait)
        server = start_server(variant, harness, workdir)
        try:
            warm = run_wrk(server.port, path, cfg.warmup, cfg.connections, harness.nice)
            before = sample(server.pid)
            measured = run_wrk(server.port, path, cfg.duration, cfg.connections, harness.nice)
            after = sample(server.pid)
        finally:
            stopped = stop_server(server)
    result: dict[str, Any] = {
        **measured,
        **cpu_usage(before, after, measured["requests"]),
        "warmup_requests": warm["requests"],
        "lock_wait_s": lock_wait,
        "quiet_wait_s": quiet_wait,
        "stop": stopped,
        "server_stderr_bytes": (server.out_dir / "stderr").stat().st_size,
    }
    expected_non_2xx = measured["requests"] if path_key == "boom" else 0
    result["status_ok"] = measured["non_2xx"] == expected_non_2xx
    if variant.classify is not None:
        result["logs"] = count_logs(variant, server.log_dir)
        handled = warm["requests"] + measured["requests"]
        result["log_check"] = log_check(variant, path_key, result["logs"], handled)
    return result


def disturbed(res: dict[str, Any]) -> bool:
    if "error" in res:
        return False
    return res["foreign_busy_server_cpu"] > DISTURBED


def run_attempts(
    path_key: str, key: str, cfg: Config, harness: Harness, workdir: Path
) -> dict[str, Any]:
    """Run a scenario; run it again (up to cfg.retries times) if other work disturbed it."""
    discarded = []
    for attempt in range(cfg.retries + 1):
        try:
            res = run_scenario(path_key, VARIANTS[key], cfg, harness, workdir / str(attempt))
        except Exception as exc:
            res = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            shutil.rmtree(workdir / str(attempt), ignore_errors=True)
        if not disturbed(res) or attempt == cfg.retries:
            break
        discarded.append(
            {k: res[k] for k in ("rps", "foreign_busy_server_cpu", "foreign_busy_load_cpu")}
        )
    res["disturbed_attempts_discarded"] = discarded
    return res


def run_rounds(
    scenarios: list[tuple[str, str]], cfg: Config, harness: Harness, tmp: Path
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Every round runs every scenario once, in an order rotated from round to round."""
    results: dict[tuple[str, str], list[dict[str, Any]]] = {s: [] for s in scenarios}
    for rnd in range(cfg.rounds):
        for path_key, key in rotated(scenarios, rnd, cfg.rounds):
            res = run_attempts(path_key, key, cfg, harness, tmp / f"r{rnd}-{path_key}-{key}")
            res["round"] = rnd
            results[(path_key, key)].append(res)
            progress(rnd, cfg.rounds, path_key, key, res)
    return results


def progress(rnd: int, rounds: int, path_key: str, key: str, res: dict[str, Any]) -> None:
    head = f"[round {rnd + 1}/{rounds}] {PATHS[path_key]:<10} {key.upper()}"
    if "error" in res:
        print(f"{head}: ERROR {res['error']}", file=sys.stderr, flush=True)
        return
    lost = res.get("log_check", {}).get("lost")
    print(
        f"{head}: {res['rps']:>9,.0f} req/s  p99 {res['p99_ms']:7.2f} ms  "
        f"{res['server_cpu_us_per_request'] or 0:7.0f} us/req"
        + (f"  lost {lost}" if lost is not None else ""),
        file=sys.stderr,
        flush=True,
    )


# --- functional check ---------------------------------------------------------------------------
def get(port: int, path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    return {
        "status": resp.status,
        "request_ids": resp.headers.get_all("X-Request-ID") or [],
        "json": parsed is not None,
        "body": body[:300].decode(errors="replace"),
    }


def functional_check(variant: Variant, harness: Harness, workdir: Path) -> dict[str, Any]:
    """A few requests, one at a time: statuses, JSON bodies, X-Request-ID, log lines."""
    server = start_server(variant, harness, workdir)
    try:
        responses = {
            "items": get(server.port, PATHS["items"]),
            "items_echo": get(server.port, PATHS["items"], {"X-Request-ID": ECHO_ID}),
            "boom": get(server.port, PATHS["boom"]),
        }
    finally:
        stop_server(server)
    out: dict[str, Any] = {"responses": responses}
    if variant.classify is not None:
        out["logs"] = count_logs(variant, server.log_dir)
    return out


def run_checks(keys: list[str], harness: Harness, tmp: Path) -> dict[str, dict[str, Any]]:
    checks = {}
    for key in keys:
        try:
            checks[key] = functional_check(VARIANTS[key], harness, tmp / f"check-{key}")
        except Exception as exc:
            checks[key] = {"error": f"{type(exc).__name__}: {exc}"}
        print(
            f"[check] {key.upper()}: {'error' if 'error' in checks[key] else 'done'}",
            file=sys.stderr,
        )
    return checks


def rid_cell(resp: dict[str, Any], echo: str | None = None) -> str:
    ids = resp["request_ids"]
    if not ids:
        return "none"
    text = "yes" if len(ids) == 1 else f"{len(ids)} headers"
    if echo is not None:
        text += ", echoed" if ids[0] == echo else ", **not echoed**"
    return text


def checks_table(checks: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| variant | /items/42 | X-Request-ID | client's ID | /boom | JSON body | X-Request-ID "
        "| log lines: all (access, error) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, chk in checks.items():
        label = VARIANTS[key].label
        if "error" in chk:
            lines.append(f"| {label} | n/a ({chk['error']}) |||||||")
            continue
        r = chk["responses"]
        logs = chk.get("logs")
        log_cell = (
            f"{logs['lines']} ({logs.get('access', 0)}, {logs.get('error', 0)})"
            if logs
            else "no log"
        )
        lines.append(
            f"| {label} | {r['items']['status']} | {rid_cell(r['items'])} "
            f"| {rid_cell(r['items_echo'], ECHO_ID)} | {r['boom']['status']} "
            f"| {'yes' if r['boom']['json'] else 'no'} | {rid_cell(r['boom'])} | {log_cell} |"
        )
    return "\n".join(lines)


# --- the tables ---------------------------------------------------------------------------------


def paired(
    runs: list[dict[str, Any]], refs: list[dict[str, Any]], field: str
) -> list[tuple[Any, Any]]:
    """(run[field], ref[field]) of the same round, for every round where both ran."""
    by_round = {r["round"]: r for r in refs if "error" not in r}
    out = []
    for run in runs:
        ref = by_round.get(run["round"])
        if "error" not in run and ref is not None:
            out.append((run[field], ref[field]))
    return out


def paired_ratio(runs: list[dict[str, Any]], refs: list[dict[str, Any]], field: str) -> list[float]:
    """run[field] / ref[field] of the same round, for every round where both ran."""
    return [value / ref for value, ref in paired(runs, refs, field) if ref]


def summarise(
    results: dict[tuple[str, str], list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    rows = []
    for (path_key, key), runs in results.items():
        good = [r for r in runs if "error" not in r]
        row: dict[str, Any] = {"path": PATHS[path_key], "variant": key, "rounds": len(runs)}
        row["errors"] = [r["error"] for r in runs if "error" in r]
        if good:
            ref = results.get((path_key, "a"), [])
            row |= {
                "rps": [r["rps"] for r in good],
                "rps_vs_a": paired_ratio(good, ref, "rps"),
                "p50_ms": med([r["p50_ms"] for r in good]),
                "p99_ms": med([r["p99_ms"] for r in good]),
                "p99_vs_a": paired_ratio(good, ref, "p99_ms"),
                "cpu_us": med([r["server_cpu_us_per_request"] for r in good]),
                "cpu_vs_a": paired_ratio(good, ref, "server_cpu_us_per_request"),
                "status_ok": all(r["status_ok"] for r in good),
                "foreign_busy": max(r["foreign_busy_server_cpu"] for r in good),
                "foreign_busy_load": max(r["foreign_busy_load_cpu"] for r in good),
                "reruns": sum(len(r["disturbed_attempts_discarded"]) for r in good),
                "load_busy": max(r["load_cpu_busy"] for r in good),
                "socket_errors": med([sum(r["socket_errors"].values()) for r in good]),
                "killed": sum(r["stop"]["killed"] for r in good),
            }
            checks = [r["log_check"] for r in good if "log_check" in r]
            if checks:
                row |= summarise_logs(checks, [r["logs"] for r in good])
        rows.append(row)
    return rows


def summarise_logs(checks: list[dict[str, Any]], logs: list[dict[str, Any]]) -> dict[str, Any]:
    per_req = [c["lines_per_request"] for c in checks if c["lines_per_request"] is not None]
    size = [c["bytes_per_request"] for c in checks if c["bytes_per_request"] is not None]
    return {
        "lines_per_request": med(per_req) if per_req else None,
        "bytes_per_request": med(size) if size else None,
        "largest_line": max(lg["largest_line"] for lg in logs),
        "lost": sum(c["lost"] for c in checks),
        "rate_limited": sum(c["rate_limited"] for c in checks),
        "handled": sum(c["handled_by_wrk"] for c in checks),
        "surplus": [c["surplus"] for c in checks],
        "invalid": sum(lg.get("invalid", 0) for lg in logs),
        "missing_error_lines": sum(c.get("missing_error_lines", 0) for c in checks),
        "rate_limited_error_lines": sum(c.get("rate_limited_error_lines", 0) for c in checks),
    }


def ratio(values: list[float]) -> str:
    return f"{med(values):.2f}" if values else "n/a"


def lost_cell(row: dict[str, Any]) -> str:
    if "lost" not in row:
        return "n/a" if row["variant"] == "a" else "-"
    text = f"{row['lost']:,} of {row['handled']:,}"
    if row["lost"]:
        text = f"**{text}**"
    if row["rate_limited"]:
        text += f" (+{row['rate_limited']:,} rate-limited, counted in summary lines)"
    return text


def main_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"| path | variant | req/s (median, min{DASH}max) | req/s vs A | p50 ms | p99 ms "
        "| p99 vs A | server CPU µs/req | CPU/req vs A | log lines per request | lost log lines |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        label = VARIANTS[row["variant"]].label
        if "rps" not in row:
            reason = row["errors"][0] if row["errors"] else "not run"
            lines.append(f"| {row['path']} | {label} | n/a ({reason}) |||||||||")
            continue
        per_req = row.get("lines_per_request")
        lines.append(
            f"| {row['path']} | {label} | {spread(row['rps'])} | {ratio(row['rps_vs_a'])} "
            f"| {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {ratio(row['p99_vs_a'])} "
            f"| {row['cpu_us']:,.0f} | {ratio(row['cpu_vs_a'])} "
            f"| {f'{per_req:.2f}' if per_req else 'n/a'} | {lost_cell(row)} |"
        )
    return "\n".join(lines)


def details_cells(row: dict[str, Any]) -> list[str]:
    """The log columns of the details table ("n/a" for a variant that writes no log)."""
    if "lost" not in row:
        return ["n/a"] * 5
    size = row.get("bytes_per_request")
    surplus = f"{min(row['surplus'])}{DASH}{max(row['surplus'])}"
    missing = "n/a"
    if row["path"] == PATHS["boom"]:
        missing = f"{row['missing_error_lines']:,}"
        if row["rate_limited_error_lines"]:
            missing += f" (+{row['rate_limited_error_lines']:,} rate-limited, counted)"
    return [
        f"{size:,.0f}" if size else "n/a",
        f"{row['largest_line']:,}",
        surplus,
        str(row["invalid"]),
        missing,
    ]


def details_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| path | variant | log bytes per request | largest line (bytes) | surplus lines "
        "(in flight at wrk's stop) | invalid JSON lines | missing error lines | statuses as "
        "expected | socket errors per run | other work on server CPU (max) | other work on "
        "load CPU (max) | load CPU busy (max) | disturbed runs redone |",
        "|---|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "rps" not in row:
            continue
        cells = [row["path"], row["variant"].upper(), *details_cells(row)]
        cells += [
            "yes" if row["status_ok"] else "**no**",
            f"{row['socket_errors']:,.0f}",
            f"{row['foreign_busy']:.1%}",
            f"{row['foreign_busy_load']:.1%}",
            f"{row['load_busy']:.0%}",
            str(row["reruns"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets_section(rows: list[dict[str, Any]]) -> str:
    out = []
    for key in SERVICELOG:
        for path_key, target in TARGETS.items():
            path = PATHS[path_key]
            row = next((r for r in rows if r["path"] == path and r["variant"] == key), None)
            if row is None or "rps" not in row:
                continue
            keep, p99 = med(row["rps_vs_a"]), med(row["p99_vs_a"])
            out.append(
                f"- {VARIANTS[key].label}, {path}: req/s vs bare {keep:.2f} (target "
                f"{TIMES}{target:.2f}: {'met' if keep >= target else '**missed**'}); p99 vs bare "
                f"{p99:.2f} (target {TIMES}{P99_TARGET}: "
                f"{'met' if p99 <= P99_TARGET else '**missed**'}); lost log lines {row['lost']:,}"
            )
    return "\n".join(out) or "- servicelog not measured"


# --- profiling (--profile) ----------------------------------------------------------------------
def profile_variant(key: str, paths: list[str], seconds: int, harness: Harness, tmp: Path) -> int:
    """py-spy a server under wrk load on each path; print where its samples go."""
    beside = Path(sys.executable).with_name("py-spy")  # in the virtualenv, maybe not on PATH
    pyspy = str(beside) if beside.exists() else shutil.which("py-spy")
    if not pyspy:
        print("py-spy is not installed (pip install py-spy)", file=sys.stderr)
        return 1
    for path_key in paths:
        server = start_server(VARIANTS[key], harness, tmp / f"profile-{path_key}")
        raw = tmp / f"profile-{path_key}.txt"
        try:
            run_wrk(server.port, PATHS[path_key], WARMUP, CONNECTIONS, harness.nice)
            spy = [pyspy, "record", "--native", "--threads", "--format", "raw", "-r", "100"]
            spy += ["-d", str(seconds), "-p", str(server.pid), "-o", str(raw)]
            with subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
                wrk = run_wrk(server.port, PATHS[path_key], seconds + 2, CONNECTIONS, harness.nice)
                _, err = proc.communicate(timeout=60)
            if proc.returncode != 0:
                print(f"py-spy failed: {err.decode(errors='replace')[-500:]}", file=sys.stderr)
                return 1
        finally:
            stop_server(server)
        print(
            f"## {VARIANTS[key].label}, {PATHS[path_key]}: py-spy at 100 Hz for {seconds} s "
            f"under wrk ({wrk['rps']:,.0f} req/s while sampled)\n"
        )
        print(profile_summary(raw.read_text()) + "\n")
    return 0


_FRAME = re.compile(r"(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)")


def split_frame(frame: str) -> tuple[str, str, str | None]:
    """``func (pkg/file.py:12)`` -> (func, file, package), package None for stdlib or native
    code. py-spy already shortens the file to its path below site-packages or the stdlib."""
    m = _FRAME.fullmatch(frame)
    if not m:
        return frame, "", None
    func, file = m.group("func"), m.group("file")
    if not file.endswith(".py"):
        return func, file, None  # native (.so, .c, .h), frozen, <string>
    top = re.split(r"[/.]", file, maxsplit=1)[0]
    return func, file, None if top in sys.stdlib_module_names else top


def is_python(frame: str) -> bool:
    return split_frame(frame)[1].endswith(".py") or "<frozen" in frame


def charge(frames: list[str]) -> tuple[str, str]:
    """Who a sample is charged to: the innermost Python function (native code it called is
    folded into it), and the innermost package in the stack (stdlib work goes to the package
    that called it)."""
    python = [f for f in frames if is_python(f)]
    func, file, _ = split_frame(python[-1] if python else frames[-1])
    package = next(
        (pkg for f in reversed(frames) if (pkg := split_frame(f)[2]) is not None), "event loop"
    )
    return f"{func} ({file})", package


# With --native, py-spy reports a thread blocked in a wait as active; these are such waits.
_WAITS = ("Condition.wait (", "Event.wait (", "pthread_cond_", "epoll_wait", "epoll_pwait")


def waiting(frames: list[str]) -> bool:
    python = [f for f in frames if is_python(f)]
    return any(frames[-1].startswith(w) or (python and python[-1].startswith(w)) for w in _WAITS)


def profile_summary(raw: str, top: int = 25) -> str:
    """Shares of busy samples by thread, by package, by function (self), and servicelog's
    functions (inclusive). Samples of a thread blocked in a wait are left out."""
    threads: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = idle = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames, n = stack.split(";"), int(count)
        if waiting(frames):
            idle += n
            continue
        total += n
        thread = frames[0].split(": ", 1)[-1] if frames[0].startswith("thread (") else "?"
        threads[thread.split("[", 1)[0]] += n
        function, package = charge(frames[1:] if thread != "?" else frames)
        packages[package] += n
        functions[function] += n
        for name in {
            f"{fn} ({file})" for fn, file, pkg in map(split_frame, frames) if pkg == "servicelog"
        }:
            ours[name] += n
    if not total:
        return "(no samples)"

    def shares(counter: Counter[str], limit: int) -> list[str]:
        return [f"- {n / total:5.1%} {name}" for name, n in counter.most_common(limit)]

    sections = [
        (f"{total:,} busy samples ({idle:,} in waits left out). By thread:", shares(threads, 6)),
        ("By package (innermost package frame in the stack):", shares(packages, 12)),
        (
            f"Top {top} functions, self time (native code folded into its caller):",
            shares(functions, top),
        ),
        ("servicelog functions, inclusive time:", shares(ours, top)),
    ]
    return "\n\n".join(title + "\n\n" + "\n".join(lines) for title, lines in sections)


# --- entry point --------------------------------------------------------------------------------
def machine_info(server_args: list[str]) -> dict[str, Any]:
    versions = {}
    for dist in (
        "fastapi", "starlette", "uvicorn", "uvloop", "httptools", "pydantic", "loguru",
        "structlog", "orjson", "asgi-correlation-id", "fapilog",
    ):  # fmt: skip
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": sorted(os.sched_getaffinity(0)),
        "versions": versions,
        "wrk": (wrk.stdout + wrk.stderr).strip().splitlines()[0] if wrk.stdout + wrk.stderr else "",
        "uvicorn_args": server_args,
    }


def variant_keys(only: str, default: list[str]) -> tuple[list[str], list[str]]:
    """The variant keys of ``--only`` (*default* when empty), bare FastAPI first if missing
    (every comparison needs it), and the keys that name no variant."""
    keys = [k.strip() for k in only.split(",") if k.strip()] or list(default)
    if "a" not in keys:
        keys.insert(0, "a")
    return keys, [k for k in keys if k not in VARIANTS]


class CopyProblem(Exception):
    """The copied servicelog does not import (the working tree may be half-edited)."""


@contextlib.contextmanager
def copied_code(src: str, nice: int, prefix: str) -> Iterator[tuple[Harness, dict[str, Any], Path]]:
    """A temporary folder with the code to measure copied in (see :func:`snapshot_code`);
    yields the harness, what was copied, and the folder. Raises :class:`CopyProblem` when
    the copy does not import."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        harness, code = snapshot_code(Path(tmp) / "code", src, nice)
        problem = import_problem(harness)
        if problem:
            raise CopyProblem(problem)
        yield harness, code, Path(tmp)


def preflight() -> str | None:
    """Why the benchmark cannot run here, or None."""
    for tool, package in (("wrk", "wrk"), ("taskset", "util-linux")):
        if not shutil.which(tool):
            return f"{tool} is not installed (apt-get install -y {package})"
    if not {0, 1} <= os.sched_getaffinity(0):
        return "needs CPUs 0 and 1 (server on one, wrk on the other)"
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: D=3 s, 1 round")
    parser.add_argument(
        "--duration", type=int, default=None, help=f"measured s (default {DURATION})"
    )
    parser.add_argument("--warmup", type=int, default=WARMUP, help=f"warm-up s (default {WARMUP})")
    parser.add_argument("--rounds", "--reps", type=int, default=None, help=f"default {ROUNDS}")
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    parser.add_argument(
        "--max-quiet-wait", type=float, default=30, help="s to wait for idle CPUs per scenario"
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=-20 if os.geteuid() == 0 else 0,
        help="niceness of the server and wrk (default -20 as root, else 0)",
    )
    parser.add_argument("--retries", type=int, default=2, help="re-runs of a disturbed scenario")
    parser.add_argument("--only", default="", help="variant keys, comma-separated (a,s,n,g,c,f)")
    parser.add_argument("--paths", default="items,boom", help="items,boom")
    parser.add_argument(
        "--src", choices=("worktree", "head"), default="worktree", help="servicelog to measure"
    )
    parser.add_argument("--profile", metavar="KEY", help="py-spy one variant instead of timing")
    parser.add_argument("--profile-seconds", type=int, default=10)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # bench/run.py passes every script the same arguments
        print(f"http_bench: ignoring {' '.join(unknown)}", file=sys.stderr)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = preflight()
    if problem:
        print(f"# HTTP benchmark\n\nn/a: {problem}")
        return 1
    keys, bad = variant_keys(args.only, list(VARIANTS))
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    bad += [p for p in paths if p not in PATHS]
    if bad or (args.profile and args.profile not in VARIANTS):
        print(f"unknown variant or path: {bad or args.profile}", file=sys.stderr)
        return 2
    cfg = Config(
        duration=args.duration or (3 if args.quick else DURATION),
        warmup=args.warmup,
        rounds=args.rounds or (1 if args.quick else ROUNDS),
        connections=args.connections,
        max_quiet_wait=args.max_quiet_wait,
        retries=args.retries,
    )
    try:
        with (
            copied_code(args.src, args.nice, "http-bench-") as (harness, code, tmp),
            raised_priority(args.nice) as priority,
        ):
            if args.profile:
                return profile_variant(args.profile, paths, args.profile_seconds, harness, tmp)
            return run_benchmark(keys, paths, cfg, harness, code, priority, tmp)
    except CopyProblem as exc:
        print(f"# HTTP benchmark\n\nn/a: the copied servicelog does not import: {exc}")
        return 1


def run_benchmark(
    keys: list[str],
    paths: list[str],
    cfg: Config,
    harness: Harness,
    code: dict[str, Any],
    priority: str,
    tmp: Path,
) -> int:
    info = machine_info(harness.server_args)
    info["priority"] = priority
    started = datetime.now(UTC)
    print("# HTTP benchmark\n")
    print(f"Python {info['python']}, {info['platform']}, CPUs {info['cpus']}, {info['wrk']}")
    print("Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    dirty = " + uncommitted changes" if code["uncommitted_changes_in_src"] else ""
    print(
        f"servicelog: commit {code['commit']}{dirty}, from the {code['source']} "
        "(src/servicelog and bench/http copied at start)"
    )
    nice = " ".join([*harness.nice, ""])
    print(
        f"Server: `{nice}taskset -c {SERVER_CPU} uvicorn bench.http.app_x:app "
        f"{' '.join(harness.server_args)}`, one worker. Load: `{nice}taskset -c {LOAD_CPU} "
        f"wrk -t1 -c{cfg.connections} -d{cfg.duration}s --latency` after a {cfg.warmup} s "
        f"warm-up. {cfg.rounds} round(s), order rotated, fresh server per scenario. "
        f"Priority: {info['priority']}.\n",
        flush=True,
    )
    note = speedups_note()
    if note:
        print(f"**{note}**\n", flush=True)
        print(note, file=sys.stderr)
    checks = run_checks(keys, harness, tmp)
    scenarios = [(p, k) for p in paths for k in keys]
    results = run_rounds(scenarios, cfg, harness, tmp)
    rows = summarise(results)

    print("## Functional check (one request at a time)\n")
    print(checks_table(checks) + "\n")
    print(f"## Results (medians of {cfg.rounds} round(s); ratios paired per round)\n")
    print(main_table(rows) + "\n")
    print("## Details\n")
    print(details_table(rows) + "\n")
    print("## servicelog against the targets of issue 4\n")
    print(targets_section(rows) + "\n")

    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"http-{started:%Y%m%dT%H%M%SZ}.json"
    payload = {
        "started": started.isoformat(),
        "seconds": (datetime.now(UTC) - started).total_seconds(),
        "machine": info,
        "servicelog_code": code,
        "config": cfg._asdict(),
        "checks": checks,
        "summary": rows,
        "runs": {f"{p}/{k}": runs for (p, k), runs in results.items()},
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
        if variant.key in SERVICELOG and "rps" in row and (row["lost"] or not row["status_ok"]):
            return True
    return False


if __name__ == "__main__":
    sys.exit(main())
