"""A file set: an active file that rotates by time and/or size, with retention and compression.

The layout, for ``RotatingFileSink("logs/app.jsonl", ...)``::

    logs/app.jsonl                    the active file (a stable name for tail -f and shippers)
    logs/.app.jsonl.lock              the lock file (flock), and the active file's period
    logs/app_2026-11-28.jsonl.gz      a rotated file, named after its period, compressed
    logs/app_2026-11-29.jsonl         size rotations within a period get a sequence number:
    logs/app_2026-11-29.1.jsonl       ... .1, .2, ... (oldest first)
    logs/app_2026-11-29T13-05Z.jsonl  sub-day periods are labelled in UTC (never repeat)

Rotation happens under the exclusive lock every writer takes for each batch (see ``file.py``):
the writer that finds a boundary due re-checks it against the period stored in the lock file,
renames the active file to its final name with ``link`` + ``unlink`` (which never replaces an
existing file: each name is picked free, and ``link`` fails rather than overwrite), and creates
the new active file. Other processes notice the new inode before their next batch and reopen.
So N processes rotate exactly once per boundary, no write ever lands in a file after it was
rotated, and no rotated file is ever overwritten (stdlib ``RotatingFileHandler`` and loguru
lose whole files here; see the research note, measurements M2 and M4).

Time boundaries are computed from the start of the period holding the timestamp, never as
"now + interval": days start at a wall-clock time in the configured time zone (``zoneinfo``
or the local zone, DST included), sub-day intervals are aligned on the UTC epoch. A rotation
happens when the current period starts later than the active file's period, so a wall clock
stepping back causes none and a jump forward causes one.

Compression and retention run in a helper thread, never on the caller, on rotated files only.
By default the newest rotated file stays uncompressed (``compress_delay=1``, as logrotate's
``delaycompress``), so a shipper still reading it can finish.
"""

from __future__ import annotations

import errno
import fcntl
import io
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from datetime import time as dtime
from typing import IO, Any, NamedTuple, Protocol

import orjson

from .. import _errors
from .._units import (
    is_size,
    is_time_of_day,
    parse_duration,
    parse_size,
    parse_time_of_day,
)
from ..exceptions import ConfigError
from ..pipeline import Route
from ..record import CHANNEL, Record
from ..render.json import JsonRenderer
from .base import DRAIN_TIMEOUT, PartialWrite
from .file import FileSink, check_mode

__all__ = [
    "COMPRESSIONS",
    "MAINTENANCE_AT_CLOSE",
    "FileSpec",
    "Member",
    "RotatingFileSink",
    "file_set",
    "has_field",
    "list_members",
    "open_member",
    "plan_members",
]

#: Suffixes of the compression formats, by the names the ``compression`` option accepts.
COMPRESSIONS = {"gz": ".gz", "zip": ".zip", "bz2": ".bz2", "xz": ".xz", "zstd": ".zst"}
_ALIASES = {"gzip": "gz", "bzip2": "bz2", "lzma": "xz", "zst": "zstd"}
_LABEL = r"\d{4}-\d{2}-\d{2}(?:T\d{2}-\d{2}(?:-\d{2})?Z)?"
_COMPRESSED = r"(?P<comp>\.gz|\.zip|\.bz2|\.xz|\.zst)?"

CustomRotation = Callable[[str, os.stat_result], bool]
RotationSpec = str | int | timedelta | dtime | CustomRotation | Sequence[Any] | None


