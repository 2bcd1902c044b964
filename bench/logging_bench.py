"""Structured-logging benchmark: servicelog against loguru, structlog, stdlib and fapilog.

Method (from the team's performance-baseline research note): every variant logs the same INFO
record, "request completed" + method/path/status/duration_ms + a request_id bound through the
library's own context mechanism, as one JSON line into a file. Each variant runs in a fresh
subprocess (this script re-invokes itself with ``--variant NAME --out FILE``):

1. bind the context; warm up with 10,000 records and drain;
2. (c) time 200,000 ``debug`` calls at level INFO (filtered out);
3. ``gc.collect()``; (a) time 200,000 ``info`` calls on the calling thread;
4. (b) flush and close, end-to-end time runs from the first timed call to the closed file.

The parent then reads every output file back: exact line count, every line valid JSON, the
right request_id, the message, the level and the 4 fields; (d) bytes/record = size / lines.
A second scenario runs 4 threads x 50,000 records after a barrier, each thread with its own
request_id, and counts lines per request_id. Each variant runs 5 times, interleaved, with the
order rotated in each repetition; every ratio is taken inside one repetition and the median of
the ratios is reported.

    python bench/logging_bench.py            # full run (about 10 minutes)
    python bench/logging_bench.py --quick    # smoke run: N=20,000, 1 repetition
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import gc
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import orjson
from _tables import DASH, TIMES, child_env, med, rotated, spread

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

MESSAGE = "request completed"
FIELDS: dict[str, Any] = {"method": "GET", "path": "/items/42", "status": 200, "duration_ms": 1.234}
N = 200_000
WARMUP = 10_000
REPS = 5
THREADS = 4
CHILD_TIMEOUT = 900.0

#: The request_id for the stdlib filters and the floors.
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


# --- the timed loops ----------------------------------------------------------------------------
# The call is written out in full in each loop, as an application would write it, so that no
# variant pays for a helper call the others do not.


def info_kwargs(log: Any, n: int) -> None:
    for _ in repeat(None, n):
        log.info("request completed", method="GET", path="/items/42", status=200, duration_ms=1.234)


def debug_kwargs(log: Any, n: int) -> None:
    for _ in repeat(None, n):
        log.debug(
            "request completed", method="GET", path="/items/42", status=200, duration_ms=1.234
        )


def info_extra(log: Any, n: int) -> None:
    for _ in repeat(None, n):
        log.info(
            "request completed",
            extra={"method": "GET", "path": "/items/42", "status": 200, "duration_ms": 1.234},
        )


def debug_extra(log: Any, n: int) -> None:
    for _ in repeat(None, n):
        log.debug(
            "request completed",
            extra={"method": "GET", "path": "/items/42", "status": 200, "duration_ms": 1.234},
        )


class FloorFile:
    """The floor's "logger": a buffered binary file, a level, and a lock for the threads."""

    def __init__(self, path: Path, level: int = 20) -> None:
        self.file = open(path, "wb")  # noqa: SIM115 - closed by the variant's close()
        self.level = level
        self.lock = threading.Lock()


def info_inline(floor: FloorFile, n: int) -> None:
    write, dumps, now, get = floor.file.write, orjson.dumps, datetime.now, REQUEST_ID.get
    for _ in repeat(None, n):
        d = {
            "timestamp": now(UTC),
            "level": "info",
            "message": "request completed",
            "request_id": get(),
            "method": "GET",
            "path": "/items/42",
            "status": 200,
            "duration_ms": 1.234,
        }
        write(dumps(d) + b"\n")


def debug_inline(floor: FloorFile, n: int) -> None:
    write, dumps, now, get, level = (
        floor.file.write,
        orjson.dumps,
        datetime.now,
        REQUEST_ID.get,
        floor.level,
    )
    for _ in repeat(None, n):
        if level <= 10:
            d = {
                "timestamp": now(UTC),
                "level": "debug",
                "message": "request completed",
                "request_id": get(),
                "method": "GET",
                "path": "/items/42",
                "status": 200,
                "duration_ms": 1.234,
            }
            write(dumps(d) + b"\n")


def info_inline_locked(floor: FloorFile, n: int) -> None:
    write, dumps, now, get, lock = (
        floor.file.write,
        orjson.dumps,
        datetime.now,
        REQUEST_ID.get,
        floor.lock,
    )
    for _ in repeat(None, n):
        d = {
            "timestamp": now(UTC),
            "level": "info",
            "message": "request completed",
            "request_id": get(),
            "method": "GET",
            "path": "/items/42",
            "status": 200,
            "duration_ms": 1.234,
        }
        line = dumps(d) + b"\n"
        with lock:
            write(line)


