"""A log-writing process for the reliability tests; run as a script (a real, separate process).

    python tests/reliability/worker.py --path DIR/app.jsonl --proc 0 --threads 8 --seconds 2 \
        --rotation "1 MiB" --report out.json

Each thread logs ``log.info("r", p=PROC, t=THREAD, j=N)`` through ``servicelog.configure()``
with one :class:`RotatingFileSink`, then the process writes a JSON report: records produced
per thread and the sink's counters. With ``--clock-file`` the sink's clock is read from that
file (the parent moves time). With ``--queue-then-wait`` it logs everything with the writer
thread idle, prints ``READY`` and sleeps, for a signal to arrive while records are queued.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

import orjson

import servicelog
from servicelog.render.json import JsonRenderer
from servicelog.sinks.base import install_signal_handlers
from servicelog.sinks.rotating import RotatingFileSink

NO_CAPTURE = servicelog.CaptureOptions(
    stdlib=False, warnings=False, excepthooks=False, structlog=False, loguru=False
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", required=True)
    parser.add_argument("--proc", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=0.0)
    parser.add_argument("--records", type=int, default=0, help="per thread")
    parser.add_argument("--forever", action="store_true")
    parser.add_argument("--rotation", action="append")
    parser.add_argument("--compression")
    parser.add_argument("--retention")
    parser.add_argument("--tz")
    parser.add_argument("--pad", type=int, default=80)
    parser.add_argument("--big-every", type=int, default=0, help="every Nth record ~15 KiB")
    parser.add_argument("--sizes", help="pad sizes in bytes, comma-separated, used in turn")
    parser.add_argument("--sleep", type=float, default=0.0, help="between records")
    parser.add_argument("--clock-file")
    parser.add_argument("--report")
    parser.add_argument("--signals", action="store_true")
    parser.add_argument("--queue-then-wait", action="store_true")
    parser.add_argument("--block-timeout", type=float, default=5.0)
    parser.add_argument("--no-close", action="store_true", help="leave the sink to the exit drain")
    args = parser.parse_args(argv)

    options: dict[str, Any] = {"block_timeout": args.block_timeout}
    if args.clock_file:
        clock_file = args.clock_file

        def clock() -> float:
            with open(clock_file, "rb") as f:
                return float(f.read() or 0)

        options["clock"] = clock
    if args.queue_then_wait:
        # Keep everything queued: the writer thread only wakes on its (long) timer.
        options.update(flush_interval=3600, batch_bytes=1 << 40, max_buffer_bytes=1 << 40)
        options.update(max_records=10**9)
    rotation = args.rotation if args.rotation and len(args.rotation) > 1 else None
    sink = RotatingFileSink(
        args.path,
        JsonRenderer(),
        rotation=rotation or (args.rotation[0] if args.rotation else None),
        compression=args.compression,
        retention=int(args.retention) if args.retention and args.retention.isdigit()
        else args.retention,
        tz=args.tz,
        **options,
    )  # fmt: skip
    servicelog.configure(
        stream="none", sinks=[sink], capture=NO_CAPTURE, profile="production", service="rel"
    )
    if args.signals:
        install_signal_handlers()
    log = servicelog.get_logger("rel")
    produced: dict[int, int] = {}
    pad = "x" * args.pad
    big = "y" * 15000
    sizes = ["z" * int(n) for n in args.sizes.split(",")] if args.sizes else []
    deadline = time.monotonic() + args.seconds if args.seconds else None

    def work(t: int) -> None:
        j = 0
        info, sleep, big_every = log.info, args.sleep, args.big_every
        while True:
            if args.records and j >= args.records:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            if not (args.records or deadline or args.forever):
                break
            if sizes:
                info("r", p=args.proc, t=t, j=j, pad=sizes[j % len(sizes)])
            else:
                info(
                    "r", p=args.proc, t=t, j=j, pad=big if big_every and j % big_every == 0 else pad
                )
            j += 1
            produced[t] = j
            if sleep:
                time.sleep(sleep)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(args.threads)]
    for thread in threads:
        thread.start()
    if args.forever:
        print("STARTED", flush=True)
    for thread in threads:
        thread.join()
    if args.queue_then_wait:
        print("READY", sink.queued_records, flush=True)
        time.sleep(60)
        return 3  # the signal should have ended us
    servicelog.flush()
    counters = sink.counters()
    report = {"produced": produced, "counters": counters, "rotations": sink.rotations}
    if not args.no_close:
        servicelog.reset()
    if args.report:
        with open(args.report, "wb") as f:
            f.write(orjson.dumps(report, option=orjson.OPT_NON_STR_KEYS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
