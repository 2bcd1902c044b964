"""Many processes, one rotating log file: servicelog against the stdlib, loguru and
concurrent-log-handler.

Method (the research note's L1/M2-M6 harness, as users run these libraries): 4 processes,
started at once like ``uvicorn --workers 4``, each with 4 threads logging as fast as they can
for 10 seconds into the same file, rotated at 1 MiB with every rotated file kept. Each record
carries its process, thread and a per-thread counter. Afterwards the parent reads every file
back and counts:

* records/s: unique records found in the files / the slowest process's time from the common
  start to its closed file (draining included);
* lost: records a thread logged that no file holds; duplicated: records found twice;
  unparseable: lines that are not a JSON object.

Variants (each process configures its own logging, as a worker process does):

* servicelog: ``RotatingFileSink("app.jsonl", rotation="1 MiB")`` behind ``configure()`` and
  ``get_logger().info(...)``, which builds and renders its full ECS record on every call;
* stdlib ``logging.handlers.RotatingFileHandler(maxBytes=1 MiB, backupCount=2000)``;
* loguru, one sink per process, ``rotation="1 MB"``, ``enqueue=False``;
* concurrent-log-handler ``ConcurrentRotatingFileHandler(maxBytes=1 MiB, backupCount=2000)``.

The three competitors log a pre-rendered JSON line with ``format="{message}"``/
``"%(message)s"``: less work per call than servicelog's, so the comparison favours them.

    python bench/files_bench.py                  # 10 s per variant
    python bench/files_bench.py --seconds 30     # longer
    python bench/files_bench.py --quick          # 3 s per variant (smoke run)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from _tables import TIMES

PROCS = 4
THREADS = 4
ROTATE = 1024 * 1024
# Enough to keep every rotated file of these runs (so retention explains no loss), and no
# more: the stdlib and CLH look at every backup name on each rollover.
BACKUPS = 2000
PAD = "x" * 80
VARIANTS = ("servicelog", "stdlib", "loguru", "clh")
LABELS = {
    "servicelog": "servicelog RotatingFileSink",
    "stdlib": "stdlib RotatingFileHandler",
    "loguru": "loguru (sink per process, enqueue=False)",
    "clh": "concurrent-log-handler",
}


# --- the child: one worker process ---------------------------------------------------------------
def _setup(variant: str, directory: Path) -> tuple[Any, Any]:
    """Configure logging in this process; returns (log(p, t, j), close())."""
    if variant == "servicelog":
        import servicelog
        from servicelog.render.json import JsonRenderer
        from servicelog.sinks import RotatingFileSink

        sink = RotatingFileSink(directory / "app.jsonl", JsonRenderer(), rotation=ROTATE)
        servicelog.configure(
            stream="none",
            sinks=[sink],
            profile="production",
            service="bench",
            capture=servicelog.CaptureOptions(
                stdlib=False, warnings=False, excepthooks=False, structlog=False, loguru=False
            ),
        )
        info = servicelog.get_logger("bench").info

        def log(p: int, t: int, j: int) -> None:
            info("r", p=p, t=t, j=j, pad=PAD)

        def close() -> dict[str, Any]:
            servicelog.reset()  # drains and closes the sink
            return sink.counters()

        return log, close
    if variant == "loguru":
        from loguru import logger

        logger.remove()
        logger.add(str(directory / "app.log"), rotation="1 MB", enqueue=False, format="{message}")

        def log(p: int, t: int, j: int) -> None:
            logger.info(_line(p, t, j))

        def close() -> dict[str, Any]:
            logger.remove()
            return {}

        return log, close
    import logging

    if variant == "stdlib":
        from logging.handlers import RotatingFileHandler

        handler: logging.Handler = RotatingFileHandler(
            directory / "app.log", maxBytes=ROTATE, backupCount=BACKUPS
        )
    else:
        from concurrent_log_handler import ConcurrentRotatingFileHandler

        handler = ConcurrentRotatingFileHandler(
            str(directory / "app.log"), maxBytes=ROTATE, backupCount=BACKUPS
        )
    handler.setFormatter(logging.Formatter("%(message)s"))
    std = logging.getLogger("bench")
    std.handlers[:] = [handler]
    std.setLevel(logging.INFO)
    std.propagate = False

    def log(p: int, t: int, j: int) -> None:
        std.info(_line(p, t, j))

    def close() -> dict[str, Any]:
        handler.close()
        return {}

    return log, close


def _line(p: int, t: int, j: int) -> str:
    return orjson.dumps(
        {"@timestamp": time.time(), "log.level": "info", "message": "r", "p": p, "t": t, "j": j,
         "pad": PAD}
    ).decode()  # fmt: skip


def child(variant: str, directory: Path, proc: int, start_at: float, seconds: float) -> None:
    log, close = _setup(variant, directory)
    produced = [0] * THREADS
    while time.time() < start_at:
        time.sleep(0.001)
    stop = time.monotonic() + seconds

    def work(t: int) -> None:
        j = 0
        monotonic = time.monotonic
        while monotonic() < stop:
            log(proc, t, j)
            j += 1
        produced[t] = j

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = close()
    elapsed = time.time() - start_at
    print(orjson.dumps({"produced": produced, "elapsed": elapsed, "stats": stats}).decode())


# --- the parent ------------------------------------------------------------------------------------
def run_variant(variant: str, seconds: float, workdir: Path) -> dict[str, Any]:
    directory = workdir / variant
    directory.mkdir()
    start_at = time.time() + 2.0  # let every process import and configure first
    procs = []
    for p in range(PROCS):
        command = [sys.executable, __file__, "--child", variant, "--dir", str(directory)]
        command += ["--proc", str(p), "--start-at", str(start_at), "--seconds", str(seconds)]
        procs.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    results, errors = [], []
    for proc in procs:
        out, err = proc.communicate(timeout=seconds * 20 + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"{variant} worker failed:\n{err.decode()}")
        results.append(orjson.loads(out.splitlines()[-1]))
        if err.strip():
            errors.append(err.decode(errors="replace"))
    counts: Counter[tuple[int, int, int]] = Counter()
    unparseable = files = size = 0
    for path in directory.iterdir():
        if path.name.startswith(".") or path.name.endswith(".lock"):
            continue
        files += 1
        data = path.read_bytes()
        size += len(data)
        for line in data.splitlines():
            try:
                record = orjson.loads(line)
                counts[(record["p"], record["t"], record["j"])] += 1
            except (orjson.JSONDecodeError, KeyError, TypeError):
                unparseable += 1
    produced = {
        (p, t, j) for p, r in enumerate(results) for t, n in enumerate(r["produced"])
        for j in range(n)
    }  # fmt: skip
    found = set(counts)
    elapsed = max(r["elapsed"] for r in results)
    return {
        "variant": variant,
        "produced": len(produced),
        "unique": len(found & produced),
        "lost": len(produced - found),
        "duplicated": sum(n - 1 for n in counts.values() if n > 1),
        "unparseable": unparseable,
        "files": files,
        "bytes_per_record": size / max(1, sum(counts.values())),
        "elapsed": elapsed,
        "rate": len(found & produced) / elapsed,
        "stderr_lines": sum(e.count("\n") for e in errors),
        "stats": [r["stats"] for r in results],
    }


def versions() -> str:
    out = []
    for dist in ("servicelog", "loguru", "concurrent-log-handler", "portalocker"):
        try:
            out.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{dist} (not installed)")
    return ", ".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=None, help="per variant (default 10)")
    parser.add_argument("--quick", action="store_true", help="3 s per variant")
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(VARIANTS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--proc", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    # bench/run.py passes every script the same arguments: ignore the other scripts' ones.
    args, _ = parser.parse_known_args(argv)
    seconds = args.seconds if args.seconds is not None else (3.0 if args.quick else 10.0)
    if args.child:
        child(args.child, args.dir, args.proc, args.start_at, seconds)
        return 0
    variants = [v for v in args.only.split(",") if v] or list(VARIANTS)
    print("# Many processes, one rotating file\n")
    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"nproc {os.cpu_count()}, {platform.platform()}"
    )
    print(f"Versions: {versions()}")
    print(
        f"{PROCS} processes {TIMES} {THREADS} threads, {seconds:g} s, rotation at 1 MiB "
        f"(loguru: 1 MB), every rotated file kept.\n"
    )
    workdir = Path(tempfile.mkdtemp(prefix="files-bench-"))
    rows = []
    try:
        for variant in variants:
            print(f"running {variant} ...", file=sys.stderr, flush=True)
            rows.append(run_variant(variant, seconds, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    clh = next((r["rate"] for r in rows if r["variant"] == "clh"), None)
    print(
        f"| library | records/s | {TIMES} CLH | lost | duplicated | unparseable | files | bytes/rec |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    for r in rows:
        ratio = f"{r['rate'] / clh:.2f}" if clh else "—"
        lost = f"{r['lost']:,} of {r['produced']:,}" if r["lost"] else "0"
        print(
            f"| {LABELS[r['variant']]} | {r['rate']:,.0f} | {ratio} | {lost} | "
            f"{r['duplicated']:,} | {r['unparseable']:,} | {r['files']:,} | "
            f"{r['bytes_per_record']:.0f} |"
        )
    ok = True
    for r in rows:
        if r["variant"] == "servicelog":
            print(f"\nservicelog sink counters per process: {r['stats']}")
            ok = r["lost"] == 0 and r["duplicated"] == 0 and r["unparseable"] == 0
            if not ok:
                print("FAIL: servicelog lost, duplicated or garbled records", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