class FloorLogger:
    """The floor behind the smallest API a library can offer: ``log.info(event, **kw)``."""

    def __init__(self, path: Path, level: int = 20) -> None:
        self.file = open(path, "wb")  # noqa: SIM115 - closed by the variant's close()
        self._write = self.file.write
        self._level = level

    def info(self, event: str, **kw: Any) -> None:
        d = {
            "timestamp": datetime.now(UTC),
            "level": "info",
            "message": event,
            "request_id": REQUEST_ID.get(),
            **kw,
        }
        self._write(orjson.dumps(d) + b"\n")

    def debug(self, event: str, **kw: Any) -> None:
        if self._level > 10:
            return
        d = {
            "timestamp": datetime.now(UTC),
            "level": "debug",
            "message": event,
            "request_id": REQUEST_ID.get(),
            **kw,
        }
        self._write(orjson.dumps(d) + b"\n")


class EmptyLogger:
    """An empty method with the same arguments: the floor of a filtered-out call."""

    def info(self, event: str, **kw: Any) -> None:
        pass

    def debug(self, event: str, **kw: Any) -> None:
        pass


@contextlib.contextmanager
def contextvar_bound(rid: str) -> Iterator[None]:
    token = REQUEST_ID.set(rid)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


# --- reading a record back ----------------------------------------------------------------------
# Each shape returns (timestamp, message, level, request_id, the mapping holding the 4 fields);
# a KeyError means the record lacks one of them.
Extracted = tuple[Any, Any, Any, Any, Any]


def shape_flat(obj: dict[str, Any]) -> Extracted:
    return obj["timestamp"], obj["message"], obj["level"], obj.get("request_id"), obj


def shape_loguru(obj: dict[str, Any]) -> Extracted:
    rec = obj["record"]
    extra = rec["extra"]
    return rec["time"], rec["message"], rec["level"]["name"], extra.get("request_id"), extra


def shape_structlog(obj: dict[str, Any]) -> Extracted:
    return obj["timestamp"], obj["event"], obj["level"], obj.get("request_id"), obj


def shape_pjl(obj: dict[str, Any]) -> Extracted:
    return obj["timestamp"], obj["message"], obj["levelname"], obj.get("request_id"), obj


def shape_fapilog(obj: dict[str, Any]) -> Extracted:
    log = obj["log"]
    context = log["context"]
    return log["timestamp"], log["message"], log["level"], context.get("request_id"), log["data"]


def shape_servicelog(obj: dict[str, Any]) -> Extracted:
    return obj["@timestamp"], obj["message"], obj["log.level"], obj.get("request_id"), obj


# --- the variants -------------------------------------------------------------------------------
LoopFn = Callable[[Any, int], None]


class Variant:
    """One configuration under test. Subclasses import their library inside ``setup``."""

    key = ""
    label = ""
    info: LoopFn = staticmethod(info_kwargs)
    debug: LoopFn = staticmethod(debug_kwargs)
    shape: Callable[[dict[str, Any]], Extracted] | None = None
    threaded = False  # also runs in the 4-thread scenario

    def setup(self, out: Path) -> Any:
        raise NotImplementedError

    def context(
        self, rid: str, *, in_thread: bool = False
    ) -> contextlib.AbstractContextManager[Any]:
        """Bind request_id (for the rest of the run, or of the thread)."""
        return contextvar_bound(rid)

    def thread_info(self) -> LoopFn:
        return self.info

    def drain(self, written: int) -> None:
        """Wait until the *written* warm-up records are out of any queue."""

    def close(self) -> None:
        """Flush and close: the end of the end-to-end time."""

    def files(self, out: Path) -> list[str]:
        return [str(out)]

    def diagnostics(self) -> dict[str, Any]:
        """Anything worth keeping in the results (servicelog's counters)."""
        return {}


class Floor(Variant):
    key, label, threaded = "floor", "floor: dict + orjson + buffered write", True
    info = staticmethod(info_inline)
    debug = staticmethod(debug_inline)
    shape = staticmethod(shape_flat)

    def setup(self, out: Path) -> FloorFile:
        self.floor = FloorFile(out)
        return self.floor

    def thread_info(self) -> LoopFn:
        return info_inline_locked

    def close(self) -> None:
        self.floor.file.close()


class FloorApi(Variant):
    key, label = "floor-api", "floor behind log.info(**kw)"
    shape = staticmethod(shape_flat)

    def setup(self, out: Path) -> FloorLogger:
        self.log = FloorLogger(out)
        return self.log

    def close(self) -> None:
        self.log.file.close()


class EmptyCall(Variant):
    key, label = "empty-call", "empty call (floor for filtered)"

    def setup(self, out: Path) -> EmptyLogger:
        return EmptyLogger()

    def files(self, out: Path) -> list[str]:
        return []


