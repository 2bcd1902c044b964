"""How long one log call makes the caller wait, under a steady multi-threaded load with rotation.

The research catalog's soak item (L2, ``anchors-reliability.md``) sets, besides the memory and
descriptor checks that ``tests/reliability/test_soak.py`` makes, a latency target: "p99 of a
``logger.info()`` call <= 200 us in queued mode (<= 2 ms in synchronous locked mode)". Tests do
not time things here, so this script measures it, side by side:

* servicelog: ``RotatingFileSink`` (queued: rendered on the caller, written by a writer thread);
* loguru ``serialize=True, enqueue=True`` (queued: a worker thread formats and writes);
* stdlib ``RotatingFileHandler`` with a JSON formatter (synchronous, under the handler's lock).

Each runs in a fresh process: *threads* threads log together *rate* records per second, paced,
for *seconds* seconds, into a file set that rotates every 256 KiB and compresses rotated files
with gzip (the stdlib's through the cookbook's ``rotator``/``namer``). Every call is timed with
``perf_counter_ns``; the first fifth of the run is warm-up and left out. Afterwards every file
is read back: each record must be there once.

    python bench/call_latency_bench.py                 # 16 threads, 2,000 rec/s, 20 s, 3 reps
    python bench/call_latency_bench.py --quick         # 5 s, 1 rep
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from _tables import child_env, rotated

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
ROTATE = 256 * 1024
THREADS, RATE, SECONDS, REPS = 16, 2000, 20, 3
TARGET_QUEUED_US, TARGET_SYNC_US = 200.0, 2000.0
VARIANTS = {
    "floor": ("floor: a call that does nothing (this harness, cold)", True),
    "servicelog": ("servicelog RotatingFileSink (queued)", True),
    "loguru": ("loguru serialize=True enqueue=True (queued)", True),
    "stdlib": ("stdlib RotatingFileHandler + JSON formatter (synchronous)", False),
}


# --- the child: one process, one variant --------------------------------------------------------
def setup(variant: str, directory: Path) -> tuple[Any, Any]:
    """Configure *variant*; return (log(t, j), close())."""
    if variant == "floor":

        def nothing(t: int, j: int) -> None:
            pass

        return nothing, lambda: None
    if variant == "servicelog":
        import servicelog
        from servicelog.render.json import JsonRenderer
        from servicelog.sinks import RotatingFileSink

        sink = RotatingFileSink(
            directory / "app.jsonl", JsonRenderer(), rotation=ROTATE, compression="gz"
        )
        off = servicelog.CaptureOptions(
            stdlib=False, warnings=False, excepthooks=False, structlog=False, loguru=False
        )
        servicelog.configure(
            stream="none", sinks=[sink], capture=off, profile="production", service="bench"
        )
        info = servicelog.get_logger("bench").info

        def log(t: int, j: int) -> None:
            info("soak", t=t, j=j, order={"id": j, "items": [1, 2, 3]}, user=f"u{j}")

        return log, servicelog.reset
    if variant == "loguru":
        from loguru import logger

        logger.remove()
        logger.add(
            str(directory / "app.log"), serialize=True, enqueue=True, rotation=ROTATE,
            compression="gz",
        )  # fmt: skip

        def log(t: int, j: int) -> None:
            logger.info("soak", t=t, j=j, order={"id": j, "items": [1, 2, 3]}, user=f"u{j}")

        return log, logger.remove
    import logging
    from logging.handlers import RotatingFileHandler

    class JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            fields = {"@timestamp": record.created, "log.level": record.levelname.lower()}
            fields["message"] = record.getMessage()
            for key in ("t", "j", "order", "user"):
                fields[key] = record.__dict__.get(key)
            return orjson.dumps(fields).decode()

    def rotator(source: str, dest: str) -> None:  # the logging cookbook's compressing rotator
        with open(source, "rb") as src, gzip.open(dest, "wb") as out:
            out.writelines(src)
        os.remove(source)

    handler = RotatingFileHandler(directory / "app.log", maxBytes=ROTATE, backupCount=100_000)
    handler.rotator = rotator
    handler.namer = lambda name: name + ".gz"
    handler.setFormatter(JsonFormatter())
    std = logging.getLogger("bench")
    std.handlers[:] = [handler]
    std.setLevel(logging.INFO)
    std.propagate = False

    def log(t: int, j: int) -> None:
        std.info(
            "soak", extra={"t": t, "j": j, "order": {"id": j, "items": [1, 2, 3]}, "user": f"u{j}"}
        )

    return log, handler.close


def child(variant: str, directory: Path, seconds: float, threads: int, rate: float) -> None:
    """Run the load; print one JSON line: call latencies (after warm-up) and records produced."""
    log, close = setup(variant, directory)
    per_thread = rate / threads
    start = time.monotonic() + 0.2
    warm_until, stop_at = start + seconds / 5, start + seconds
    samples: list[list[int]] = [[] for _ in range(threads)]
    produced = [0] * threads
    clock = time.perf_counter_ns

    def work(t: int) -> None:
        mine = samples[t]
        n = 0
        while True:
            now = time.monotonic()
            if now >= stop_at:
                break
            due = start + (n + t / threads) / per_thread  # staggered: one call every 1/rate s
            if due > now:
                time.sleep(due - now)
            before = clock()
            log(t, n)
            took = clock() - before
            if due >= warm_until:
                mine.append(took)
            n += 1
        produced[t] = n

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    closing = time.monotonic()
    close()
    latencies = sorted(x for s in samples for x in s)
    out = {
        "produced": sum(produced),
        "timed": len(latencies),
        "close_s": time.monotonic() - closing,
        **{f"p{p}_us": pct(latencies, p) / 1000 for p in (50, 90, 99, 99.9)},
        "max_us": latencies[-1] / 1000 if latencies else float("nan"),
    }
    sys.stdout.write(json.dumps(out) + "\n")


def pct(values: list[int], p: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not values:
        return float("nan")
    rank = max(1, int(-(-len(values) * p // 100)))
    return float(values[min(rank, len(values)) - 1])


# --- the parent: run, read back, report ----------------------------------------------------------
def records_in(directory: Path, variant: str) -> tuple[set[tuple[int, int]], int, int]:
    """(t, j) of every record in the file set, the number of lines, and the unparseable ones."""
    seen: set[tuple[int, int]] = set()
    lines = bad = 0
    for path in sorted(directory.iterdir()):
        opener: Any = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as handle:
            for line in handle:
                lines += 1
                try:
                    obj = orjson.loads(line)
                    fields = obj["record"]["extra"] if variant == "loguru" else obj
                    seen.add((int(fields["t"]), int(fields["j"])))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    bad += 1
    return seen, lines, bad


def run_one(variant: str, args: argparse.Namespace, tmp: Path, rep: int) -> dict[str, Any]:
    directory = tmp / f"{variant}-{rep}"
    directory.mkdir()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", variant, str(directory)]
    cmd += ["--seconds", str(args.seconds), "--threads", str(args.threads)]
    cmd += ["--rate", str(args.rate)]
    env = child_env(str(BENCH_DIR.parent / "src"))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.seconds + 120)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-500:] or f"exit {proc.returncode}"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if variant == "floor":  # writes nothing: nothing to read back
        return result | {"lost": 0, "duplicated": 0, "unparseable": 0, "files": 0}
    seen, lines, bad = records_in(directory, variant)
    result["lost"] = result["produced"] - len(seen)
    result["duplicated"] = lines - bad - len(seen)
    result["unparseable"] = bad
    result["files"] = len(list(directory.iterdir()))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 s, 1 repetition")
    parser.add_argument("--seconds", type=float, default=None, help=f"default {SECONDS}")
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--rate", type=float, default=RATE, help="records per second, in all")
    parser.add_argument("--reps", type=int, default=None, help=f"default {REPS}")
    parser.add_argument("--only", default=",".join(VARIANTS))
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "DIR"), help=argparse.SUPPRESS)
    args, unknown = parser.parse_known_args(argv)
    args.seconds = args.seconds or (5.0 if args.quick else SECONDS)
    if args.child:
        child(args.child[0], Path(args.child[1]), args.seconds, args.threads, args.rate)
        return 0
    if unknown:  # bench/run.py passes every script the same arguments
        print(f"call_latency_bench: ignoring {' '.join(unknown)}", file=sys.stderr)
    reps = args.reps or (1 if args.quick else REPS)
    keys = [k.strip() for k in args.only.split(",") if k.strip()]
    if bad := [k for k in keys if k not in VARIANTS]:
        print(f"unknown variant: {bad}", file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    print("# Log-call latency under a steady load (catalog item L2)\n")
    print(
        f"Python {sys.version.split()[0]}. {args.threads} threads, {args.rate:,.0f} records/s in "
        f"all, paced, {args.seconds:g} s per run (the first fifth not timed), rotation every "
        f"{ROTATE // 1024} KiB with gzip, every file kept and read back. {reps} repetition(s), "
        "order rotated, a fresh process per run.\n",
        flush=True,
    )
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
    with tempfile.TemporaryDirectory(prefix="call-latency-") as tmp:
        for rep in range(reps):
            for key in rotated(keys, rep, reps):
                res = run_one(key, args, Path(tmp), rep)
                results[key].append(res)
                brief = res.get("error") or (
                    f"p50 {res['p50_us']:.1f} us  p99 {res['p99_us']:.1f} us  "
                    f"max {res['max_us']:,.0f} us  lost {res['lost']}"
                )
                print(f"[rep {rep + 1}/{reps}] {key}: {brief}", file=sys.stderr, flush=True)
    rows = summarise(results)
    print(table(rows) + "\n")
    print(targets(rows) + "\n")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"call-latency-{started:%Y%m%dT%H%M%SZ}.json"
    out.write_text(
        json.dumps({"started": started.isoformat(), "args": vars(args), "runs": results})
    )
    print(f"Results written to {out.relative_to(BENCH_DIR.parent)}")
    ours = [r for r in rows if r["key"] == "servicelog"]
    return (
        1
        if any(r["errors"] or r["lost"] or r["duplicated"] or r["unparseable"] for r in ours)
        else 0
    )


def summarise(results: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for key, runs in results.items():
        ok = [r for r in runs if "error" not in r]
        row: dict[str, Any] = {"key": key, "errors": [r["error"] for r in runs if "error" in r]}
        for field in ("p50_us", "p90_us", "p99_us", "p99.9_us", "max_us", "close_s"):
            row[field] = statistics.median(r[field] for r in ok) if ok else float("nan")
        for field in ("lost", "duplicated", "unparseable", "produced"):
            row[field] = sum(r[field] for r in ok)
        rows.append(row)
    base = next((r for r in rows if r["key"] == "servicelog"), None)
    for row in rows:
        row["p99_vs_servicelog"] = row["p99_us"] / base["p99_us"] if base else float("nan")
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = "| variant | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | p99 vs servicelog |"
    head += " lost | duplicated | unparseable | close s |"
    lines = [head, "|---|" + "---:|" * 10]
    for r in rows:
        label = VARIANTS[r["key"]][0]
        if r["errors"] and r["produced"] == 0:
            lines.append(f"| {label} | failed: {r['errors'][0][:80]} |" + " |" * 9)
            continue
        if r["key"] == "floor":  # writes nothing
            written = "n/a | n/a | n/a"
        else:
            written = f"{r['lost']} of {r['produced']:,} | {r['duplicated']} | {r['unparseable']}"
        lines.append(
            f"| {label} | {r['p50_us']:,.1f} | {r['p90_us']:,.1f} | {r['p99_us']:,.1f} | "
            f"{r['p99.9_us']:,.1f} | {r['max_us']:,.0f} | {r['p99_vs_servicelog']:.2f} | "
            f"{written} | {r['close_s']:.2f} |"
        )
    return "\n".join(lines)


def targets(rows: list[dict[str, Any]]) -> str:
    out = ["Catalog L2: p99 of a call ≤ 200 µs queued, ≤ 2 ms synchronous."]
    for r in rows:
        if r["key"] == "floor" or (r["errors"] and r["produced"] == 0):
            continue
        queued = VARIANTS[r["key"]][1]
        limit = TARGET_QUEUED_US if queued else TARGET_SYNC_US
        verdict = "met" if r["p99_us"] <= limit else "**missed**"
        out.append(f"- {VARIANTS[r['key']][0]}: p99 {r['p99_us']:,.1f} µs ({verdict})")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
