"""The ``servicelog`` command.

::

    servicelog demo            show every front-end's output, in both profiles
    servicelog cleanup --dir logs [--days 30] [--max-size 5GB] [--dry-run]
    servicelog --version
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .._version import __version__

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="servicelog",
        description="Structured logging, error handling and request tracing for ASGI services.",
    )
    parser.add_argument("--version", action="version", version=f"servicelog {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="show what servicelog does: every front-end, both profiles"
    )
    demo.add_argument(
        "--profile",
        choices=("development", "production", "both"),
        default="both",
        help="which profile's output to show (default: both)",
    )
    demo.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    demo.add_argument(
        "--no-http", action="store_true", help="skip the FastAPI part (no server started)"
    )
    from . import cleanup

    cleanup.add_parser(commands)
    return parser


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run the command *args* names; returns the exit status."""
    if args.command == "demo":
        from .demo import run_demo

        color = {"auto": None, "always": True, "never": False}[args.color]
        return run_demo(args.profile, color=color, http=not args.no_http)
    if args.command == "cleanup":
        from . import cleanup

        return cleanup.run(args)
    parser.print_help(sys.stderr)
    return 2


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush at exit cannot fail again
    on a reader that went away (the recipe in Python's documentation of SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real descriptor behind sys.stdout
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    A reader that goes away (``servicelog demo | head -3``) ends the command quietly with
    status 1, and Ctrl-C with status 130 (128 + SIGINT), both without a traceback.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        status = _run(args, parser)
        sys.stdout.flush()  # inside the try: what is still buffered may meet the broken pipe
    except BrokenPipeError:
        _silence_stdout()
        return 1
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