class Loguru(Variant):
    key, label, threaded = "loguru", "loguru serialize=True (sync)", True
    shape = staticmethod(shape_loguru)
    enqueue = False

    def setup(self, out: Path) -> Any:
        from loguru import logger

        logger.remove()
        logger.add(out, serialize=True, enqueue=self.enqueue, level="INFO")
        self.logger = logger
        return logger

    def context(
        self, rid: str, *, in_thread: bool = False
    ) -> contextlib.AbstractContextManager[Any]:
        return self.logger.contextualize(request_id=rid)

    def drain(self, written: int) -> None:
        self.logger.complete()

    def close(self) -> None:
        self.logger.remove()


class LoguruEnqueue(Loguru):
    key, label, threaded = "loguru-enqueue", "loguru serialize=True enqueue=True", True
    enqueue = True


class StructlogNative(Variant):
    key, label, threaded = "structlog", "structlog native (orjson, BytesLogger)", True
    shape = staticmethod(shape_structlog)

    def setup(self, out: Path) -> Any:
        import logging

        import structlog

        self.file = open(out, "wb")  # noqa: SIM115 - closed in close()
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(serializer=orjson.dumps),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            logger_factory=structlog.BytesLoggerFactory(self.file),
            cache_logger_on_first_use=True,
        )
        return structlog.get_logger().bind()

    def context(
        self, rid: str, *, in_thread: bool = False
    ) -> contextlib.AbstractContextManager[Any]:
        import structlog

        return structlog.contextvars.bound_contextvars(request_id=rid)

    def close(self) -> None:
        self.file.close()


class StructlogStdlib(Variant):
    key, label = "structlog-stdlib", "structlog → stdlib ProcessorFormatter"
    shape = staticmethod(shape_structlog)

    def setup(self, out: Path) -> Any:
        import logging

        import structlog

        timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
        shared = [
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            timestamper,
        ]
        structlog.configure(
            processors=[
                structlog.stdlib.filter_by_level,
                *shared,
                structlog.stdlib.PositionalArgumentsFormatter(),
                structlog.processors.StackInfoRenderer(),
                structlog.processors.format_exc_info,
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            wrapper_class=structlog.stdlib.BoundLogger,
            logger_factory=structlog.stdlib.LoggerFactory(),
            cache_logger_on_first_use=True,
        )
        self.handler = logging.FileHandler(out)
        self.handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=shared,
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.JSONRenderer(),
                ],
            )
        )
        root = logging.getLogger()
        root.addHandler(self.handler)
        root.setLevel(logging.INFO)
        return structlog.get_logger("bench")

    def context(
        self, rid: str, *, in_thread: bool = False
    ) -> contextlib.AbstractContextManager[Any]:
        import structlog

        return structlog.contextvars.bound_contextvars(request_id=rid)

    def close(self) -> None:
        self.handler.close()


class StdlibPjl(Variant):
    key, label, threaded = "stdlib-pjl", "stdlib + python-json-logger", True
    info = staticmethod(info_extra)
    debug = staticmethod(debug_extra)
    shape = staticmethod(shape_pjl)

    def setup(self, out: Path) -> Any:
        import logging

        from pythonjsonlogger.json import JsonFormatter

        class RequestIdFilter(logging.Filter):
            def filter(self, record: logging.LogRecord) -> bool:
                record.request_id = REQUEST_ID.get()
                return True

        self.handler = logging.FileHandler(out)
        self.handler.setFormatter(JsonFormatter("%(levelname)s %(message)s", timestamp=True))
        self.handler.addFilter(RequestIdFilter())
        log = logging.getLogger("bench")
        log.addHandler(self.handler)
        log.setLevel(logging.INFO)
        log.propagate = False
        return log

    def close(self) -> None:
        self.handler.close()


class Fapilog(Variant):
    key, label = "fapilog", "fapilog add_file (drop_on_full=False, wait_ms=5000)"
    shape = staticmethod(shape_fapilog)

    def setup(self, out: Path) -> Any:
        from fapilog import LoggerBuilder

        # The README's builder with a file sink. Its default backpressure policy drops records
        # when the 10,000-entry queue is full (about half of them here). drop_on_full=False is
        # the durability setting the README's "Production Tip" recommends, but it still drops a
        # record once the caller has waited wait_ms (50 by default; a few dozen records per
        # run here), hence the longer wait.
        self.out = out
        self.log = (
            LoggerBuilder()
            .with_level("INFO")
            .add_file(str(out.with_suffix(".d")))
            .with_backpressure(wait_ms=5000, drop_on_full=False)
            .build()
        )
        return self.log

    @contextlib.contextmanager
    def _bound(self, rid: str) -> Iterator[None]:
        self.log.bind(request_id=rid)
        try:
            yield
        finally:
            self.log.clear_context()

    def context(
        self, rid: str, *, in_thread: bool = False
    ) -> contextlib.AbstractContextManager[Any]:
        return self._bound(rid)

    def drain(self, written: int) -> None:
        # No public synchronous flush: wait until the warm-up lines are on disk.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            lines = sum(Path(f).read_bytes().count(b"\n") for f in self.files(self.out))
            if lines >= written:
                return
            time.sleep(0.01)

    def close(self) -> None:
        self.result = asyncio.run(self.log.stop_and_drain())

    def files(self, out: Path) -> list[str]:
        return sorted(str(p) for p in out.with_suffix(".d").glob("*") if p.is_file())

    def diagnostics(self) -> dict[str, Any]:
        r = self.result
        return {"submitted": r.submitted, "processed": r.processed, "dropped": r.dropped}