# --- periods --------------------------------------------------------------------------------------
class Every:
    """Sub-day periods of *seconds*, aligned on the UTC epoch and labelled in UTC."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._format = "%Y-%m-%dT%H-%MZ" if seconds % 60 == 0 else "%Y-%m-%dT%H-%M-%SZ"

    def start(self, ts: float) -> float:
        return math.floor(ts / self.seconds) * self.seconds

    def next(self, ts: float) -> float:
        return self.start(ts) + self.seconds

    def label(self, start: float) -> str:
        return time.strftime(self._format, time.gmtime(start))


class Daily:
    """Periods of *days* days starting at wall-clock time *at* in *tz* (``None``: local time).

    Weeks (``days=7``) start on Mondays. Wall time goes through ``zoneinfo`` (or the C
    library for local time), so a period is 23 or 25 hours long across a DST change.
    """

    def __init__(self, days: int = 1, at: dtime = dtime(0), tz: tzinfo | None = None) -> None:
        self.days = days
        self.at = at
        self.tz = tz

    def _day(self, ts: float) -> date:
        wall = datetime.fromtimestamp(ts, self.tz)
        day = wall.date()
        if wall.time().replace(tzinfo=None) < self.at:
            day -= timedelta(days=1)
        # date.toordinal() is 1 on Monday 0001-01-01: periods of 7 days start on Mondays.
        return day - timedelta(days=(day.toordinal() - 1) % self.days)

    def _instant(self, day: date) -> float:
        wall = datetime.combine(day, self.at)
        return (wall.replace(tzinfo=self.tz) if self.tz is not None else wall).timestamp()

    def start(self, ts: float) -> float:
        return self._instant(self._day(ts))

    def next(self, ts: float) -> float:
        day = self._day(ts)
        while True:
            day += timedelta(days=self.days)
            boundary = self._instant(day)
            if boundary > ts:
                return boundary

    def label(self, start: float) -> str:
        return self._day(start).isoformat()


Period = Every | Daily


@dataclass(frozen=True)
class Rotation:
    """When to rotate: at a period boundary, past a size, or when *custom* says so (any)."""

    period: Period | None = None
    size: int | None = None
    custom: CustomRotation | None = None


def parse_rotation(spec: RotationSpec, tz: tzinfo | None = None) -> Rotation:
    """Read a rotation option.

    Args:
        spec: ``"00:00"`` (daily at that time), ``"1 week"`` / ``"6 hours"`` / ``"1 second"``
            (intervals), ``"100 MB"`` or an int (size), ``"daily"``, ``"hourly"``,
            ``"weekly"``, a ``datetime.time`` or ``timedelta``, a callable
            ``(path, os.stat_result) -> bool``, or several of these in a list (or joined by
            ``" or "``): the file rotates when any is due.
        tz: the time zone of daily boundaries (``None``: local time).

    Returns:
        The parsed :class:`Rotation`.

    Raises:
        ConfigError: naming the value and what is allowed.
    """
    allowed = (
        "a time of day ('00:00'), an interval ('1 week', '1 hour'), a size ('100 MB'), "
        "'daily'/'hourly'/'weekly', a callable (path, stat) -> bool, or a list of these"
    )
    items: list[Any]
    if isinstance(spec, str) and " or " in spec:
        items = [part.strip() for part in spec.split(" or ")]
    elif isinstance(spec, (list, tuple)):
        items = list(spec)
    else:
        items = [spec]
    period: Period | None = None
    size: int | None = None
    custom: CustomRotation | None = None
    for item in items:
        new_period: Period | None = None
        if item is None:
            continue
        if isinstance(item, bool):
            raise ConfigError("rotation", item, allowed)
        if isinstance(item, int):
            size = parse_size(item, "rotation")
        elif isinstance(item, timedelta):
            new_period = _interval(item, tz)
        elif isinstance(item, dtime):
            new_period = Daily(1, parse_time_of_day(item, "rotation"), tz)
        elif isinstance(item, str):
            text = {"daily": "00:00", "midnight": "00:00", "hourly": "1 hour"}.get(
                item.strip().lower(), item
            )
            text = "1 week" if text.strip().lower() == "weekly" else text
            if is_time_of_day(text):
                new_period = Daily(1, parse_time_of_day(text, "rotation"), tz)
            elif is_size(text):
                size = parse_size(text, "rotation")
            else:
                try:
                    delta = parse_duration(text, "rotation")
                except ConfigError:
                    raise ConfigError("rotation", item, allowed) from None
                new_period = _interval(delta, tz)
        elif callable(item):
            custom = item
        else:
            raise ConfigError("rotation", item, allowed)
        if new_period is not None:
            if period is not None:
                raise ConfigError("rotation", spec, "at most one time-based rotation")
            period = new_period
    return Rotation(period, size, custom)


def _interval(delta: timedelta, tz: tzinfo | None) -> Period:
    seconds = delta.total_seconds()
    if seconds < 1:
        raise ConfigError("rotation", str(delta), "an interval of at least 1 second")
    if seconds % 86400 == 0:
        return Daily(int(seconds // 86400), dtime(0), tz)
    return Every(seconds)


def parse_retention(spec: object) -> tuple[int | None, float | None]:
    """Read a retention option: a count of rotated files, an age, or both in a tuple.

    Returns:
        ``(count, max_age_seconds)``, either of which may be ``None``.

    Raises:
        ConfigError: naming the value and what is allowed.
    """
    allowed = "a number of files (10), an age ('30 days', timedelta) or a tuple of both"
    count: int | None = None
    age: float | None = None
    for item in spec if isinstance(spec, tuple) else (spec,):
        if item is None:
            continue
        if isinstance(item, bool):
            raise ConfigError("retention", item, allowed)
        if isinstance(item, int):
            if item < 1:
                raise ConfigError("retention", item, f"{allowed}; a count of at least 1")
            count = item
        elif isinstance(item, (str, timedelta)):
            try:
                age = parse_duration(item, "retention").total_seconds()
            except ConfigError:
                raise ConfigError("retention", item, allowed) from None
        else:
            raise ConfigError("retention", item, allowed)
    return count, age


def parse_compression(spec: object) -> str | None:
    """Read a compression option: ``"gz"``, ``"zip"``, ``"bz2"``, ``"xz"``, ``"zstd"`` or None.

    Raises:
        ConfigError: for another value, or ``"zstd"`` when no zstd module is installed.
    """
    if spec is None or spec is False or spec == "":
        return None
    name = _ALIASES.get(str(spec).lower().lstrip("."), str(spec).lower().lstrip("."))
    if name not in COMPRESSIONS or not isinstance(spec, str):
        raise ConfigError("compression", spec, "'gz', 'zip', 'bz2', 'xz', 'zstd' or None")
    if name == "zstd" and _zstd() is None:
        raise ConfigError(
            "compression",
            spec,
            "'gz', 'zip', 'bz2' or 'xz' ('zstd' needs Python 3.14 or: pip install zstandard)",
        )
    return name


def _zstd() -> Any:
    """The zstd module: ``compression.zstd`` (Python 3.14+) or ``zstandard``, else None."""
    try:
        from compression import zstd  # type: ignore[import-not-found, unused-ignore]

        return zstd
    except ImportError:
        pass
    try:
        import zstandard  # type: ignore[import-not-found, unused-ignore]

        return zstandard
    except ImportError:
        return None


# --- names ----------------------------------------------------------------------------------------
class Member(NamedTuple):
    """A rotated file of a file set."""

    path: str
    label: str
    seq: int
    compression: str  # "" or a suffix of COMPRESSIONS (".gz", ...)


def split_name(basename: str) -> tuple[str, str]:
    """``"app.jsonl"`` -> ``("app", ".jsonl")``."""
    stem, suffix = os.path.splitext(basename)
    return (stem, suffix) if stem else (basename, "")


def member_pattern(basename: str) -> re.Pattern[str]:
    """The names of the rotated files of the set whose active file is *basename*."""
    stem, suffix = split_name(basename)
    return re.compile(
        rf"^{re.escape(stem)}_(?P<label>{_LABEL})(?:\.(?P<seq>\d+))?{re.escape(suffix)}"
        rf"{_COMPRESSED}$"
    )


def rotated_name(basename: str, label: str, seq: int) -> str:
    stem, suffix = split_name(basename)
    return f"{stem}_{label}{f'.{seq}' if seq else ''}{suffix}"


def list_members(active: str, names: Iterable[str] | None = None) -> list[Member]:
    """The rotated files of the set whose active file is *active*, oldest first.

    A file that exists both plain and compressed (a compression interrupted between its
    rename and its unlink) is listed once, plain.
    """
    directory, basename = os.path.split(os.path.abspath(active))
    pattern = member_pattern(basename)
    if names is None:
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return []
    found: dict[tuple[str, int], Member] = {}
    for name in names:
        match = pattern.match(name)
        if match is None:
            continue
        key = (match["label"], int(match["seq"] or 0))
        member = Member(os.path.join(directory, name), key[0], key[1], match["comp"] or "")
        if key not in found or not member.compression:
            found[key] = member
    return [found[key] for key in sorted(found)]


# --- compression ----------------------------------------------------------------------------------
#: The longest, in seconds, that closing a rotating file set (or exiting) spends on a last
#: pass of retention and compression.
MAINTENANCE_AT_CLOSE = 2.0


def compress_file(
    path: str, compression: str, mode: int = 0o600, stop: Callable[[], bool] | None = None
) -> str | None:
    """Compress the rotated file *path* next to itself, then delete it.

    Safe with several processes: the one holding a ``flock`` on the source does the work
    (others skip it); the output is written to a hidden ``.part`` file, synced, and renamed
    into place before the source is deleted, so a crash leaves either the source or a complete
    compressed file (or both, which the reader and the next run handle).

    *stop* is asked between chunks of 1 MiB: when it answers true the compression is
    abandoned, its ``.part`` removed and the original kept (a closing sink stops this way
    instead of leaving a half-written file for the next run).

    Returns:
        The compressed file's path, or ``None`` if another process is compressing it, it is
        gone, or *stop* ended the work.
    """
    suffix = COMPRESSIONS[compression]
    try:
        src = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    directory, basename = os.path.split(path)
    part = os.path.join(directory, f".{basename}{suffix}.part")
    final = path + suffix
    try:
        try:
            fcntl.flock(src, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        st = os.fstat(src)
        try:
            if os.stat(path, follow_symlinks=False).st_ino != st.st_ino:
                return None
        except FileNotFoundError:
            return None  # done (and deleted) by another process meanwhile
        out = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        try:
            with os.fdopen(os.dup(src), "rb") as source, os.fdopen(out, "wb", closefd=False) as f:
                _COMPRESSORS[compression](source, f, basename, st.st_mtime, stop or _never)
            os.fsync(out)
            os.fchmod(out, mode)
        finally:
            os.close(out)
        try:
            # Keep the log's own age: retention by age reads mtime.
            os.utime(part, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.rename(part, final)
        except FileNotFoundError:
            # Another process's retention aged the source out meanwhile and removed our .part
            # as stale: nothing is left to do.
            return None
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass  # aged out by another process's retention meanwhile; its next pass takes ours
    except BaseException as exc:
        try:
            os.unlink(part)
        except OSError:
            pass
        if isinstance(exc, _Stopped):
            return None
        raise
    finally:
        os.close(src)
    return final


class _Stopped(Exception):
    """A compression was abandoned because its sink is closing."""


def _never() -> bool:
    return False


class _Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


def _copy(src: IO[bytes], dst: _Writable, stop: Callable[[], bool]) -> None:
    """``shutil.copyfileobj`` in chunks of 1 MiB, asking *stop* before each."""
    while True:
        if stop():
            raise _Stopped
        chunk = src.read(1 << 20)
        if not chunk:
            return
        dst.write(chunk)


def _gz(src: IO[bytes], out: IO[bytes], name: str, mtime: float, stop: Callable[[], bool]) -> None:
    import gzip

    # Level 6, as gzip(1) and logrotate: twice as fast as the module's 9 on JSON, ~2 % larger.
    with gzip.GzipFile(
        filename=name, mode="wb", fileobj=out, mtime=int(mtime), compresslevel=6
    ) as z:
        _copy(src, z, stop)


def _bz2(src: IO[bytes], out: IO[bytes], name: str, mtime: float, stop: Callable[[], bool]) -> None:
    import bz2

    with bz2.BZ2File(out, "wb") as z:
        _copy(src, z, stop)


def _xz(src: IO[bytes], out: IO[bytes], name: str, mtime: float, stop: Callable[[], bool]) -> None:
    import lzma

    with lzma.LZMAFile(out, "wb") as z:
        _copy(src, z, stop)


def _zip(src: IO[bytes], out: IO[bytes], name: str, mtime: float, stop: Callable[[], bool]) -> None:
    import zipfile

    info = zipfile.ZipInfo(name, time.localtime(mtime)[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(out, "w") as zf, zf.open(info, "w", force_zip64=True) as z:
        _copy(src, z, stop)


def _zst(src: IO[bytes], out: IO[bytes], name: str, mtime: float, stop: Callable[[], bool]) -> None:
    zstd = _zstd()
    if hasattr(zstd, "ZstdFile"):  # compression.zstd (Python 3.14)
        with zstd.ZstdFile(out, "wb") as z:
            _copy(src, z, stop)
    else:  # the zstandard package
        with zstd.ZstdCompressor().stream_writer(out, closefd=False) as z:
            _copy(src, z, stop)


_Compressor = Callable[[IO[bytes], IO[bytes], str, float, Callable[[], bool]], None]
_COMPRESSORS: dict[str, _Compressor] = {
    "gz": _gz,
    "bz2": _bz2,
    "xz": _xz,
    "zip": _zip,
    "zstd": _zst,
}


def open_member(path: str) -> io.BufferedIOBase:
    """Open a log file for reading, decompressing it if its name says it is compressed."""
    if path.endswith(".gz"):
        import gzip

        return gzip.open(path, "rb")
    if path.endswith(".bz2"):
        import bz2

        return bz2.open(path, "rb")
    if path.endswith(".xz"):
        import lzma

        return lzma.open(path, "rb")
    if path.endswith(".zip"):
        import zipfile

        archive = zipfile.ZipFile(path)
        return io.BufferedReader(_ZipMember(archive), 1 << 16)
    if path.endswith(".zst"):
        zstd = _zstd()
        if zstd is None:
            raise OSError(errno.ENOTSUP, "reading .zst files needs: pip install zstandard", path)
        if hasattr(zstd, "ZstdFile"):
            return zstd.ZstdFile(path, "rb")  # type: ignore[no-any-return]
        return io.BufferedReader(zstd.ZstdDecompressor().stream_reader(open(path, "rb")))
    return open(path, "rb")


# --- the sink -------------------------------------------------------------------------------------
class RotatingFileSink(FileSink):
    """JSON lines to a file set that rotates, ages out and compresses (see the module docs).

    Args:
        path: the active file (``"logs/app.jsonl"``); rotated files are named after it.
        renderer: the JSON renderer.
        rotation: when to rotate (see :func:`parse_rotation`); ``None`` never rotates.
        retention: how many rotated files to keep (an int), for how long (``"30 days"``), or
            a tuple of both; ``None`` keeps everything. The active file is never deleted.
        compression: ``"gz"``, ``"zip"``, ``"bz2"``, ``"xz"``, ``"zstd"`` or ``None``.
        compress_delay: how many of the newest rotated files stay uncompressed.
        tz: time zone of daily boundaries and of date labels: a ``tzinfo``, a zone name
            (``"Europe/Berlin"``) or ``None`` for local time.
        clock: the time source, ``time.time`` by default (tests pass their own).
        mode: ``0o600`` (default) or ``0o640``, for every file of the set.
        **options: the buffering options of :class:`~servicelog.sinks.base.BufferedSink`.

    Raises:
        ConfigError: for an option servicelog cannot use, naming it.
        OSError: ``ELOOP`` when *path* is a symlink.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        renderer: JsonRenderer,
        *,
        rotation: RotationSpec = None,
        retention: object = None,
        compression: str | None = None,
        compress_delay: int = 1,
        tz: tzinfo | str | None = None,
        clock: Callable[[], float] = time.time,
        mode: int = 0o600,
        **options: Any,
    ) -> None:
        if isinstance(tz, str):
            from zoneinfo import ZoneInfo

            try:
                tz = ZoneInfo(tz)
            except (KeyError, ValueError, OSError) as exc:  # ZoneInfoNotFoundError: a KeyError
                raise ConfigError(
                    "tz", tz, "an IANA time zone name, such as 'Europe/Paris'"
                ) from exc
        elif tz is not None and not isinstance(tz, tzinfo):
            raise ConfigError("tz", tz, "a datetime.tzinfo, an IANA time zone name, or None")
        self.tz = tz
        self.rotation = parse_rotation(rotation, tz)
        self.keep, self.max_age = parse_retention(retention)
        self.compression = parse_compression(compression)
        if compress_delay < 0:
            raise ConfigError("compress_delay", compress_delay, "a count of 0 or more")
        self.compress_delay = compress_delay
        self._clock = clock
        self._next = -math.inf  # when to look at the time boundary again
        self._new_period: float | None = None
        self.rotations = 0
        self._maint_wake = threading.Event()
        self._maint_thread: threading.Thread | None = None
        self._maint_lock = threading.Lock()
        self._maint_running = threading.Lock()
        self._stopping = False  # closed or exited: the helper thread ends
        self._stop_at = math.inf  # compression stops between chunks from this time on
        self._day_label = Daily(1, dtime(0), tz)
        super().__init__(path, renderer, mode=check_mode(mode), **options)
        self._pattern = member_pattern(self.basename)
        self.schedule_maintenance()  # compress or age out what earlier runs left

    # --- the period of the active file (stored in the lock file) -----------------------------
    def _read_state(self) -> dict[str, Any]:
        if self._lock_fd is None:  # no lock file (see FileSink._lock): no shared state
            return {}
        try:
            state = orjson.loads(os.pread(self._lock_fd, 256, 0) or b"{}")
        except orjson.JSONDecodeError:
            return {}
        return state if isinstance(state, dict) else {}

    def _write_state(self, period: float) -> None:
        if self._lock_fd is None:
            return
        data = orjson.dumps({"ino": self._ino, "period": period})
        os.pwrite(self._lock_fd, data, 0)
        os.ftruncate(self._lock_fd, len(data))

    def _file_period(self, period: Period, st: os.stat_result) -> float:
        """The start of the period the active file belongs to (call with the lock held)."""
        state = self._read_state()
        if state.get("ino") == self._ino and isinstance(state.get("period"), (int, float)):
            return float(state["period"])
        # No record of it (an older servicelog, a lost lock file): the period of its last write.
        start = period.start(st.st_mtime if st.st_size else self._clock())
        self._write_state(start)
        return start

    def _opened(self, fd: int, created: bool, st: os.stat_result) -> bool:
        if st.st_nlink > 1 and any(
            _ino(m.path) == st.st_ino for m in list_members(self.path) if not m.compression
        ):
            # A rotation crashed between its link() and its unlink(): the data is safe under
            # the rotated name; finish the unlink, and have a new active file opened.
            os.unlink(self.path)
            self._close_file()
            return False
        if created and self.rotation.period is not None:
            start = self.rotation.period.start(self._clock())
            if self._new_period is not None:
                start = max(start, self._new_period)
            self._write_state(start)
        return True

    # --- writing --------------------------------------------------------------------------------
    def _write_locked(self, data: bytes) -> None:
        pos, total = 0, len(data)
        can_rotate = True
        try:
            while True:
                fd, size = self._active()
                if can_rotate:
                    try:
                        if self._rotate_if_due(fd, size, data, pos):
                            continue
                    except OSError as exc:
                        # Never lose records because a rotation failed: write on to the
                        # current file, and try again with the next batch. The rotation may
                        # have closed *fd* (whose number the app may own again by now): fetch
                        # the active file afresh.
                        can_rotate = False
                        _errors.report(f"sink {self.name} rotation", exc)
                        continue
                end = self._chunk_end(data, pos, size) if can_rotate else total
                self._append(fd, size, data[pos:end] if pos or end < total else data)
                pos = end
                if pos >= total:
                    return
        except OSError as exc:
            before = data.count(b"\n", 0, pos)
            raise PartialWrite(before + (exc.written if isinstance(exc, PartialWrite) else 0), exc)

    def _chunk_end(self, data: bytes, pos: int, size: int) -> int:
        """Where the next write ends: all of *data*, or as many lines as fit under the size."""
        limit = self.rotation.size
        if limit is None or len(data) - pos <= limit - size:
            return len(data)
        cut = data.rfind(b"\n", pos, pos + max(0, limit - size))
        if cut < 0:  # not one line fits: the file is empty (else we rotated), take one line
            return data.index(b"\n", pos) + 1
        return cut + 1

    def _rotate_if_due(self, fd: int, size: int, data: bytes, pos: int) -> bool:
        rotation = self.rotation
        period = rotation.period
        now = self._clock()
        if period is not None and now >= self._next:
            st = os.fstat(fd)
            file_period = self._file_period(period, st)
            current = period.start(now)
            if current > file_period and size > 0:
                self._rotate(period.label(file_period), current)
                return True
            if current > file_period:  # empty: just move it into the new period
                self._write_state(current)
            self._next = period.next(now)
        if size == 0:
            return False
        due = False
        if rotation.size is not None:
            line_end = data.find(b"\n", pos)
            due = size + (line_end + 1 - pos) > rotation.size
        if not due and rotation.custom is not None:
            try:
                due = bool(rotation.custom(self.path, os.fstat(fd)))
            except Exception as exc:  # the application's function: count it, write on
                _errors.report(f"sink {self.name} rotation", exc)
        if not due:
            return False
        if period is not None:
            file_period = self._file_period(period, os.fstat(fd))
            label = period.label(file_period)
            self._rotate(label, max(file_period, period.start(now)))
        else:
            self._rotate(self._day_label.label(now), None)
        return True

    def _rotate(self, label: str, new_period: float | None) -> None:
        """Rename the active file to its final name and start a new one (lock held)."""
        names = os.listdir(self.directory)
        members = list_members(self.path, names)
        if members and members[-1].label > label:
            label = members[-1].label  # keep names in order even if the clock went back
        seq = 1 + max((m.seq for m in members if m.label == label), default=-1)
        for _ in range(100):
            target = os.path.join(self.directory, rotated_name(self.basename, label, seq))
            if not any(os.path.lexists(target + s) for s in ("", *COMPRESSIONS.values())):
                try:
                    _link_no_replace(self.path, target)
                    break
                except FileExistsError:
                    pass
            seq += 1
        else:  # pragma: no cover - 100 names taken at once
            raise OSError(errno.EEXIST, "no free name to rotate to", self.path)
        self._close_file()
        self._new_period = new_period
        try:
            self._active()
        except OSError:
            self._unrotate(target)
            raise
        finally:
            self._new_period = None
        self.rotations += 1
        if self.keep is not None:
            # Count retention at once, here in the writer (a listing and a few unlinks): the set
            # stays within it even while the helper is busy compressing (files can rotate many
            # times during one xz compression). Age and compression stay with the helper.
            try:
                self._age_out(by_age=False)
            except OSError as exc:
                _errors.report(f"sink {self.name} retention", exc)
        self.schedule_maintenance()

    def _unrotate(self, target: str) -> None:
        """The new active file could not be created (no inode or space left): give the file
        just rotated its active name back, so the batch goes on in it; rotation is tried again
        with the next batch. If that fails too, the batch fails and is counted lost."""
        if os.path.lexists(self.path):
            return  # created after all (by a writer without the lock file): write to it
        try:
            _link_no_replace(target, self.path)
        except FileExistsError:
            pass  # the same, between the check and the link
        except OSError as exc:
            _errors.report(f"sink {self.name} rotation", exc)

    # --- compression and retention ------------------------------------------------------------
    @property
    def _maintained(self) -> bool:
        """Whether this set has compression or retention (work for the helper thread)."""
        return not (self.compression is None and self.keep is None and self.max_age is None)

    def schedule_maintenance(self) -> None:
        """Wake the helper thread that compresses rotated files and applies retention."""
        if not self._maintained:
            return
        if self._stopping:  # closed, or exiting (no new thread at interpreter shutdown)
            return
        with self._maint_lock:
            thread = self._maint_thread
            if thread is None or not thread.is_alive():
                thread = threading.Thread(
                    target=self._maintenance_loop,
                    name=f"servicelog-maintenance[{self.name}]",
                    daemon=True,
                )
                try:
                    thread.start()
                except RuntimeError as exc:  # no new thread now (a thread limit): next time
                    _errors.report(f"sink {self.name} maintenance", exc)
                    return
                self._maint_thread = thread
        self._maint_wake.set()

    def _maintenance_loop(self) -> None:
        wake = self._maint_wake
        while True:
            wake.wait(60.0)
            wake.clear()
            if self._released or self._stopping:
                return
            try:
                self.maintain()
            except Exception as exc:
                _errors.report(f"sink {self.name} maintenance", exc)

    def maintain(self) -> list[str]:
        """Apply retention, compress rotated files, and apply retention again, now (the
        helper thread calls this).

        Retention comes first: a file about to age out is not worth compressing, and when
        files rotate faster than they compress (a burst, a slow algorithm) the set stays
        within ``retention`` instead of growing while compression catches up. Compression
        stops early when the sink closes; the next run compresses the rest.

        Returns:
            The paths deleted by retention.
        """
        with self._maint_running:
            return self._maintain_locked()

    def _maintain_locked(self) -> list[str]:
        """:meth:`maintain`, with ``_maint_running`` held by the caller."""
        deleted = self._age_out()
        if self.compression is not None:
            try:
                members = list_members(self.path)
                delay = self.compress_delay
                for member in members[: len(members) - delay] if delay else members:
                    if self._stop():
                        break
                    if not member.compression:
                        compress_file(member.path, self.compression, self.mode, self._stop)
                self._remove_stale_parts()
            finally:
                deleted += self._age_out()
        return deleted

    def _stop(self) -> bool:
        """Whether compression must stop now (the sink is stopping, or its time is up)."""
        return self._stopping or time.monotonic() >= self._stop_at

    def _age_out(self, by_age: bool = True) -> list[str]:
        """Delete the rotated files retention no longer keeps (every form of each); with
        ``by_age=False`` only those beyond the count."""
        max_age = self.max_age if by_age else None
        if self.keep is None and max_age is None:
            return []
        doomed = plan_members(list_members(self.path), self.keep, max_age, self._clock())
        deleted: list[str] = []
        for member in doomed:
            base = member.path[: len(member.path) - len(member.compression)]
            for suffix in ("", *COMPRESSIONS.values()):
                try:
                    os.unlink(base + suffix)
                    deleted.append(base + suffix)
                except FileNotFoundError:
                    pass
        return deleted

    def stop_maintenance(self, timeout: float = MAINTENANCE_AT_CLOSE) -> None:
        """A last pass of retention and compression within *timeout* seconds (at most
        ``MAINTENANCE_AT_CLOSE``; a helper thread mid-pass gets at least 0.25 s to stop), then
        stop the helper thread.

        ``close()`` and the exit drain call it. A process that stops leaves its file set
        within ``retention`` and no half-written ``.part``: a compression still running at the
        deadline is abandoned within a chunk of 1 MiB, and the next run does it.
        """
        if not self._maintained:
            return
        deadline = time.monotonic() + max(0.0, min(timeout, MAINTENANCE_AT_CLOSE))
        self._stop_at = deadline  # the helper, if at work, stops by then too
        try:
            # A helper mid-pass sees the deadline between chunks: give it a moment to stop.
            grace = max(deadline - time.monotonic(), 0.25)
            if self._maint_running.acquire(timeout=grace):
                try:
                    self._maintain_locked()
                finally:
                    self._maint_running.release()
            else:  # the helper is stuck (a hung disk): it ages out when it can
                _errors.report(
                    f"sink {self.name} maintenance",
                    TimeoutError("retention and compression still running at close"),
                )
        except Exception as exc:
            _errors.report(f"sink {self.name} maintenance", exc)
        finally:
            self._stopping = True
            self._maint_wake.set()

    def _remove_stale_parts(self) -> None:
        # A compression killed midway leaves ".<name>.gz.part"; once its source is gone (it
        # was compressed since, or aged out), nothing will ever finish it.
        for name in os.listdir(self.directory):
            if name.startswith(".") and name.endswith(".part"):
                source = os.path.splitext(name[1:-5])[0]
                if self._pattern.match(source) and not os.path.exists(
                    os.path.join(self.directory, source)
                ):
                    try:
                        os.unlink(os.path.join(self.directory, name))
                    except FileNotFoundError:
                        pass

    def wait_maintenance(self) -> list[str]:
        """Run :meth:`maintain` on the calling thread, after any run in progress (tests)."""
        return self.maintain()

    def release(self) -> None:
        super().release()
        self._maint_wake.set()  # let the helper thread see _released and end

    def close(self, timeout: float | None = None) -> None:
        """Drain and close (see :meth:`BufferedSink.close`), then stop maintenance within what
        is left of *timeout* (see :meth:`stop_maintenance`)."""
        if self._closed:
            return
        deadline = time.monotonic() + (DRAIN_TIMEOUT if timeout is None else timeout)
        super().close(timeout)
        self.stop_maintenance(deadline - time.monotonic())

    def _at_exit(self, timeout: float) -> None:
        self.stop_maintenance(timeout)

    def _after_fork_in_child(self) -> None:
        self._maint_thread = None
        self._maint_wake = threading.Event()
        self._maint_lock = threading.Lock()
        self._maint_running = threading.Lock()
        self._stopping = self._closed
        self._stop_at = math.inf
        self._next = -math.inf
        super()._after_fork_in_child()


