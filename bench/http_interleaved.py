"""Interleaved HTTP benchmark: what each part of a stack costs, all servers measured in turns.

``http_bench.py`` measures one fresh server at a time. On this machine throughput moves by
±20 % within seconds, in one process as much as between processes, so two variants measured
10 s apart differ by more than most changes do. Here all the variants' servers run at once
(pinned to the server CPU; an idle one costs nothing) and ``wrk`` visits them in short slices,
so every variant sees the same moments of the machine:

    python bench/http_interleaved.py a s                      # bare FastAPI against servicelog
    python bench/http_interleaved.py a s mine=s@/tmp/copy/src # and s with another copy of src

Each argument is a variant key of ``http_bench.py`` (``a``, ``s``, ``n``, ``g``, ``c``,
``f``), or ``NAME=KEY@SRC``: variant KEY with servicelog imported from the directory SRC (a
patched copy of ``src``, to measure what one part costs). Per round: fresh servers for all,
2 s of warm-up each, then ``--cycles`` cycles of one ``--slice``-second ``wrk`` run per server,
in an order rotated and reversed from cycle to cycle. The figure is each variant's requests
divided by the first variant's, per round; then their median and mean over the rounds. Nothing
is written to ``bench/results``: this is a tool to decide what to change, not the benchmark of
record.

``--together SECONDS`` loads all the servers at the same time instead, for SECONDS per round
(one ``wrk`` per server, all pinned to the load CPU): they share the server CPU, so whatever
slows the machine down slows them all in the same moments. The figure is then each server's
requests per second of its own CPU time (all its threads, from ``/proc``), relative to the
first: what a request costs, compared. (Throughput alone is not used: the scheduler shares the
CPU between threads, and a server with a writer thread would get a little more of it.) On this
machine a run of ``a s`` kept every round within ±0.015 of its median, where ``http_bench.py``'s
medians of the same code moved from 0.72 to 0.94 between runs.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

from _tables import child_env
from http_bench import (
    CLK_TCK,
    CONNECTIONS,
    PATHS,
    REPO,
    VARIANTS,
    Harness,
    Server,
    Variant,
    bench_lock,
    parse_wrk,
    process_ticks,
    raised_priority,
    run_wrk,
    server_args,
    speedups_note,
    start_server,
    stop_server,
    wrk_command,
)


class Entry(NamedTuple):
    name: str
    variant: Variant
    harness: Harness


def parse_entry(text: str, nice: list[str]) -> Entry:
    """``KEY`` or ``NAME=KEY@SRC`` (see the module docstring)."""
    name, _, spec = text.partition("=")
    key, _, src = (spec or name).partition("@")
    if key not in VARIANTS:
        raise SystemExit(f"unknown variant {key!r} in {text!r} (one of {', '.join(VARIANTS)})")
    if src and not (Path(src) / "servicelog").is_dir():
        raise SystemExit(f"{src!r} has no servicelog package")
    env = child_env(str(Path(src).resolve()) if src else str(REPO / "src"), "FAPILOG_")
    return Entry(name, VARIANTS[key], Harness(REPO, env, server_args(), nice))


def run_round(entries: list[Entry], cycles: int, slice_s: int, path: str, tmp: Path) -> list[float]:
    """Requests served by each entry's fresh server over the round's slices."""
    servers: list[Server] = []
    try:
        for i, entry in enumerate(entries):
            servers.append(start_server(entry.variant, entry.harness, tmp / f"{i}-{entry.name}"))
        nice = entries[0].harness.nice
        for server in servers:  # warm-up, not counted
            run_wrk(server.port, path, 2, CONNECTIONS, nice)
        totals = [0.0] * len(entries)
        order = list(range(len(entries)))
        for cycle in range(cycles):
            turn = order[cycle % len(order) :] + order[: cycle % len(order)]
            if (cycle // len(order)) % 2:
                turn.reverse()
            for i in turn:
                totals[i] += run_wrk(servers[i].port, path, slice_s, CONNECTIONS, nice)["requests"]
        return totals
    finally:
        for server in servers:
            stop_server(server)


def run_together(
    entries: list[Entry], seconds: int, path: str, tmp: Path
) -> tuple[list[float], list[float]]:
    """Each entry's fresh server, all loaded at once: their requests per CPU-second, and their
    requests per second."""
    servers: list[Server] = []
    try:
        for i, entry in enumerate(entries):
            servers.append(start_server(entry.variant, entry.harness, tmp / f"{i}-{entry.name}"))
        nice = entries[0].harness.nice
        _wrk_all(servers, path, 2, nice)  # warm-up, not counted
        before = [process_ticks(server.pid) for server in servers]
        outputs = [parse_wrk(out) for out in _wrk_all(servers, path, seconds, nice)]
        after = [process_ticks(server.pid) for server in servers]
        per_cpu = [
            out["requests"] / ((end - start) / CLK_TCK)
            for out, start, end in zip(outputs, before, after, strict=True)
        ]
        return per_cpu, [out["rps"] for out in outputs]
    finally:
        for server in servers:
            stop_server(server)


def _wrk_all(servers: list[Server], path: str, seconds: int, nice: list[str]) -> list[str]:
    """One ``wrk`` per server, all at once; their outputs."""
    procs = [
        subprocess.Popen(
            wrk_command(server.port, path, seconds, CONNECTIONS, nice),
            stdout=subprocess.PIPE,
            text=True,
        )
        for server in servers
    ]
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 60)
        if proc.returncode != 0:
            raise RuntimeError(f"wrk exited with {proc.returncode}")
        outputs.append(out)
    return outputs


def _summary(title: str, entries: list[Entry], ratios: list[list[float]], width: int) -> None:
    print(f"\n{title}, {len(ratios[0])} rounds:")
    for entry, values in zip(entries, ratios, strict=True):
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        print(
            f"{entry.name:<{width}}  median {statistics.median(values):.3f}  mean "
            f"{statistics.mean(values):.3f}  sd {sd:.3f}   " + " ".join(f"{v:.3f}" for v in values)
        )


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="+", help="KEY or NAME=KEY@SRC; the first is the base")
    parser.add_argument("--rounds", type=positive, default=6)
    parser.add_argument("--cycles", type=positive, default=8, help="slices per server and round")
    parser.add_argument("--slice", type=positive, default=1, help="seconds of wrk per slice")
    parser.add_argument("--path", choices=sorted(PATHS), default="items")
    parser.add_argument("--nice", type=int, default=-20)
    parser.add_argument(
        "--together",
        type=positive,
        metavar="SECONDS",
        help="load all servers at once for SECONDS per round; compare requests per CPU-second",
    )
    args = parser.parse_args(argv)
    nice = ["nice", "-n", str(args.nice)] if args.nice else []
    note = speedups_note()
    if note:
        print(note, flush=True)
    entries = [parse_entry(text, nice) for text in args.variants]
    ratios: list[list[float]] = [[] for _ in entries]
    throughput: list[list[float]] = [[] for _ in entries]  # --together: requests/s, as well
    width = max(len(e.name) for e in entries)
    with raised_priority(args.nice), bench_lock():
        for rnd in range(args.rounds):
            tmp = Path(tempfile.mkdtemp(prefix="http-interleaved-"))
            try:
                if args.together:
                    totals, rates = run_together(entries, args.together, PATHS[args.path], tmp)
                    for i, rate in enumerate(rates):
                        throughput[i].append(rate / rates[0])
                else:
                    totals = run_round(entries, args.cycles, args.slice, PATHS[args.path], tmp)
            except RuntimeError as exc:  # a server that does not start, wrk failing
                print(f"round {rnd + 1}: {exc}", file=sys.stderr)
                return 1
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            cells = []
            for i, entry in enumerate(entries):
                ratios[i].append(totals[i] / totals[0])
                cells.append(f"{entry.name}={totals[i]:.0f} ({ratios[i][-1]:.3f})")
            print(f"round {rnd + 1}/{args.rounds}: " + "  ".join(cells), flush=True)
    measure = "requests per CPU-second" if args.together else "requests"
    _summary(f"{measure} relative to {entries[0].name}", entries, ratios, width)
    if args.together:
        _summary("requests/s relative to it (the CPU shared)", entries, throughput, width)
    return 0


if __name__ == "__main__":
    sys.exit(main())