class Servicelog(Variant):
    key, label, threaded = "servicelog", "servicelog API", True
    shape = staticmethod(shape_servicelog)
    capture: ClassVar[dict[str, bool]] = {}  # the front-end each subclass turns on
    redaction: ClassVar[bool | None] = None  # None: the production profile's default (on)

    def configure(self, out: Path) -> None:
        import servicelog

        off = ("stdlib", "warnings", "excepthooks", "structlog", "loguru")
        options = dict.fromkeys(off, False) | self.capture
        servicelog.configure(
            service="bench",
            profile="production",
            stream="none",
            file=out,
            capture=servicelog.CaptureOptions(**options),
            redaction=self.redaction,
        )

    def setup(self, out: Path) -> Any:
        import servicelog

        self.configure(out)
        return servicelog.get_logger("bench")

    def context(
        self, rid: str, *, in_thread: bool = False
    ) -> contextlib.AbstractContextManager[Any]:
        import servicelog

        if in_thread:
            return servicelog.bound_context(request_id=rid)
        servicelog.bind(request_id=rid)
        return contextlib.nullcontext()

    def drain(self, written: int) -> None:
        import servicelog

        servicelog.flush()

    def close(self) -> None:
        import servicelog

        servicelog.flush()
        self.stats = servicelog.stats()
        servicelog.reset()

    def diagnostics(self) -> dict[str, Any]:
        return {"stats_before_reset": self.stats}


class ServicelogNoRedaction(Servicelog):
    """What the default redaction policy costs (issue 5's target: at most +25 % caller-side)."""

    key, label, threaded = "servicelog-noredact", "servicelog API, redaction=False", False
    redaction: ClassVar[bool | None] = False


class ServicelogStdlib(Servicelog):
    key, label, threaded = "servicelog-stdlib", "servicelog ← stdlib logging", True
    info = staticmethod(info_extra)
    debug = staticmethod(debug_extra)
    capture: ClassVar[dict[str, bool]] = {"stdlib": True}

    def setup(self, out: Path) -> Any:
        import logging

        self.configure(out)
        return logging.getLogger("bench")


class ServicelogStructlog(Servicelog):
    key, label, threaded = "servicelog-structlog", "servicelog ← structlog", False
    capture: ClassVar[dict[str, bool]] = {"structlog": True}

    def setup(self, out: Path) -> Any:
        import structlog

        self.configure(out)
        return structlog.get_logger("bench")


class ServicelogLoguru(Servicelog):
    key, label, threaded = "servicelog-loguru", "servicelog ← loguru", False
    capture: ClassVar[dict[str, bool]] = {"loguru": True}

    def setup(self, out: Path) -> Any:
        from loguru import logger

        self.configure(out)
        return logger


VARIANTS: dict[str, Variant] = {
    v.key: v
    for v in (
        Floor(),
        FloorApi(),
        EmptyCall(),
        Loguru(),
        LoguruEnqueue(),
        StructlogNative(),
        StructlogStdlib(),
        StdlibPjl(),
        Fapilog(),
        Servicelog(),
        ServicelogNoRedaction(),
        ServicelogStdlib(),
        ServicelogStructlog(),
        ServicelogLoguru(),
    )
}


