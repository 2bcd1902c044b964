"""Redaction benchmark: what the default policy adds to a log call, next to the guide's
``LogSanitizer`` and sentry-python's ``EventScrubber`` applied to the same record.

Method (the same scenario and harness as ``logging_bench.py``): servicelog's own API, the
production profile, one JSON file sink; every record is the foundation benchmark's INFO record,
"request completed" + method/path/status/duration_ms + a bound request_id (15 keys with the
static ECS fields). Each variant runs in a fresh subprocess (this script re-invokes itself with
``--variant NAME --out FILE``), which warms up with 10,000 records, then times 200,000 calls on
the calling thread in 10 slices and keeps the median slice (the machine may be shared: a burst
of other work spoils a slice, not the run); flush and close are not timed. Each
variant runs 5 times, interleaved, the order rotated in each repetition; ratios are taken inside
one repetition against "off" and the median is reported. The parent reads every file back and
checks the line count and that each line is valid JSON with the record's fields unchanged.

The variants differ only in the pipeline's processors:

* ``off``: ``configure(redaction=False, rate_limit=False)``, no processor (the fast path);
* ``noop``: one processor that returns the record (the pipeline's cost of having processors);
* ``redaction``: the default policy of the production profile (PII patterns on);
* ``default``: the production profile's defaults: rate limit + redaction;
* ``guide``: the guide's ``LogSanitizer.sanitize_dict`` as the processor (its code, copied
  below, unchanged but for type hints);
* ``sentry``: ``EventScrubber().scrub_event({"extra": record})`` as the processor;
* ``*-unique``: the same, with ``path=f"/items/{i}"``, so every record carries a string the
  policy has never seen (its clean-string cache cannot answer; the worst case for it).

A second table times each processor alone on the record dict, in one process, best of 5. A
third puts one hostile value in a record (a 1000x1000 matrix, a thousand 1,000-key dicts,
a tree of shared lists, 1 MiB of near-miss text) and times each processor followed by the JSON
renderer, what a log call pays on its thread, in milliseconds (catalog items I3 and I4: 5 ms).

    python bench/redaction_bench.py            # full run (about 5 minutes)
    python bench/redaction_bench.py --quick    # smoke run: N=20,000, 1 repetition
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path
from typing import Any, ClassVar

import orjson
from _tables import DASH, TIMES, child_env, med, rotated, spread

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

N = 200_000
WARMUP = 10_000
REPS = 5
CHILD_TIMEOUT = 900.0
CHUNKS = 10
FIELDS: dict[str, Any] = {"method": "GET", "path": "/items/42", "status": 200, "duration_ms": 1.234}


# --- the guide's LogSanitizer, copied from the guide (backend/core/logging/sanitizer.py) ---------
# Unchanged but for type hints. Note that its "api_key" pattern is defined and never used, and
# that its e-mail mask gives "joh***@***.com" for john@example.com (the guide's comment says
# "joh***@***m.com").
class LogSanitizer:
    """
    Sanitize sensitive data from logs.

    Removes or masks:
    - Passwords
    - API keys/tokens
    - Email addresses
    - Credit card numbers
    - Phone numbers
    - Social security numbers
    """

    # Patterns to detect sensitive data
    PATTERNS: ClassVar[dict[str, str]] = {
        "email": r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Z|a-z]{2,}\b",
        "credit_card": r"\b\d{4}[\s-]?\d{4}[\s-]?\d{4}[\s-]?\d{4}\b",
        "phone": r"\b\d{3}[-.]?\d{3}[-.]?\d{4}\b",
        "ssn": r"\b\d{3}-\d{2}-\d{4}\b",
        "api_key": r"\b[A-Za-z0-9]{32,}\b",  # Generic long alphanumeric
    }

    # Fields that should be filtered
    SENSITIVE_FIELDS: ClassVar[set[str]] = {
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "authorization",
        "auth",
        "credit_card",
        "creditcard",
        "cc",
        "ssn",
        "social_security",
    }

    @classmethod
    def sanitize_dict(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Sanitize dictionary by removing/masking sensitive fields"""

        sanitized = {}

        for key, value in data.items():
            # Check if key is sensitive
            if any(sensitive in key.lower() for sensitive in cls.SENSITIVE_FIELDS):
                sanitized[key] = "[REDACTED]"

            # Recursively sanitize nested dicts
            elif isinstance(value, dict):
                sanitized[key] = cls.sanitize_dict(value)

            # Sanitize lists
            elif isinstance(value, list):
                sanitized[key] = [
                    cls.sanitize_dict(item) if isinstance(item, dict) else item for item in value
                ]

            # Sanitize strings
            elif isinstance(value, str):
                sanitized[key] = cls.sanitize_string(value)

            else:
                sanitized[key] = value

        return sanitized

    @classmethod
    def sanitize_string(cls, text: str) -> str:
        """Sanitize string by masking patterns"""

        result = text

        # Mask email addresses
        result = re.sub(
            cls.PATTERNS["email"], lambda m: m.group(0)[:3] + "***@***" + m.group(0)[-4:], result
        )

        # Mask credit cards
        result = re.sub(cls.PATTERNS["credit_card"], "****-****-****-****", result)

        # Mask phone numbers
        result = re.sub(cls.PATTERNS["phone"], "***-***-****", result)

        # Mask SSN
        result = re.sub(cls.PATTERNS["ssn"], "***-**-****", result)

        return result  # noqa: RET504 - the guide's code, kept as written


