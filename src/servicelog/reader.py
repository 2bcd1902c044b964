"""Read log files back: the records of a file set, in order, across rotated and compressed files.

>>> for record in servicelog.read_records("logs/app.jsonl"):
...     print(record["message"])

A path names a file set by its active file (``logs/app.jsonl``: its rotated files oldest
first, then the active file), a single rotated file, or a directory (every file set in it, one
after the other by name). Compressed files (``.gz``, ``.zip``, ``.bz2``, ``.xz``, ``.zst``) are
read transparently.

What the files may hold besides records, and what the reader does with it:

* a last line with no newline: a record still being written, or torn by a crash
  (``kill -9``): skipped, in every file;
* a complete line that is not a JSON object (the fragment a crash left, which the next
  writer ended with a newline; an empty line): skipped, or ``ValueError`` with
  ``strict=True``;
* a file that cannot be read or decompressed (a corrupt archive, no permission): the other
  files are still read; it is reported with a ``RuntimeWarning`` naming it, or ``ValueError``
  with ``strict=True``.
* a path that names nothing (a mistyped file or directory) or a directory that cannot be
  listed: reported the same way, never read as an empty log;
* an active file rotated while its set is read: read whole, under the name it had (the
  active files are opened before the first line is read).

Use :func:`iter_lines` to see every line with where it came from (verifiers, the explorer).
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Iterable, Iterator
from types import FrameType
from typing import Any, NamedTuple

import orjson

from .sinks.rotating import COMPRESSIONS, list_members, open_member

__all__ = ["Line", "files_of", "iter_lines", "read_records"]

PathArg = str | os.PathLike[str]

# Any rotated file: <stem>_<label>[.<seq>][<suffix>][<compression>]
_ROTATED = re.compile(
    r"^(?P<stem>.+?)_(?P<label>\d{4}-\d{2}-\d{2}(?:T\d{2}-\d{2}(?:-\d{2})?Z)?)(?:\.\d+)?"
    r"(?P<suffix>\.(?!gz$|zip$|bz2$|xz$|zst$)[A-Za-z0-9]+)?(?:\.gz|\.zip|\.bz2|\.xz|\.zst)?$"
)
_LOG_SUFFIXES = (".jsonl", ".json", ".log", ".ndjson")


class Line(NamedTuple):
    """One line of a log file."""

    path: str
    lineno: int  # 1-based
    data: bytes  # without the newline
    complete: bool  # False only for a last line with no newline


def files_of(paths: PathArg | Iterable[PathArg], *, strict: bool = False) -> list[str]:
    """The files that make up *paths*, in reading order (see the module docstring).

    A path that names nothing (no such file, directory or file set), or a directory that
    cannot be listed, is reported with a ``RuntimeWarning`` (``ValueError`` with
    ``strict=True``): a mistyped name must not read as an empty log. A file set whose
    directory can be entered but not listed still gives its active file.
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        path = os.path.abspath(os.fspath(item))
        try:
            if os.path.isdir(path):
                files = [f for active in _actives_in(path) for f in _set_files(active, strict)]
            elif os.path.isfile(path) and _ROTATED.match(os.path.basename(path)):
                files = [path]
            else:
                files = _set_files(path, strict)
                if not files and _compressed_since(path):
                    files = [path]  # a rotated file compressed since it was listed: read that
                if not files:
                    raise FileNotFoundError(2, "no such file, directory or file set")
        except OSError as exc:
            _problem(f"{path}: cannot be read ({exc.strerror or exc})", strict, exc)
            continue
        for f in files:
            if f not in seen:
                seen.add(f)
                out.append(f)
    return out


def _compressed_since(path: str) -> bool:
    """Whether *path* exists under a compressed name (``iter_lines`` then reads that)."""
    return any(os.path.isfile(path + suffix) for suffix in COMPRESSIONS.values())


def _problem(message: str, strict: bool, cause: BaseException, skipped: bool = True) -> None:
    """Report what cannot be read: ``ValueError`` if *strict*, else a warning."""
    if strict:
        raise ValueError(message) from cause
    # Attributed to the first frame outside this module: the caller's loop or call.
    frame: FrameType | None
    level, frame = 2, sys._getframe(1)  # level 2: the frame that called this function
    while frame is not None and frame.f_code.co_filename == __file__:
        level, frame = level + 1, frame.f_back
    warnings.warn(f"{message}; skipped" if skipped else message, RuntimeWarning, stacklevel=level)