# --- the child: one variant, one run ------------------------------------------------------------
def run_child(key: str, out: Path, n: int, warmup: int, threads: int) -> dict[str, Any]:
    variant = VARIANTS[key]
    log = variant.setup(out)
    main_rid = str(uuid.uuid4())
    result: dict[str, Any] = {"n": n, "warmup": warmup, "threads": threads}
    with variant.context(main_rid):
        variant.info(log, warmup)
        variant.drain(warmup)
        if threads:
            result.update(timed_threads(variant, log, n, threads))
            result["expected"] = {main_rid: warmup, **result.pop("expected")}
        else:
            t0 = time.perf_counter_ns()
            variant.debug(log, n)
            result["filtered_ns"] = (time.perf_counter_ns() - t0) / n
            gc.collect()
            t0 = time.perf_counter_ns()
            variant.info(log, n)
            t1 = time.perf_counter_ns()
            variant.close()
            t2 = time.perf_counter_ns()
            result["caller_ns"] = (t1 - t0) / n
            result["e2e_s"] = (t2 - t0) / 1e9
            result["expected"] = {main_rid: warmup + n}
    result["files"] = variant.files(out)
    result["diagnostics"] = variant.diagnostics()
    module = sys.modules.get("servicelog")
    result["servicelog_imported_from"] = getattr(module, "__file__", None)
    return result


def timed_threads(variant: Variant, log: Any, n: int, threads: int) -> dict[str, Any]:
    per_thread = n // threads
    rids = [str(uuid.uuid4()) for _ in range(threads)]
    start: list[int] = []
    barrier = threading.Barrier(threads, action=lambda: start.append(time.perf_counter_ns()))
    info = variant.thread_info()
    errors: list[str] = []

    def worker(rid: str) -> None:
        try:
            with variant.context(rid, in_thread=True):
                barrier.wait()
                info(log, per_thread)
        except Exception as exc:  # reported, and the check will fail on the counts
            errors.append(repr(exc))

    workers = [threading.Thread(target=worker, args=(rid,)) for rid in rids]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    variant.close()
    end = time.perf_counter_ns()
    return {
        "e2e_s": (end - start[0]) / 1e9,
        "expected": dict.fromkeys(rids, per_thread),
        "thread_errors": errors,
    }


# --- the parent: checking the output ------------------------------------------------------------
def check_output(variant: Variant, files: list[str], expected: dict[str, int]) -> dict[str, Any]:
    """Read the files back; count lines per request_id and every kind of bad line."""
    data = b"".join(Path(f).read_bytes() for f in files)
    lines = data.split(b"\n")
    torn_tail = lines[-1] != b""
    if not torn_tail:
        lines.pop()
    counts: Counter[str] = Counter()
    invalid = missing_keys = bad_fields = 0
    assert variant.shape is not None
    for line in lines:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            invalid += 1
            continue
        try:
            timestamp, message, level, rid, fields = variant.shape(obj)
        except (KeyError, TypeError, AttributeError):
            missing_keys += 1
            continue
        counts[str(rid)] += 1
        if (
            not timestamp
            or message != MESSAGE
            or str(level).lower() != "info"
            or any(fields.get(k) != v for k, v in FIELDS.items())
        ):
            bad_fields += 1
    total = sum(expected.values())
    wrong_rid = sum(c for rid, c in counts.items() if rid not in expected)
    lost = sum(max(0, want - counts.get(rid, 0)) for rid, want in expected.items())
    extra = sum(max(0, counts.get(rid, 0) - want) for rid, want in expected.items())
    problems = []
    if len(lines) != total:
        problems.append(f"{len(lines):,} lines, expected {total:,}")
    for name, value in (
        ("invalid JSON", invalid),
        ("without timestamp/message/level", missing_keys),
        ("wrong/missing request_id", wrong_rid),
        ("missing per request_id", lost),
        ("extra per request_id", extra),
        ("wrong timestamp/message/level/fields", bad_fields),
    ):
        if value:
            problems.append(f"{value:,} {name}")
    if torn_tail:
        problems.append("last line not terminated")
    return {
        "ok": not problems,
        "problems": problems,
        "lines": len(lines),
        "bytes_per_record": len(data) / len(lines) if lines else 0.0,
    }


def git(*args: str) -> str:
    proc = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""


class Harness(NamedTuple):
    """What every child run shares: the script to run, its environment, the output folder."""

    script: Path
    env: dict[str, str]
    workdir: Path


def snapshot_code(into: Path) -> tuple[Harness, dict[str, Any]]:
    """Copy this script and src/servicelog once, so that every run measures the same code even
    while the working tree is being edited. The children run the copied script and import the
    copied package (it comes first on PYTHONPATH)."""
    info: dict[str, Any] = {
        "commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "uncommitted_changes_in_src": bool(git("status", "--porcelain", "--", "src")),
    }
    into.mkdir(parents=True)
    script = into / Path(__file__).name
    shutil.copy2(__file__, script)
    shutil.copy2(Path(__file__).with_name("_tables.py"), into)  # the copy imports it
    src = REPO / "src" / "servicelog"
    if src.is_dir():
        shutil.copytree(src, into / "servicelog", ignore=shutil.ignore_patterns("__pycache__"))
        info["snapshot"] = str(into)
    workdir = into.parent / "out"
    workdir.mkdir()
    return Harness(script, child_env(info.get("snapshot")), workdir), info