# --- the variants -------------------------------------------------------------------------------
Processor = Callable[[dict[str, Any], int], Any]


def noop(record: dict[str, Any], levelno: int) -> dict[str, Any]:
    return record


def guide(record: dict[str, Any], levelno: int) -> dict[str, Any]:
    return LogSanitizer.sanitize_dict(record)


def make_sentry() -> Processor:
    from sentry_sdk.scrubber import EventScrubber

    scrubber = EventScrubber()

    def sentry(record: dict[str, Any], levelno: int) -> dict[str, Any]:
        scrubber.scrub_event({"extra": record})  # scrubs in place, as before_send would
        return record

    return sentry


# key: (label, configure() options, processors factory, unique paths)
VARIANTS: dict[str, tuple[str, dict[str, Any], Callable[[], list[Processor]], bool]] = {
    "off": ("servicelog, redaction off", dict(redaction=False, rate_limit=False), list, False),
    "noop": ("+ a no-op processor", dict(redaction=False, rate_limit=False), lambda: [noop], False),
    "redaction": ("+ default redaction policy", dict(rate_limit=False), list, False),
    "default": ("+ production defaults (rate limit + redaction)", {}, list, False),
    "guide": (
        "+ the guide's LogSanitizer",
        dict(redaction=False, rate_limit=False),
        lambda: [guide],
        False,
    ),
    "sentry": (
        "+ sentry-sdk EventScrubber",
        dict(redaction=False, rate_limit=False),
        lambda: [make_sentry()],
        False,
    ),
    "off-unique": (
        "unique paths: redaction off",
        dict(redaction=False, rate_limit=False),
        list,
        True,
    ),
    "redaction-unique": (
        "unique paths: + default redaction policy",
        dict(rate_limit=False),
        list,
        True,
    ),
    "guide-unique": (
        "unique paths: + the guide's LogSanitizer",
        dict(redaction=False, rate_limit=False),
        lambda: [guide],
        True,
    ),
}
REFERENCE = {False: "off", True: "off-unique"}


# --- the child ----------------------------------------------------------------------------------
def info_same(log: Any, n: int) -> None:
    for _ in repeat(None, n):
        log.info("request completed", method="GET", path="/items/42", status=200, duration_ms=1.234)


def info_unique(log: Any, n: int, start: int) -> None:
    for i in range(start, start + n):
        log.info(
            "request completed", method="GET", path=f"/items/{i}", status=200, duration_ms=1.234
        )