def plan_members(
    members: Sequence[Member], keep: int | None, max_age: float | None, now: float
) -> list[Member]:
    """The rotated files retention deletes: all but the newest *keep*, and those last
    written more than *max_age* seconds before *now*. *members* are oldest first."""
    doomed: list[Member] = []
    if keep is not None and keep < len(members):
        doomed = list(members[: len(members) - keep])
    if max_age is not None:
        for member in members:
            try:
                old = os.stat(member.path).st_mtime < now - max_age
            except FileNotFoundError:
                continue
            if old and member not in doomed:
                doomed.append(member)
    return doomed


class _ZipMember(io.RawIOBase):
    """The first member of a zip archive as a raw stream that closes the archive with it."""

    def __init__(self, archive: Any) -> None:
        super().__init__()
        self.archive = archive
        self.member = archive.open(archive.namelist()[0])

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.member.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.member.close()
            self.archive.close()
        super().close()


def _ino(path: str) -> int:
    try:
        return os.stat(path, follow_symlinks=False).st_ino
    except OSError:
        return -1


def _link_no_replace(source: str, target: str) -> None:
    """Give *source* the name *target* and drop the old name; never replace *target*.

    ``link(2)`` fails with EEXIST instead of replacing. A crash between it and ``unlink`` leaves
    the active file with two names, which the next writer repairs (see ``_opened``).
    """
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # No hard links here (some FUSE and network filesystems): a rename, after the
        # caller checked the name is free, under the lock that every writer takes.
        os.rename(source, target)
        return
    os.unlink(source)


