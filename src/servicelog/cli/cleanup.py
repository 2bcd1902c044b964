"""``servicelog cleanup``: delete old log files, or the oldest until the directory fits a size.

::

    servicelog cleanup --dir logs --days 30               # files last written 30+ days ago
    servicelog cleanup --dir logs --max-size 5GB          # oldest first, until logs <= 5 GB
    servicelog cleanup --dir logs --days 30 --dry-run     # print what would go, delete nothing

Active files (those a servicelog writer has open) are never deleted. The logic is
:mod:`servicelog.retention`; this module only parses arguments and prints. Exit status: 0 on
success, 1 when the directory is missing or a file could not be deleted, 2 for a bad argument.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .._units import parse_size
from ..exceptions import ConfigError

__all__ = ["add_parser", "run"]


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(
            f"--days got {text!r}; expected a number of days greater than zero, such as 30"
        )
    return value


def _size(text: str) -> int:
    try:
        return parse_size(text, "--max-size")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(
            f"--max-size got {text!r}; expected {exc.allowed} (KB/MB/GB are powers of 1000, "
            "KiB/MiB/GiB powers of 1024)"
        ) from None


def add_parser(subparsers: Any) -> None:
    """Add the ``cleanup`` command to the ``servicelog`` command's subparsers."""
    parser = subparsers.add_parser(
        "cleanup",
        help="delete old log files, never the active ones",
        description=(
            "Delete log files older than --days, then the oldest until the directory's logs "
            "total at most --max-size. The active file of each log (the one being written) is "
            "never deleted."
        ),
    )
    parser.add_argument("--dir", default="logs", help="the log directory (default: logs)")
    parser.add_argument(
        "--days", type=_days, help="delete files last written more than this many days ago"
    )
    parser.add_argument(
        "--max-size",
        type=_size,
        metavar="SIZE",
        help="then delete the oldest files until all logs total at most SIZE (e.g. 5GB)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be deleted; delete nothing"
    )


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    return f"{size:,.1f} TB"  # pragma: no cover - unreachable


def run(args: argparse.Namespace) -> int:
    """Run ``servicelog cleanup`` with parsed *args*; returns the exit status."""
    from ..retention import apply_cleanup, plan_cleanup

    if args.days is None and args.max_size is None:
        print(
            "servicelog cleanup: nothing to do; give --days N and/or --max-size SIZE "
            "(e.g. --days 30 --max-size 5GB)",
            file=sys.stderr,
        )
        return 2
    try:
        plan = plan_cleanup(args.dir, days=args.days, max_bytes=args.max_size)
    except (FileNotFoundError, NotADirectoryError):
        print(f"servicelog cleanup: {args.dir!r} is not a directory", file=sys.stderr)
        return 1
    verb = "would delete" if args.dry_run else "deleted"
    if args.dry_run:
        done, errors = list(plan.delete), []
    else:
        result = apply_cleanup(plan)
        done, errors = result.deleted, result.errors
    for f in done:
        print(f"{verb} {f.path} ({_human(f.size)})")
    for f, exc in errors:
        print(f"servicelog cleanup: could not delete {f.path}: {exc.strerror}", file=sys.stderr)
    freed = sum(f.size for f in done)
    print(
        f"{'would free' if args.dry_run else 'freed'} {_human(freed)} in {len(done)} file(s); "
        f"{_human(plan.total_bytes - freed)} of logs left in {plan.directory}"
    )
    if plan.unreachable:
        print(
            "servicelog cleanup: the active log files alone exceed --max-size; "
            "they are never deleted",
            file=sys.stderr,
        )
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m servicelog.cli.cleanup --dir logs ...``: the command on its own."""
    parser = argparse.ArgumentParser(prog="servicelog")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["cleanup", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