def run_job(key: str, threads: int, n: int, warmup: int, harness: Harness) -> dict[str, Any]:
    variant = VARIANTS[key]
    out = harness.workdir / f"{key}-{threads}t-{uuid.uuid4().hex[:8]}.jsonl"
    cmd = [sys.executable, str(harness.script), "--variant", key, "--out", str(out)]
    cmd += ["--n", str(n), "--warmup", str(warmup), "--threads", str(threads)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT, env=harness.env
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {CHILD_TIMEOUT:.0f} s"}
    result_lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not result_lines:
        tail = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        return {"error": f"exit {proc.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(result_lines[-1][len("RESULT ") :])
    result["stderr"] = proc.stderr.strip()[:2000]
    if variant.shape is not None:
        result["check"] = check_output(variant, result["files"], result["expected"])
    for f in result["files"]:
        Path(f).unlink(missing_ok=True)
    return result


# --- the parent: orchestration and tables ------------------------------------------------------
SINGLE = list(VARIANTS)
THREADED = [k for k, v in VARIANTS.items() if v.threaded]
Job = tuple[str, int]


def run_all(
    n: int, warmup: int, reps: int, only: set[str] | None, harness: Harness
) -> dict[Job, list[dict[str, Any]]]:
    jobs: list[Job] = [(k, 0) for k in SINGLE] + [(k, THREADS) for k in THREADED]
    if only:
        jobs = [j for j in jobs if j[0] in only]
    results: dict[Job, list[dict[str, Any]]] = {job: [] for job in jobs}
    for rep in range(reps):
        for key, threads in rotated(jobs, rep, reps):
            res = run_job(key, threads, n, warmup, harness)
            results[key, threads].append(res | {"rep": rep})
            progress(rep, reps, key, threads, res)
            for leftover in harness.workdir.iterdir():  # fapilog's directory
                shutil.rmtree(leftover, ignore_errors=True)
    for runs in results.values():
        runs.sort(key=lambda r: r["rep"])
    return results


def progress(rep: int, reps: int, key: str, threads: int, res: dict[str, Any]) -> None:
    name = f"{key} {TIMES}{threads} threads" if threads else key
    if "error" in res:
        status = f"ERROR {res['error']}"
    else:
        check = res.get("check")
        ok = (
            "—"
            if check is None
            else ("ok" if check["ok"] else "FAIL " + "; ".join(check["problems"]))
        )
        rate = res["n"] / res["e2e_s"] if "e2e_s" in res else 0.0
        caller = f"{res['caller_ns']:,.0f} ns/call, " if "caller_ns" in res else ""
        status = f"{caller}{rate:,.0f} rec/s, {ok}"
    print(f"[rep {rep + 1}/{reps}] {name:<28} {status}", file=sys.stderr, flush=True)


def per_rep_ratio(
    runs: list[dict[str, Any]], refs: list[dict[str, Any]], value: Callable[[dict[str, Any]], float]
) -> list[float]:
    """value(run) ÷ value(reference run of the same repetition), for every repetition."""
    by_rep = {r["rep"]: r for r in refs if "error" not in r}
    out = []
    for run in runs:
        ref = by_rep.get(run["rep"])
        if "error" not in run and ref is not None:
            out.append(value(run) / value(ref))
    return out


def check_cell(runs: list[dict[str, Any]]) -> str:
    checked = [r for r in runs if "check" in r]
    if not checked:
        return "— (no output)"
    bad = [r for r in checked if not r["check"]["ok"]]
    if not bad:
        return f"ok {len(checked)}/{len(checked)} ({checked[0]['check']['lines']:,} lines)"
    return f"**FAIL** {len(bad)}/{len(checked)}: " + "; ".join(bad[0]["check"]["problems"])


def single_table(results: dict[Job, list[dict[str, Any]]]) -> tuple[str, list[dict[str, Any]]]:
    floor = results.get(("floor", 0), [])
    rows: list[dict[str, Any]] = []
    lines = [
        f"| variant | caller ns/call (median, min{DASH}max) | {TIMES} floor (caller) "
        f"| end-to-end rec/s | {TIMES} floor (e2e time) | filtered ns/call | bytes/rec | check |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key in SINGLE:
        runs = results.get((key, 0))
        if runs is None:
            continue
        variant = VARIANTS[key]
        good = [r for r in runs if "error" not in r]
        if not good:
            reason = runs[0]["error"] if runs else "not run"
            lines.append(f"| {variant.label} | n/a ({reason}) | | | | | | n/a |")
            rows.append({"variant": key, "error": reason})
            continue
        caller = [r["caller_ns"] for r in good]
        has_output = bool(good[0]["files"])
        rate = [r["n"] / r["e2e_s"] for r in good] if has_output else []
        x_caller = per_rep_ratio(good, floor, lambda r: r["caller_ns"])
        x_e2e = per_rep_ratio(good, floor, lambda r: r["e2e_s"]) if has_output else []
        filtered = [r["filtered_ns"] for r in good]
        size = [r["check"]["bytes_per_record"] for r in good if "check" in r]
        row = {
            "variant": key,
            "label": variant.label,
            "caller_ns": caller,
            "e2e_records_per_s": rate,
            "x_floor_caller": x_caller,
            "x_floor_e2e_time": x_e2e,
            "filtered_ns": filtered,
            "bytes_per_record": med(size) if size else None,
            "check": check_cell(runs),
            "errors": [r["error"] for r in runs if "error" in r],
        }
        rows.append(row)
        lines.append(
            f"| {variant.label} | {spread(caller)} | {fmt_ratio(x_caller)} | "
            f"{spread(rate) if rate else '—'} | {fmt_ratio(x_e2e) if x_e2e else '—'} | "
            f"{spread(filtered)} | {f'{med(size):,.0f}' if size else '—'} | {row['check']} |"
        )
    return "\n".join(lines), rows


def threads_table(results: dict[Job, list[dict[str, Any]]]) -> tuple[str, list[dict[str, Any]]]:
    ref = results.get(("structlog", THREADS), [])
    rows: list[dict[str, Any]] = []
    lines = [
        f"| variant ({THREADS} threads) | total rec/s (median, min{DASH}max) | vs structlog | check |",
        "|---|---:|---:|---|",
    ]
    for key in THREADED:
        runs = results.get((key, THREADS))
        if runs is None:
            continue
        label = VARIANTS[key].label + (" + threading.Lock" if key == "floor" else "")
        good = [r for r in runs if "error" not in r]
        if not good:
            reason = runs[0]["error"] if runs else "not run"
            lines.append(f"| {label} | n/a ({reason}) | | n/a |")
            rows.append({"variant": key, "error": reason})
            continue
        rate = [r["n"] // THREADS * THREADS / r["e2e_s"] for r in good]
        vs = per_rep_ratio(good, ref, lambda r: r["e2e_s"])
        vs = [1 / v for v in vs]  # rate ratio = inverse time ratio
        problems = [e for r in good for e in r.get("thread_errors", [])]
        check = check_cell(runs) + (f"; thread errors: {problems[0]}" if problems else "")
        rows.append(
            {
                "variant": key,
                "label": label,
                "records_per_s": rate,
                "vs_structlog": vs,
                "check": check,
            }
        )
        lines.append(f"| {label} | {spread(rate)} | {fmt_ratio(vs)} | {check} |")
    return "\n".join(lines), rows


def fmt_ratio(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{med(values):.2f}"


# --- import cost and machine info ---------------------------------------------------------------
def parse_importtime(stderr: str) -> tuple[int | None, dict[str, int]]:
    """servicelog's cumulative µs, and the cumulative µs of what it imports from outside."""
    nodes: dict[int, list[tuple[str, int, list[Any]]]] = {}
    root = None
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name_col = line.split("|")
        if not cumulative.strip().isdigit():
            continue  # the header line
        name = name_col.strip()
        level = (len(name_col) - len(name_col.lstrip()) - 1) // 2
        node = (name, int(cumulative), nodes.pop(level + 1, []))
        nodes.setdefault(level, []).append(node)
        if name == "servicelog" and level == 0:
            root = node
    if root is None:
        return None, {}
    outside: Counter[str] = Counter()

    def walk(node: tuple[str, int, list[Any]]) -> None:
        for child in node[2]:
            if child[0].startswith("servicelog"):
                walk(child)
            else:
                outside[child[0]] += child[1]

    walk(root)
    return root[1], dict(outside.most_common(6))


def import_cost(env: dict[str, str]) -> dict[str, Any]:
    cumulative: list[int] = []
    heaviest: dict[str, int] = {}
    for _ in range(5):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import servicelog"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        total, heaviest = parse_importtime(proc.stderr)
        if total is not None:
            cumulative.append(total)
    walls: dict[str, list[float]] = {"pass": [], "import servicelog": []}
    for _ in range(10):
        for code, bucket in walls.items():
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, check=True)
            bucket.append(time.perf_counter() - t0)
    return {
        "importtime_cumulative_us": cumulative,
        "heaviest_outside_imports_us": heaviest,
        "wall_pass_s": walls["pass"],
        "wall_import_s": walls["import servicelog"],
    }


def import_line(cost: dict[str, Any]) -> str:
    us = med(cost["importtime_cumulative_us"])
    heavy = ", ".join(f"{name} {v:,}" for name, v in cost["heaviest_outside_imports_us"].items())
    wall_pass = med(cost["wall_pass_s"]) * 1e3
    wall_import = med(cost["wall_import_s"]) * 1e3
    return (
        f"`import servicelog`: {us:,.0f} µs cumulative (`-X importtime`, median of 5; "
        f"largest outside imports, µs: {heavy}). Wall time, median of 10: "
        f'`python -c pass` {wall_pass:.1f} ms, `python -c "import servicelog"` '
        f"{wall_import:.1f} ms (+{wall_import - wall_pass:.1f} ms)."
    )


def machine_info() -> dict[str, Any]:
    versions = {}
    for dist in ("servicelog", "loguru", "structlog", "orjson", "python-json-logger", "fapilog"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "build": " ".join(platform.python_build()),
        "platform": platform.platform(),
        "nproc": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "versions": versions,
    }


def stderr_notes(results: dict[Job, list[dict[str, Any]]]) -> list[str]:
    notes = []
    for (key, threads), runs in results.items():
        for run in runs:
            if run.get("stderr"):
                first = run["stderr"].splitlines()[0][:200]
                notes.append(
                    f"- {key}{f' {TIMES}{threads}' if threads else ''} wrote to stderr: {first}"
                )
                break
        diag = next((r["diagnostics"] for r in runs if r.get("diagnostics")), None)
        stats = (diag or {}).get("stats_before_reset")
        if stats and (stats.get("lost") or stats.get("errors")):
            notes.append(
                f"- {key}{f' {TIMES}{threads}' if threads else ''}: servicelog.stats() {stats}"
            )
    return notes


# --- entry point --------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=20,000, 1 repetition")
    parser.add_argument("--n", type=int, default=None, help=f"timed records (default {N:,})")
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--reps", type=int, default=None, help=f"repetitions (default {REPS})")
    parser.add_argument("--only", default="", help="comma-separated variant keys")
    parser.add_argument("--no-import", action="store_true", help="skip the import-cost line")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    n = args.n or (20_000 if args.quick else N)
    reps = args.reps or (1 if args.quick else REPS)

    if args.variant:
        result = run_child(args.variant, args.out, n, args.warmup, args.threads)
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    only = {k.strip() for k in args.only.split(",") if k.strip()} or None
    unknown = (only or set()) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    with tempfile.TemporaryDirectory(prefix="logging-bench-") as tmp:
        return run_benchmark(n, args.warmup, reps, only, not args.no_import, Path(tmp))


def run_benchmark(
    n: int, warmup: int, reps: int, only: set[str] | None, imports: bool, tmp: Path
) -> int:
    info = machine_info()
    harness, code = snapshot_code(tmp / "code")
    started = datetime.now(UTC)
    print("# Logging benchmark\n")
    print(
        f"Python {info['python']} ({info['implementation']}, {info['build']}), "
        f"nproc {info['nproc']}, {info['platform']}"
    )
    print("Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    dirty = " + uncommitted changes" if code["uncommitted_changes_in_src"] else ""
    print(f"servicelog: commit {code['commit']}{dirty} (src/ and this script copied at start)")
    print(f"N = {n:,} timed records after {warmup:,} warm-up, {reps} repetition(s).\n")
    cost = import_cost(harness.env) if imports else None
    if cost is not None:
        print(import_line(cost) + "\n", flush=True)

    results = run_all(n, warmup, reps, only, harness)
    single, single_rows = single_table(results)
    threads, thread_rows = threads_table(results)
    print(f"## One thread, N = {n:,}\n")
    print(single + "\n")
    if thread_rows:
        print(f"## {THREADS} threads {TIMES} {n // THREADS:,} records\n")
        print(threads + "\n")
    notes = stderr_notes(results)
    if notes:
        print("Notes:\n" + "\n".join(notes) + "\n")

    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"logging-{started:%Y%m%dT%H%M%SZ}.json"
    payload = {
        "started": started.isoformat(),
        "seconds": (datetime.now(UTC) - started).total_seconds(),
        "machine": info,
        "servicelog_code": code,
        "config": {"n": n, "warmup": warmup, "reps": reps, "threads": THREADS},
        "import_cost": cost,
        "single_thread": single_rows,
        "threads": thread_rows,
        "runs": {f"{k}@{t}": runs for (k, t), runs in results.items()},
    }
    path.write_text(json.dumps(payload, indent=1, default=str))
    print(f"Results written to {path.relative_to(REPO)}")
    failed = any(not r["check"]["ok"] for runs in results.values() for r in runs if "check" in r)
    errored = any("error" in r for runs in results.values() for r in runs)
    return 1 if failed or errored else 0


if __name__ == "__main__":
    sys.exit(main())