# --- the guide's file set -------------------------------------------------------------------------
@dataclass(frozen=True)
class FileSpec:
    """One file of a :func:`file_set`.

    Attributes:
        name: the file's name without suffix (``"app"`` gives ``app.jsonl``).
        level: the lowest level written to it.
        rotation: see :func:`parse_rotation`.
        retention: a count of rotated files, an age, or a tuple of both.
        compression: ``"gz"``, ``"zip"``, ``"bz2"``, ``"xz"``, ``"zstd"`` or ``None``.
        filter: a function of the record that selects what this file gets.
    """

    name: str
    level: int | str = "INFO"
    rotation: RotationSpec = "00:00"
    retention: object = "30 days"
    compression: str | None = "gz"
    filter: Callable[[Record], bool] | None = None


def is_performance(record: Record) -> bool:
    """Records of the performance channel (``log_execution_time``)."""
    return record.get(CHANNEL) == "performance"


def has_field(name: str) -> Callable[[Record], bool]:
    """A filter selecting the records that carry the field *name* (the guide's custom file)."""

    def selected(record: Record) -> bool:
        return name in record

    selected.__qualname__ = f"has_field({name!r})"
    return selected


DEFAULT_APP = FileSpec("app", "INFO", "00:00", "30 days", "gz")
DEFAULT_ERROR = FileSpec("error", "ERROR", "00:00", "90 days", "gz")
DEFAULT_PERFORMANCE = FileSpec("performance", "INFO", "100 MB", "7 days", "gz", is_performance)


