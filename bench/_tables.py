"""What the benchmark scripts share: the table characters, medians with their spread, and the
environment of child processes. Each script's children run a copy of the script, so
``snapshot_code`` copies this module beside it."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

TIMES, DASH = "\u00d7", "\u2013"  # for the tables (ruff flags the literal characters)


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float], fmt: str = ",.0f") -> str:
    """The median, then the range in brackets when there is more than one value."""
    if not values:
        return "n/a"
    text = f"{med(values):{fmt}}"
    if len(values) > 1:
        text += f" ({min(values):{fmt}}{DASH}{max(values):{fmt}})"
    return text


def rotated(items: Sequence[T], rep: int, reps: int) -> list[T]:
    """*items* in the order of repetition *rep* of *reps*: each repetition starts further
    along, so that no variant always runs first (or right after the same neighbour)."""
    shift = rep * len(items) // reps
    return [*items[shift:], *items[:shift]]


def child_env(snapshot: str | None, *prefixes: str) -> dict[str, str]:
    """This environment without the operator's ``SERVICELOG_*`` (and *prefixes*) settings,
    which must not leak into the measurement, with *snapshot* first on ``PYTHONPATH``."""
    drop = ("SERVICELOG_", *prefixes)
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    if snapshot:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [snapshot, env.get("PYTHONPATH")]))
    return env