def run_child(key: str, out: Path, n: int, warmup: int) -> dict[str, Any]:
    import servicelog

    _, options, processors, unique = VARIANTS[key]
    servicelog.configure(
        service="bench",
        profile="production",
        stream="none",
        file=out,
        capture=servicelog.CaptureOptions(
            stdlib=False, warnings=False, excepthooks=False, structlog=False, loguru=False
        ),
        processors=processors(),
        **options,
    )
    log = servicelog.get_logger("bench")
    servicelog.bind(request_id=str(uuid.uuid4()))
    if unique:
        info_unique(log, warmup, 0)
    else:
        info_same(log, warmup)
    servicelog.flush()
    gc.collect()
    # Timed in CHUNKS slices; the median slice is the figure (the machine is shared: a burst
    # of someone else's work spoils a slice, not the run). The total is kept too.
    chunk = max(n // CHUNKS, 1)
    slices = []
    done = 0
    t0 = time.perf_counter_ns()
    while done < n:
        size = min(chunk, n - done)
        s0 = time.perf_counter_ns()
        if unique:
            info_unique(log, size, warmup + done)
        else:
            info_same(log, size)
        slices.append((time.perf_counter_ns() - s0) / size)
        done += size
    t1 = time.perf_counter_ns()
    servicelog.flush()
    stats = servicelog.stats()
    servicelog.reset()
    return {
        "n": n,
        "warmup": warmup,
        "caller_ns": statistics.median(slices),
        "total_ns": (t1 - t0) / n,
        "slices_ns": slices,
        "stats": stats,
    }


# --- the parent ---------------------------------------------------------------------------------
def check_output(path: Path, expected: int, unique: bool) -> dict[str, Any]:
    problems = []
    lines = path.read_bytes().split(b"\n")
    if lines[-1] != b"":
        problems.append("last line not terminated")
    lines = lines[:-1]
    if len(lines) != expected:
        problems.append(f"{len(lines):,} lines, expected {expected:,}")
    bad = 0
    for line in lines:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad += 1
            continue
        want = dict(FIELDS)
        if unique:
            want.pop("path")
        if obj.get("message") != "request completed" or any(
            obj.get(k) != v for k, v in want.items()
        ):
            bad += 1
    if bad:
        problems.append(f"{bad:,} lines invalid or changed")
    return {"ok": not problems, "problems": problems, "lines": len(lines)}


def snapshot_servicelog(into: Path) -> str | None:
    """Copy src/servicelog once, so every run measures the same code while others edit."""
    src = REPO / "src" / "servicelog"
    if not src.is_dir():
        return None
    shutil.copytree(src, into / "servicelog", ignore=shutil.ignore_patterns("__pycache__"))
    return str(into)


def run_job(key: str, n: int, warmup: int, workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    out = workdir / f"{key}-{uuid.uuid4().hex[:8]}.jsonl"
    cmd = [sys.executable, __file__, "--variant", key, "--out", str(out)]
    cmd += ["--n", str(n), "--warmup", str(warmup)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {CHILD_TIMEOUT:.0f} s"}
    result_lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not result_lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    result: dict[str, Any] = json.loads(result_lines[-1][len("RESULT ") :])
    result["check"] = check_output(out, n + warmup, VARIANTS[key][3])
    out.unlink(missing_ok=True)
    return result


def run_all(
    keys: list[str], n: int, warmup: int, reps: int, workdir: Path, env: dict[str, str]
) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
    for rep in range(reps):
        for key in rotated(keys, rep, reps):
            res = run_job(key, n, warmup, workdir, env) | {"rep": rep}
            results[key].append(res)
            note = res.get("error") or f"{res['caller_ns']:,.0f} ns/call"
            print(f"  [{rep + 1}/{reps}] {key}: {note}", file=sys.stderr, flush=True)
    return results


def per_rep(
    runs: list[dict[str, Any]], refs: list[dict[str, Any]], fn: Callable[[float, float], float]
) -> list[float]:
    by_rep = {r["rep"]: r for r in refs if "error" not in r}
    return [
        fn(r["caller_ns"], by_rep[r["rep"]]["caller_ns"])
        for r in runs
        if "error" not in r and r["rep"] in by_rep
    ]


def pipeline_table(results: dict[str, list[dict[str, Any]]]) -> tuple[str, list[dict[str, Any]]]:
    lines = [
        f"| variant | caller ns/record (median, min{DASH}max) | added ns vs off "
        f"| {TIMES} off | check |",
        "|---|---:|---:|---:|---|",
    ]
    rows = []
    for key, runs in results.items():
        label, _, _, unique = VARIANTS[key]
        refs = results.get(REFERENCE[unique], [])
        good = [r for r in runs if "error" not in r]
        if not good:
            lines.append(f"| {label} | n/a ({runs[0].get('error') if runs else 'not run'}) | | | |")
            continue
        caller = [r["caller_ns"] for r in good]
        added = per_rep(good, refs, lambda a, b: a - b)
        ratio = per_rep(good, refs, lambda a, b: a / b)
        checks = [r["check"] for r in good]
        bad = [c for c in checks if not c["ok"]]
        check = (
            f"ok {len(checks)}/{len(checks)}"
            if not bad
            else f"**FAIL** {len(bad)}/{len(checks)}: {'; '.join(bad[0]['problems'])}"
        )
        is_ref = key == REFERENCE[unique]
        lines.append(
            f"| {label} | {spread(caller)} | {'—' if is_ref else f'{med(added):+,.0f}'} "
            f"| {'1.00' if is_ref else f'{med(ratio):.2f}'} | {check} |"
        )
        rows.append(
            {"variant": key, "caller_ns": caller, "added_ns": added, "ratio": ratio, "check": check}
        )
    return "\n".join(lines), rows


# --- the processors alone -----------------------------------------------------------------------
def processor_table(reps: int) -> tuple[str, dict[str, float]]:
    """Each processor on the benchmark record dict, in this process, best of *reps*."""
    from servicelog.redaction import RedactionPolicy

    record = {
        "@timestamp": "2026-11-29T15:14:20.678341Z",
        "log.level": "info",
        "message": "request completed",
        "ecs.version": "8.11.0",
        "service.name": "bench",
        "service.environment": "production",
        "event.dataset": "bench.log",
        "process.pid": 4242,
        "log.logger": "bench",
        "process.thread.name": "MainThread",
        "request_id": str(uuid.uuid4()),
        **FIELDS,
    }
    policy = RedactionPolicy(pii=True)
    candidates: dict[str, Processor] = {
        "servicelog default policy": policy,
        "the guide's LogSanitizer.sanitize_dict": guide,
        "sentry-sdk EventScrubber.scrub_event": make_sentry(),
    }
    assert policy(record, 20) is record
    out: dict[str, float] = {}
    number = 20_000
    for name, fn in candidates.items():
        timer = timeit.Timer(lambda fn=fn: fn(record, 20))
        out[name] = min(timer.repeat(repeat=max(reps, 3), number=number)) / number * 1e9
    # The worst case for the policy: a string it has never seen in every record.
    paths = iter([f"/items/{i}" for i in range(number * max(reps, 3) + 1)])

    def fresh() -> None:
        record["path"] = next(paths)
        policy(record, 20)

    out["servicelog default policy, a new path each time"] = (
        min(timeit.Timer(fresh).repeat(repeat=max(reps, 3), number=number)) / number * 1e9
    )
    # A record with a nested field, a fresh dict each time as a call site builds it: a plan
    # cannot know a container clean, so the policy looks inside it on every record.
    record["path"] = FIELDS["path"]
    nested: dict[str, float] = {}
    for name, fn in candidates.items():

        def with_order(fn: Processor = fn) -> None:
            fn({**record, "order": {"id": 42, "items": [{"sku": "A-1", "qty": 2}]}}, 20)

        best = min(timeit.Timer(with_order).repeat(repeat=max(reps, 3), number=number))
        nested[f"{name}, with a nested `order` dict"] = best / number * 1e9
    base = out["servicelog default policy"]
    lines = [f"| processor alone | ns/record | {TIMES} servicelog policy |", "|---|---:|---:|"]
    lines += [f"| {name} | {ns:,.0f} | {ns / base:.1f} |" for name, ns in out.items()]
    base = next(iter(nested.values()))
    lines += [f"| {name} | {ns:,.0f} | {ns / base:.1f} |" for name, ns in nested.items()]
    return "\n".join(lines), out | nested


# --- hostile input -------------------------------------------------------------------------------
def hostile_values() -> dict[str, Any]:
    """Values a log call may carry by mistake or by an attacker's hand: large nested values (each
    container within the 1,000-item cut, but nesting multiplies them) and near-miss text."""
    shared = {f"k{i}": f"value number {i}" for i in range(1000)}
    node: list[Any] = ["leaf"]
    for _ in range(20):
        node = [node, node]
    return {
        "1000x1000 matrix of ints": [list(range(1000)) for _ in range(1000)],
        "1,000 distinct 1,000-key dicts": [
            {f"k{i}": f"value {i} of {j}" for i in range(1000)} for j in range(1000)
        ],
        "one 1,000-key dict shared 1,000 times": [shared] * 1000,
        "node = [node, node], 20 deep": node,
        "1 MiB message": "m" * (1 << 20),
        "1 MiB of `password=x ` pairs": "password=x " * ((1 << 20) // 11),
        "1 MiB of URL userinfo near-misses": "a://:" * ((1 << 20) // 5) + "@",
    }


def hostile_table(reps: int) -> tuple[str, dict[str, dict[str, float]]]:
    """One record carrying each hostile value, through each processor and then the JSON
    renderer (what a log call pays on its thread), in this process, best of *reps* (at least 2),
    in milliseconds. A processor that takes more than 10 s on a value is not run again."""
    from servicelog.redaction import RedactionPolicy
    from servicelog.render.json import JsonRenderer

    renderer = JsonRenderer()
    processors: dict[str, Processor] = {
        "servicelog default policy": RedactionPolicy(pii=True),
        "no processor": noop,
        "the guide's LogSanitizer": guide,
        "sentry-sdk EventScrubber": make_sentry(),
    }
    out: dict[str, dict[str, float]] = {}
    for label, value in hostile_values().items():
        field = "message" if isinstance(value, str) else "payload"
        row: dict[str, float] = {}
        for name, fn in processors.items():
            best = float("inf")
            for _ in range(max(reps, 2)):
                record = {"@timestamp": "2026-11-29T15:14:20.678341Z", "log.level": "info"}
                record |= {"message": "hostile", field: value}
                start = time.perf_counter()
                try:
                    line = renderer(fn(record, 20))
                except RecursionError:  # (the guide's sanitizer has no depth limit)
                    best = float("nan")
                    break
                best = min(best, time.perf_counter() - start)
                assert len(line) <= renderer.max_line_bytes
                if best > 10:
                    break
            row[name] = best * 1000
        out[label] = row
    names = list(processors)
    lines = [
        "| value (one record) | " + " | ".join(f"{n}, ms" for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for label, row in out.items():
        lines.append(f"| {label} | " + " | ".join(f"{row[n]:,.1f}" for n in names) + " |")
    return "\n".join(lines), out


# --- entry point --------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    versions = {}
    for dist in ("servicelog", "orjson", "sentry-sdk"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "nproc": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "versions": versions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=20,000, 1 repetition")
    parser.add_argument("--n", type=int, default=None, help=f"timed records (default {N:,})")
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--reps", type=int, default=None, help=f"repetitions (default {REPS})")
    parser.add_argument("--only", default="", help="comma-separated variant keys")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    # bench/run.py passes every script the same arguments; ignore the other scripts' options.
    args, _ = parser.parse_known_args(argv)
    n = args.n or (20_000 if args.quick else N)
    reps = args.reps or (1 if args.quick else REPS)

    if args.variant:
        print("RESULT " + json.dumps(run_child(args.variant, args.out, n, args.warmup)), flush=True)
        return 0

    keys = [k for k in VARIANTS if not args.only or k in args.only.split(",")]
    if args.only:  # ratios need their reference
        keys = sorted({*keys, *(REFERENCE[VARIANTS[k][3]] for k in keys)}, key=list(VARIANTS).index)
    try:
        import sentry_sdk  # noqa: F401 - only to report a missing competitor clearly
    except ImportError:
        print("sentry-sdk is not installed: pip install sentry-sdk", file=sys.stderr)
        keys = [k for k in keys if not k.startswith("sentry")]

    info = machine_info()
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="redaction-bench-") as tmp:
        snapshot = snapshot_servicelog(Path(tmp) / "code")
        env = child_env(snapshot)
        workdir = Path(tmp) / "out"
        workdir.mkdir()
        results = run_all(keys, n, args.warmup, reps, workdir, env)
    table, rows = pipeline_table(results)
    alone, alone_ns = processor_table(reps)
    hostile, hostile_ms = hostile_table(reps)

    print("# Redaction benchmark\n")
    print(f"Python {info['python']}, nproc {info['nproc']}, {info['platform']}")
    print("Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    print(f"N = {n:,} timed records after {args.warmup:,} warm-up, {reps} repetition(s).\n")
    print("## A log call with each processor (servicelog API, production profile, file sink)\n")
    print(table + "\n")
    print("## Each processor alone on the benchmark record\n")
    print(alone + "\n")
    print("## A hostile value in one record: the processor, then the JSON renderer\n")
    print(hostile + "\n")

    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"redaction-{started:%Y%m%dT%H%M%SZ}.json"
    payload = {
        "started": started.isoformat(),
        "machine": info,
        "config": {"n": n, "warmup": args.warmup, "reps": reps},
        "pipeline": rows,
        "processor_alone_ns": alone_ns,
        "hostile_ms": hostile_ms,
        "runs": results,
    }
    path.write_text(json.dumps(payload, indent=1, default=str))
    print(f"Results written to {path.relative_to(REPO)}")
    failed = any(not r["check"]["ok"] for runs in results.values() for r in runs if "check" in r)
    errored = any("error" in r for runs in results.values() for r in runs)
    return 1 if failed or errored else 0


if __name__ == "__main__":
    sys.exit(main())
