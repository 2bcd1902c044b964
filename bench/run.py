"""Run every benchmark script in bench/ (``*_bench.py``) in turn and print their tables.

Arguments are passed on to each script, so ``./run bench --quick`` gives a smoke run. The exit
status is non-zero if any script failed (a crash, or an output check that did not pass).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    scripts = sorted(Path(__file__).resolve().parent.glob("*_bench.py"))
    if not scripts:
        print("no *_bench.py scripts in bench/", file=sys.stderr)
        return 1
    failed = []
    for script in scripts:
        print(f"\n===== {script.name} =====\n", flush=True)
        if subprocess.call([sys.executable, str(script), *argv]) != 0:
            failed.append(script.name)
    if failed:
        print(f"\nFailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
