"""An append-only file of JSON lines that several processes can share, and that survives faults.

Security: files are created ``0600`` (``0640`` allowed) by ``open(2)`` itself, so no other user
can open them in between, and never through a symlink (``O_NOFOLLOW``): a pre-planted link is
refused. Parent directories are created ``0700`` (``0750`` for ``0640`` files).

Many writers, one file: each batch of whole lines is written under an exclusive
``fcntl.flock`` on a lock file next to the log (``.app.jsonl.lock``), with ``O_APPEND``. Under
the lock a writer checks that the lock file and the log file are still the ones at their paths
(a deleted directory, a deleted file, an external ``logrotate`` rename are noticed here and the
file is reopened or recreated), and that the file ends in a newline: a writer killed in the
middle of a write leaves a torn last line, and the next batch starts on a fresh line so that no
complete record is ever glued to the fragment. Rotation (``rotating.py``) happens under the same
lock. The lock costs a few system calls per batch, not per record; ``write(2)`` calls to one
file are serialised by the kernel anyway.

Faults never raise into the application: a failed batch is counted as lost (exactly: lines a
short write did put in the file count as written), reported on stderr at most once a minute,
and the next batch tries again from scratch (directory, lock file, log file), so writing
resumes within one ``flush_interval`` of the fault clearing.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from typing import Any

from .. import _errors
from ..exceptions import ConfigError
from ..render.json import JsonRenderer
from .base import JsonLinesSink, PartialWrite

__all__ = ["FileSink", "open_log_file"]

_ALLOWED_MODES = (0o600, 0o640)
# Read access too: a batch reads the last byte to see whether it ends a line (pread).
_OPEN_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW


def check_mode(mode: int) -> int:
    """Accept 0o600 or 0o640.

    Raises:
        ConfigError: for any other mode.
    """
    if mode not in _ALLOWED_MODES:
        raise ConfigError("file mode", oct(mode), "0o600 or 0o640")
    return mode


def open_log_file(path: str, mode: int, flags: int = _OPEN_FLAGS) -> tuple[int, bool]:
    """Open *path* for appending, creating it with exactly *mode* if it does not exist.

    The umask can only remove permission bits, so a new file is never wider than *mode*; if
    the umask made it narrower, ``fchmod`` widens it to *mode* (at most 0o640) on the open
    descriptor, which leaves no window in which it is wider than asked. The process umask is
    not touched: changing it is not thread-safe.

    Returns:
        The descriptor, and whether this call created the file.

    Raises:
        OSError: ``ELOOP`` for a symlink at *path*, and the usual others.
    """
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return os.open(path, flags), False
    try:
        if os.fstat(fd).st_mode & 0o777 != mode:
            os.fchmod(fd, mode)
    except OSError:
        os.close(fd)
        raise
    return fd, True


class FileSink(JsonLinesSink):
    """Append JSON lines to *path*, creating parent directories as needed.

    Args:
        path: the log file.
        renderer: the JSON renderer.
        mode: ``0o600`` (default) or ``0o640``, for the file and its lock file.
        **options: the buffering options of :class:`~servicelog.sinks.base.BufferedSink`.

    Raises:
        ConfigError: for a mode other than 0o600/0o640.
        OSError: ``ELOOP`` when *path* is a symlink. Other faults at start (a read-only or
            missing directory) do not raise: they are reported, and every batch tries again.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        renderer: JsonRenderer,
        *,
        mode: int = 0o600,
        **options: Any,
    ) -> None:
        self.mode = check_mode(mode)
        self.path = os.path.abspath(os.fspath(path))
        self.name = f"file:{self.path}"
        self.directory, self.basename = os.path.split(self.path)
        self.lock_path = os.path.join(self.directory, f".{self.basename}.lock")
        self._fd: int | None = None
        self._ino = -1
        self._end = -1  # where our last write ended: the file ends in "\n" there
        self._links = 1  # the open file's names (st_nlink) when last judged
        self._lock_fd: int | None = None
        self._lock_ino = -1
        self._released = False
        try:
            before = _file_state(self.path)
            if self._lock(wait=LOCK_WAIT_AT_START) != _LOCK_TIMED_OUT:
                try:
                    self._active()
                finally:
                    self._unlock()
            else:
                # Other processes writing flat out take the lock back between their batches
                # faster than a poll can win it: that is no stuck holder (the file moved).
                self._refuse_symlink(stuck=_file_state(self.path) == before)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self._close_fds()
                raise
            _errors.report(f"sink {self.name}", exc)
        super().__init__(renderer, **options)

    def _refuse_symlink(self, stuck: bool = True) -> None:
        """The lock was not had at start: another process holds it (*stuck*: a batch on a hung
        disk, a stopped process, reported), or other processes keep taking it (the file moved
        meanwhile: not reported). The file is opened by the writer thread once it gets the
        lock, not here, where waiting would stall the application's start. A planted symlink is
        still refused at once.

        Raises:
            OSError: ``ELOOP`` when *path* is a symlink.
        """
        if stuck:
            _errors.report(
                f"sink {self.name} lock",
                TimeoutError(
                    errno.ETIMEDOUT,
                    f"another process held the lock for {LOCK_WAIT_AT_START:.0f}s at start; "
                    "records wait in the buffer until it is released",
                    self.lock_path,
                ),
            )
        try:
            if stat.S_ISLNK(os.lstat(self.path).st_mode):
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), self.path)
        except FileNotFoundError:
            pass

    # --- the lock ---------------------------------------------------------------------------
    def _lock(self, wait: float | None = None) -> int:
        """Take the exclusive lock, opening the lock file (and its directory) if needed.

        The lock file is not checked against its path here: :meth:`_active` does it whenever
        the log file at the path is not the one we have open, which is the case after anything
        that could have replaced the lock file (a deleted directory); the common batch saves a
        system call.

        Args:
            wait: the longest to wait for the lock, in seconds; ``None``: as long as it takes
                (the writer thread's way: a caller never waits on it).

        Returns:
            The lock file's descriptor; -1 without a lock file (see below), or
            ``_LOCK_TIMED_OUT`` if *wait* ran out (the lock is not held).
        """
        import fcntl  # on use: importing servicelog stays cheap for stdout-only services

        if self._lock_fd is None:
            try:
                try:
                    fd, _created = open_log_file(self.lock_path, self.mode, _LOCK_FLAGS)
                except FileNotFoundError:
                    _make_dirs(self.directory, 0o700 if self.mode == 0o600 else 0o750)
                    fd, _created = open_log_file(self.lock_path, self.mode, _LOCK_FLAGS)
            except PermissionError as exc:
                # A directory we may not create files in, around a log file we may write (a
                # pre-created /var/log/app.jsonl): write on without the cross-process lock
                # (one process is still safe) rather than lose everything; say so.
                _errors.report(f"sink {self.name} lock file", exc)
                return -1
            self._lock_fd, self._lock_ino = fd, os.fstat(fd).st_ino
        if wait is None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            return self._lock_fd
        # flock(2) has no timeout: poll (a batch holds the lock for milliseconds).
        deadline = time.monotonic() + wait
        pause = 0.001
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self._lock_fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return _LOCK_TIMED_OUT
                time.sleep(pause)
                # (Not longer: writers busy on other processes let go of it between batches
                # for well under a millisecond.)
                pause = min(pause * 2, 0.005)

    def _relock_if_stale(self) -> None:
        """A lock on a lock file that was deleted (with its directory, say) excludes no one:
        if the lock file at the path is another, lock that one instead."""
        if self._lock_fd is None:
            return  # running without a lock file (see _lock)
        for _ in range(3):
            try:
                if os.stat(self.lock_path, follow_symlinks=False).st_ino == self._lock_ino:
                    return
            except FileNotFoundError:
                pass
            self._close_lock()
            self._lock()
        raise OSError(errno.EAGAIN, "the lock file keeps changing", self.lock_path)

    def _unlock(self) -> None:
        import fcntl

        if self._lock_fd is not None:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            except OSError:
                self._close_lock()

    def _close_lock(self) -> None:
        if self._lock_fd is not None:
            try:
                os.close(self._lock_fd)
            except OSError:
                pass
            self._lock_fd, self._lock_ino = None, -1

    # --- the log file (call with the lock held) -----------------------------------------------
    def _active(self) -> tuple[int, int]:
        """The descriptor of the file now at ``path`` and its size, reopening if it changed."""
        for _ in range(3):
            try:
                st = os.stat(self.path, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if self._fd is not None and st is not None and st.st_ino == self._ino:
                if st.st_nlink == self._links:
                    return self._fd, st.st_size
                # A name more or less for it: another process's rotation that crashed between
                # its link() and unlink() leaves the file open here with two (judged once per
                # change: a backup's hard link stays).
                self._links = st.st_nlink
                if self._opened(self._fd, False, st):
                    return self._fd, st.st_size
                continue
            # Deleted, renamed by logrotate, rotated by another process, or not open yet.
            self._relock_if_stale()
            self._close_file()
            fd, created = open_log_file(self.path, self.mode)
            st = os.fstat(fd)
            self._fd, self._ino, self._end, self._links = fd, st.st_ino, -1, st.st_nlink
            if self._opened(fd, created, st):
                return fd, st.st_size
        raise OSError(errno.EAGAIN, "the log file keeps changing", self.path)

    def _opened(self, fd: int, created: bool, st: os.stat_result) -> bool:
        """Hook: a log file was opened (``created`` by us, or found); ``False`` to reopen."""
        return True

    def _close_file(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd, self._ino, self._end = None, -1, -1

    def _append(self, fd: int, size: int, data: bytes) -> int:
        """Append whole lines; return the new size. Call with the lock held.

        Raises:
            PartialWrite: carrying how many lines of *data* reached the file.
        """
        prefix = b""
        if size and size != self._end and os.pread(fd, 1, size - 1) != b"\n":
            # A torn last line (a writer was killed mid-write): start a fresh line.
            prefix = b"\n"
        payload = prefix + data if prefix else data
        view = memoryview(payload)
        done = 0
        try:
            # One write(2) normally takes the whole batch; a short one (a full disk) is
            # continued, and we hold the lock, so no other writer can interleave.
            while done < len(payload):
                done += os.write(fd, view[done:])
        except OSError as exc:
            self._end = -1
            written = payload.count(b"\n", 0, done) - (1 if prefix and done else 0)
            raise PartialWrite(written, exc) from exc
        finally:
            view.release()
        self._end = size + len(payload)
        return self._end

    # --- BufferedSink -------------------------------------------------------------------------
    def write_batch(self, data: bytes) -> None:
        if self._released:
            raise OSError(errno.EBADF, "the sink is closed", self.path)
        try:
            self._lock()
        except OSError:
            self._close_fds()  # try everything afresh on the next batch
            raise
        try:
            self._write_locked(data)
        except OSError:
            self._close_file()
            raise
        finally:
            self._unlock()

    def _write_locked(self, data: bytes) -> None:
        fd, size = self._active()
        self._append(fd, size, data)

    def release(self) -> None:
        self._released = True
        self._close_fds()

    def _close_fds(self) -> None:
        self._close_file()
        self._close_lock()

    def _after_fork_in_child(self) -> None:
        # Our descriptors share their open file descriptions with the parent's, and a flock
        # belongs to the description: the child must have its own lock. Close (never unlock:
        # that would release the parent's lock) and reopen on the first batch.
        self._close_fds()
        super()._after_fork_in_child()


_LOCK_FLAGS = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW

#: The longest, in seconds, a new sink waits at start for the lock another process holds.
LOCK_WAIT_AT_START = 1.0
_LOCK_TIMED_OUT = -2


def _file_state(path: str) -> tuple[int, int, int] | None:
    """The inode, size and change time of *path*, or ``None``: whether a file moved."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _make_dirs(directory: str, mode: int) -> None:
    """``os.makedirs`` with *mode* for every level it creates (it gives the intermediate ones
    the default 0o777 minus the umask, usually 0755). A directory the umask made narrower is
    widened to *mode*, as a new file is (:func:`open_log_file`): under umask 077 a 0o750
    directory was 0o700, and its 0o640 files out of the group's reach."""
    parent = os.path.dirname(directory)
    if parent != directory and not os.path.isdir(parent):
        _make_dirs(parent, mode)
    try:
        os.mkdir(directory, mode)
    except FileExistsError:
        return
    # On the directory itself, never through a symlink put in its place meanwhile.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != mode:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)