def _set_files(active: str, strict: bool = False) -> list[str]:
    try:
        files = [m.path for m in list_members(active)]
    except OSError as exc:  # a directory that can be entered, not listed (mode 711)
        reason = exc.strerror or exc
        _problem(f"{active}: its rotated files cannot be listed ({reason})", strict, exc, False)
        files = []
    if os.path.isfile(active):
        files.append(active)
    return files


def _actives_in(directory: str) -> list[str]:
    """The active file of every file set in *directory*, by name."""
    names = os.listdir(directory)
    actives: set[str] = set()
    for name in names:
        if name.startswith("."):
            if name.endswith(".lock") and len(name) > 6:
                actives.add(name[1:-5])
            continue
        match = _ROTATED.match(name)
        if match is not None:
            actives.add(match["stem"] + (match["suffix"] or ""))
        elif name.endswith(_LOG_SUFFIXES):
            actives.add(name)
    return [os.path.join(directory, name) for name in sorted(actives)]


#: Active files opened before the first line is read, at most (the rest are opened in turn).
MAX_HELD = 256


def iter_lines(paths: PathArg | Iterable[PathArg], *, strict: bool = False) -> Iterator[Line]:
    """Every line of every file of *paths*, in order, with its file and line number.

    The active files are opened before the first line is read: one that is rotated while its
    set's older files are read (renamed to its dated name, a new one created) is still read
    whole, under the name it had. A file that disappears before it is opened (compressed or
    aged out meanwhile) is looked for under its compressed names, and skipped if gone. A file
    that cannot be read (a corrupt archive) is skipped from where it fails, with a
    ``RuntimeWarning``; the next files are read.

    Raises:
        ValueError: with ``strict=True``, for a file or path that cannot be read, naming it.
    """
    files = files_of(paths, strict=strict)
    held: dict[str, Any] = {}
    try:
        for path in files:
            if len(held) >= MAX_HELD:
                break
            if not _ROTATED.match(os.path.basename(path)):
                try:
                    stream = _open(path)
                except Exception:  # opened again, and reported, in its turn
                    continue
                if stream is not None:  # None: gone meanwhile (looked for again in its turn)
                    held[path] = stream
        for path in files:
            try:
                yield from _file_lines(path, held.pop(path, None))
            except Exception as exc:  # BadGzipFile, BadZipFile, LZMAError, zlib.error, OSError...
                # ... and EOFError: an archive cut short. Rotation writes one as ".part" and
                # renames it when whole, so under its own name it is damaged, not being written.
                _problem(f"{path}: cannot be read ({type(exc).__name__}: {exc})", strict, exc)
    finally:
        for stream in held.values():
            try:
                stream.close()
            except Exception:  # closing a read-only stream: nothing to lose
                continue


def _file_lines(path: str, stream: Any = None) -> Iterator[Line]:
    if stream is None:
        stream = _open(path)
    if stream is None:
        return
    with stream:
        for lineno, raw in enumerate(stream, 1):
            if raw.endswith(b"\n"):
                yield Line(path, lineno, raw[:-1], True)
            else:
                yield Line(path, lineno, raw, False)


def _open(path: str) -> Any:
    plain = not path.endswith(tuple(COMPRESSIONS.values()))
    for candidate in (path, *(path + s for s in COMPRESSIONS.values() if plain)):
        try:
            return open_member(candidate)
        except FileNotFoundError:
            continue
    return None


def read_records(
    paths: PathArg | Iterable[PathArg], *, strict: bool = False
) -> Iterator[dict[str, Any]]:
    """The records of *paths*, oldest file first, in file order.

    Args:
        paths: an active file, a rotated file, a directory, or several of them.
        strict: raise on a complete line that is not a JSON object, or on a file that
            cannot be read, instead of skipping it.

    Yields:
        Each record, as a dict.

    Raises:
        ValueError: with ``strict=True``, naming the file (and line) of a bad line or file.
    """
    for line in iter_lines(paths, strict=strict):
        if not line.complete:
            continue  # being written, or torn by a crash
        try:
            record = orjson.loads(line.data)
        except orjson.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            yield record
        elif strict:
            raise ValueError(f"{line.path}:{line.lineno}: not a JSON object: {line.data[:80]!r}")
