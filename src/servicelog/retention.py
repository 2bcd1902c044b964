"""Cleaning a log directory: what to delete (a plan), then deleting it. Plain functions.

This is the logic behind ``servicelog cleanup`` (the guide's ``cleanup_logs.py``), which is a
thin shell over :func:`plan_cleanup` and :func:`apply_cleanup`:

>>> plan = plan_cleanup("logs", days=30, max_bytes=5 * 10**9)
>>> for f in plan.delete:
...     print(f.path, f.size)
>>> result = apply_cleanup(plan)

Which files count as logs: the regular files of the directory (not its subdirectories, not
symlinks, not hidden files such as lock files) whose names end in ``.jsonl``, ``.json``,
``.log``, ``.ndjson``, possibly followed by a rotation number and a compression suffix
(``app.log.1``, ``app_2026-11-29.1.jsonl.gz``).

What is never deleted: the active file of a file set, however old or large. A servicelog
writer keeps a lock file ``.<name>.lock`` beside its active file, and rotated files name their
set (``app_2026-11-29.jsonl`` belongs to ``app.jsonl``, ``app.log.1`` to ``app.log``); each
marks ``<name>`` as active. On Linux, a file that a process holds open is active too (found in
``/proc/<pid>/fd``, by device and inode; only the processes this one may inspect are seen:
its own user's, and every process only for root with ``CAP_SYS_PTRACE``, which containers
often drop). Files being compressed are hidden
(``.<name>.gz.part``) and skipped, and so is an entry that cannot be examined (``stat`` fails).

Sinks apply their own retention (by count and by age) as they rotate; this module is for a
directory-wide policy run from cron or a systemd timer (see ``deploy/``).
"""

from __future__ import annotations

import os
import re
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from .exceptions import ConfigError

__all__ = [
    "CleanupPlan",
    "CleanupResult",
    "LogFile",
    "apply_cleanup",
    "iter_cleanup",
    "plan_cleanup",
    "scan",
]

_LOG_NAME = re.compile(
    r"\.(?:jsonl|json|log|ndjson)(?:\.\d+)?(?:\.gz|\.zip|\.bz2|\.xz|\.zst)?$", re.IGNORECASE
)
_ROTATED = re.compile(
    r"^(?P<stem>.+?)_\d{4}-\d{2}-\d{2}(?:T\d{2}-\d{2}(?:-\d{2})?Z)?(?:\.\d+)?"
    r"(?P<suffix>\.[A-Za-z0-9]+?)?(?:\.gz|\.zip|\.bz2|\.xz|\.zst)?$"
)
# The stdlib's (and logrotate's) numbered backups: app.log.1, app.log.2.gz belong to app.log.
_NUMBERED = re.compile(r"^(?P<active>.+)\.\d+(?:\.gz|\.zip|\.bz2|\.xz|\.zst)?$")


@dataclass(frozen=True)
class LogFile:
    """A log file found by :func:`scan`."""

    path: str
    size: int
    mtime: float
    active: bool


@dataclass(frozen=True)
class CleanupPlan:
    """What :func:`plan_cleanup` decided.

    Attributes:
        directory: the directory scanned.
        delete: the files to delete, oldest first.
        keep: the log files kept (active files included).
        total_bytes: the size of all log files before cleanup.
        unreachable: ``True`` when *max_bytes* cannot be met without touching active files.
    """

    directory: str
    delete: tuple[LogFile, ...]
    keep: tuple[LogFile, ...]
    total_bytes: int
    unreachable: bool = False

    @property
    def freed_bytes(self) -> int:
        return sum(f.size for f in self.delete)


@dataclass
class CleanupResult:
    """What :func:`apply_cleanup` did."""

    deleted: list[LogFile] = field(default_factory=list)
    errors: list[tuple[LogFile, OSError]] = field(default_factory=list)

    @property
    def freed_bytes(self) -> int:
        return sum(f.size for f in self.deleted)


def _named_active(names: list[str]) -> set[str]:
    """The names that lock files and rotated files mark as active."""
    active = {name[1:-5] for name in names if name.startswith(".") and name.endswith(".lock")}
    for name in names:
        match = _ROTATED.match(name)
        if match is not None:
            active.add(match["stem"] + (match["suffix"] or ""))
        numbered = _NUMBERED.match(name)
        if numbered is not None:
            active.add(numbered["active"])
    return active


def _open_fd_links() -> Iterator[tuple[str, str]]:
    """``(/proc/<pid>/fd/<n>, its target)`` for each file open in a process this one may
    inspect; the others (and processes that exit meanwhile) are skipped."""
    try:
        pids = [entry.name for entry in os.scandir("/proc") if entry.name.isdigit()]
    except OSError:
        return
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            link = f"{fd_dir}/{fd}"
            try:
                target = os.readlink(link)
            except OSError:
                continue
            if target.startswith("/"):  # not a socket, pipe or anon_inode
                yield link, target


