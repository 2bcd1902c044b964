"""The soak scenario (catalog L2), run as a script: a real, separate process.

    python tests/reliability/soak.py --path DIR/app.jsonl --seconds 15 --threads 16 --rate 2000

16 threads log together ``--rate`` records per second into a rotating, gzip-compressing file
set (small files, so that it rotates hundreds of times). Before the load, after a warm-up of a
fifth of the run, and at the end (after the helper thread's last pass) the process notes its
resident memory, open file descriptors and threads, and prints one JSON report with them, the
rotations and the sink's counters.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from typing import Any

import orjson
from worker import NO_CAPTURE  # this directory is on sys.path: run as a script

import servicelog
from servicelog.render.json import JsonRenderer
from servicelog.sinks.rotating import RotatingFileSink


def usage(sink: RotatingFileSink) -> dict[str, Any]:
    """Resident memory (KiB), open file descriptors and threads (but the load's) of this
    process, now: between two passes of the sink's helper thread (a compression holds two
    descriptors while it runs)."""
    with sink._maint_running:
        return _usage()


def _usage() -> dict[str, Any]:
    with open("/proc/self/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    threads = sorted(t.name for t in threading.enumerate() if not t.name.startswith("soak-"))
    return {"rss_kib": rss, "fds": len(os.listdir("/proc/self/fd")), "threads": threads}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", required=True)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--rate", type=float, default=2000.0, help="records per second, in all")
    parser.add_argument("--rotation", default="8 KiB")
    args = parser.parse_args(argv)

    sink = RotatingFileSink(
        args.path, JsonRenderer(), rotation=args.rotation, compression="gz", retention=20,
        flush_interval=0.05,
    )  # fmt: skip
    servicelog.configure(
        stream="none", sinks=[sink], capture=NO_CAPTURE, profile="production", service="soak"
    )
    log = servicelog.get_logger("soak")
    log.info("soak starts")
    servicelog.flush()
    sink.wait_maintenance()
    base = usage(sink)  # the file set open, its helper thread started
    per_thread = args.rate / args.threads
    start = time.monotonic()
    stop_at = start + args.seconds
    produced = [0] * args.threads

    def work(t: int) -> None:
        # Paced: record n of this thread is due n / per_thread seconds after the start.
        n = 0
        while True:
            now = time.monotonic()
            if now >= stop_at:
                return
            due = start + n / per_thread
            if due > now:
                time.sleep(due - now)
            log.info("soak", t=t, j=n, order={"id": n, "items": [1, 2, 3]}, user=f"u{n}")
            n += 1
            produced[t] = n

    threads = [threading.Thread(target=work, args=(t,), name=f"soak-{t}") for t in range(16)]
    for thread in threads[: args.threads]:
        thread.start()
    time.sleep(args.seconds / 5)
    servicelog.flush()
    warm = usage(sink)
    warm_rotations = sink.rotations
    for thread in threads[: args.threads]:
        thread.join()
    servicelog.flush()
    sink.wait_maintenance()
    end = usage(sink)
    report = {
        "base": base,
        "warm": warm,
        "end": end,
        "rotations": sink.rotations,
        "rotations_after_warmup": sink.rotations - warm_rotations,
        "produced": sum(produced),
        "counters": sink.counters(),
    }
    servicelog.reset()
    sys.stdout.write(orjson.dumps(report).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