def file_set(
    dir: str | os.PathLike[str] = "logs",
    *,
    app: FileSpec | str | bool | None = True,
    error: FileSpec | str | bool | None = True,
    performance: FileSpec | str | bool | None = True,
    custom: Sequence[FileSpec] = (),
    renderer: JsonRenderer | None = None,
    mode: int = 0o600,
    tz: tzinfo | str | None = None,
    suffix: str = ".jsonl",
    **options: Any,
) -> list[Route]:
    """The guide's log files, as routes for ``configure(sinks=...)``.

    By default: ``app.jsonl`` (INFO and up, daily at midnight, 30 days, gzip),
    ``error.jsonl`` (ERROR and up, daily, 90 days), and ``performance.jsonl`` (the performance
    channel, at 100 MB, 7 days). Pass ``False`` to leave one out, a name to rename it, or a
    :class:`FileSpec` to change it; *custom* adds files, e.g. the guide's
    ``FileSpec("large_operations", rotation="100 MB", retention=10,
    filter=has_field("large_operation"))``.

    Args:
        dir: the directory of the files (created ``0700`` if missing).
        app: the application log.
        error: the error log.
        performance: the performance log.
        custom: more files, each with its own filter.
        renderer: the JSON renderer (default: 16 KiB lines).
        mode: ``0o600`` or ``0o640``.
        tz: time zone of daily rotation (``None``: local time).
        suffix: the files' suffix.
        **options: more :class:`RotatingFileSink` options, for every file.

    Returns:
        One :class:`~servicelog.pipeline.Route` per file.

    Raises:
        ConfigError: for an option servicelog cannot use.
    """
    from ..levels import parse_level

    renderer = renderer or JsonRenderer()
    specs: list[FileSpec] = []
    for value, default in ((app, DEFAULT_APP), (error, DEFAULT_ERROR)):
        spec = _spec(value, default)
        if spec is not None:
            specs.append(spec)
    spec = _spec(performance, DEFAULT_PERFORMANCE)
    if spec is not None:
        specs.append(spec)
    specs.extend(custom)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError("file_set", names, "distinct file names")
    routes: list[Route] = []
    for spec in specs:
        level = parse_level(spec.level, f"{spec.name}.level")
        sink = RotatingFileSink(
            os.path.join(os.fspath(dir), spec.name + suffix),
            renderer,
            rotation=spec.rotation,
            retention=spec.retention,
            compression=spec.compression,
            mode=mode,
            tz=tz,
            **options,
        )
        routes.append(Route(sink, level, spec.filter))
    return routes


def _spec(value: FileSpec | str | bool | None, default: FileSpec) -> FileSpec | None:
    if value is None or value is False:
        return None
    if value is True:
        return default
    if isinstance(value, str):
        from dataclasses import replace

        return replace(default, name=value)
    if isinstance(value, FileSpec):
        return value
    raise ConfigError(default.name, value, "True, False, a file name or a FileSpec")