def _held_open(files: dict[tuple[int, int], str], directory: str) -> set[tuple[int, int]]:
    """Which of *files* (``(st_dev, st_ino)`` to the name in *directory*) some process holds
    open. Linux only (empty elsewhere); never raises.

    Only the descriptors whose target has one of the names, or lies in *directory* (as the
    process sees it), are checked with ``stat``: unrelated files, possibly on a hung network
    mount, are never touched.
    """
    if not files or not sys.platform.startswith("linux"):
        return set()
    held: set[tuple[int, int]] = set()
    try:
        names = set(files.values())
        real_dir = os.path.realpath(directory)
        for link, target in _open_fd_links():
            target = target.removesuffix(" (deleted)")
            head, name = os.path.split(target)
            if name not in names and head != real_dir:
                continue
            try:
                st = os.stat(link)  # follows the descriptor itself, whatever its path
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in files:
                held.add((st.st_dev, st.st_ino))
    except Exception:  # pragma: no cover - /proc is the kernel's; never let it fail a cleanup
        pass
    return held


def scan(directory: str | os.PathLike[str]) -> list[LogFile]:
    """The log files of *directory*, oldest first (by modification time).

    An entry that cannot be examined (``stat`` fails: no search permission on the directory)
    is left out, so it is never deleted.

    Raises:
        FileNotFoundError: when *directory* does not exist.
        NotADirectoryError: when it is not a directory.
        OSError: when it cannot be listed (``PermissionError``, ...).
    """
    directory = os.fspath(directory)
    names = os.listdir(directory)
    active = _named_active(names)
    found: list[tuple[str, os.stat_result]] = []
    for name in names:
        if name.startswith(".") or not _LOG_NAME.search(name):
            continue
        path = os.path.join(directory, name)
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:  # gone, or not ours to look at: never delete what we cannot see
            continue
        if stat.S_ISREG(st.st_mode):  # not a directory or a symlink
            found.append((name, st))
    candidates = {(st.st_dev, st.st_ino): name for name, st in found if name not in active}
    held = _held_open(candidates, directory)
    files = [
        LogFile(
            os.path.join(directory, name),
            st.st_size,
            st.st_mtime,
            name in active or (st.st_dev, st.st_ino) in held,
        )
        for name, st in found
    ]
    files.sort(key=lambda f: (f.mtime, f.path))
    return files


def plan_cleanup(
    directory: str | os.PathLike[str],
    *,
    days: float | None = None,
    max_bytes: int | None = None,
    now: float | None = None,
) -> CleanupPlan:
    """Decide which log files to delete: older than *days*, then the oldest until the
    directory's logs total at most *max_bytes*. Active files are never chosen.

    Args:
        directory: the log directory.
        days: delete files last written more than this many days ago.
        max_bytes: then delete the oldest files until all logs total at most this.
        now: the current time (default: ``time.time()``).

    Returns:
        The :class:`CleanupPlan`; nothing is deleted yet.

    Raises:
        ConfigError: when neither *days* nor *max_bytes* is given, or one is not positive.
        FileNotFoundError: when *directory* does not exist.
    """
    if days is None and max_bytes is None:
        raise ConfigError("cleanup", None, "--days and/or --max-size")
    if days is not None and not days > 0:
        raise ConfigError("days", days, "a number of days greater than zero")
    if max_bytes is not None and max_bytes < 0:
        raise ConfigError("max_size", max_bytes, "a size of zero or more")
    now = time.time() if now is None else now
    files = scan(directory)
    total = sum(f.size for f in files)
    delete: list[LogFile] = []
    if days is not None:
        cutoff = now - days * 86400
        delete = [f for f in files if not f.active and f.mtime < cutoff]
    remaining = total - sum(f.size for f in delete)
    unreachable = False
    if max_bytes is not None:
        for f in files:
            if remaining <= max_bytes:
                break
            if not f.active and f not in delete:
                delete.append(f)
                remaining -= f.size
        unreachable = remaining > max_bytes
    delete.sort(key=lambda f: (f.mtime, f.path))
    keep = tuple(f for f in files if f not in delete)
    return CleanupPlan(os.fspath(directory), tuple(delete), keep, total, unreachable)


def iter_cleanup(plan: CleanupPlan) -> Iterator[tuple[LogFile, OSError | None]]:
    """Delete the files of *plan* one by one, yielding ``(file, None)`` after each deletion
    (a file already gone counts as deleted) or ``(file, error)`` when one failed, so a caller
    can report each file as it goes. Never raises :class:`OSError`."""
    for f in plan.delete:
        try:
            os.unlink(f.path)
        except FileNotFoundError:
            yield f, None
        except OSError as exc:
            yield f, exc
        else:
            yield f, None


def apply_cleanup(plan: CleanupPlan) -> CleanupResult:
    """Delete the files of *plan*. A file already gone counts as deleted; other failures
    (permissions) are collected in :attr:`CleanupResult.errors`, never raised."""
    result = CleanupResult()
    for f, error in iter_cleanup(plan):
        if error is None:
            result.deleted.append(f)
        else:
            result.errors.append((f, error))
    return result
