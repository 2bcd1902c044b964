"""``servicelog cleanup``: delete old log files, or the oldest until the directory fits a size.

::

    servicelog cleanup --dir logs --days 30               # files last written 30+ days ago
    servicelog cleanup --dir logs --max-size 5GB          # oldest first, until logs <= 5 GB
    servicelog cleanup --dir logs --days 30 --dry-run     # print what would go, delete nothing

Active files are never deleted: those with a servicelog lock file, those that rotated files
name, and on Linux those a process holds open (see :mod:`servicelog.retention`, which has the
logic; this module only parses arguments and prints). Exit status: 0 on success, 1 when the
directory is missing or cannot be read or a file could not be deleted, 2 for a bad argument.
"""

from __future__ import annotations

import argparse
import io
import sys
from typing import TYPE_CHECKING, Any

from .._units import parse_size
from ..exceptions import ConfigError

if TYPE_CHECKING:
    from ..retention import CleanupPlan, LogFile

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
            "total at most --max-size. Active files are never deleted: a file with a servicelog "
            "lock file beside it (.app.jsonl.lock), a file that rotated files name "
            "(app_2026-11-29.jsonl and app.log.1 make app.jsonl and app.log active), and, on "
            "Linux, a file that a process holds open, among the processes this user may "
            "inspect (its own user's; all of them only for root with CAP_SYS_PTRACE). Any other "
            "file can be deleted."
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


def _escape_unprintable() -> None:
    """Print any file name: what the output's encoding cannot show (a name that is not valid
    UTF-8) becomes a backslash escape instead of an error after files were deleted."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def _plan(args: argparse.Namespace) -> CleanupPlan | None:
    """The plan for *args*, or ``None`` after saying on stderr why there is none."""
    from ..retention import plan_cleanup

    try:
        return plan_cleanup(args.dir, days=args.days, max_bytes=args.max_size)
    except (FileNotFoundError, NotADirectoryError):
        print(f"servicelog cleanup: {args.dir!r} is not a directory", file=sys.stderr)
    except OSError as exc:
        print(f"servicelog cleanup: cannot read {args.dir}: {exc.strerror or exc}", file=sys.stderr)
    return None


def _delete(plan: CleanupPlan) -> tuple[list[LogFile], int]:
    """Delete the files of *plan*, printing each one as soon as it is gone (so a failure to
    print cannot leave a deleted file unreported); returns the deleted files and the number
    of failures."""
    from ..retention import iter_cleanup

    done: list[LogFile] = []
    errors = 0
    for f, error in iter_cleanup(plan):
        if error is None:
            done.append(f)
            print(f"deleted {f.path} ({_human(f.size)})", flush=True)
        else:
            errors += 1
            print(
                f"servicelog cleanup: could not delete {f.path}: {error.strerror or error}",
                file=sys.stderr,
                flush=True,
            )
    return done, errors


def run(args: argparse.Namespace) -> int:
    """Run ``servicelog cleanup`` with parsed *args*; returns the exit status."""
    _escape_unprintable()
    if args.days is None and args.max_size is None:
        print(
            "servicelog cleanup: nothing to do; give --days N and/or --max-size SIZE "
            "(e.g. --days 30 --max-size 5GB)",
            file=sys.stderr,
        )
        return 2
    plan = _plan(args)
    if plan is None:
        return 1
    if args.dry_run:
        done, errors = list(plan.delete), 0
        for f in done:
            print(f"would delete {f.path} ({_human(f.size)})")
    else:
        done, errors = _delete(plan)
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
