"""A plain append-only file of JSON lines.

Files are created ``0600`` (``0640`` allowed) with the mode given to ``open(2)`` itself, so
there is no window in which another user could open them, and never through a symlink
(``O_NOFOLLOW``): a pre-planted link is refused. Writes are whole batches of whole lines, with
``O_APPEND``, so lines from several processes never tear or interleave.
"""

from __future__ import annotations

import os

from ..exceptions import ConfigError
from ..render.json import JsonRenderer
from .base import JsonLinesSink

__all__ = ["FileSink"]

_ALLOWED_MODES = (0o600, 0o640)


class FileSink(JsonLinesSink):
    """Append JSON lines to *path*, creating parent directories as needed.

    Raises:
        ConfigError: for a mode other than 0o600/0o640.
        OSError: when the file cannot be opened (including a symlink at *path*).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        renderer: JsonRenderer,
        *,
        mode: int = 0o600,
        **options: float,
    ) -> None:
        if mode not in _ALLOWED_MODES:
            raise ConfigError("file mode", oct(mode), "0o600 or 0o640")
        self.path = os.fspath(path)
        self.name = f"file:{self.path}"
        self.mode = mode
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, mode=0o700, exist_ok=True)
        self._fd = self._open()
        super().__init__(renderer, **options)

    def _open(self) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        old = os.umask(0o077 if self.mode == 0o600 else 0o027)
        try:
            fd = os.open(self.path, flags, self.mode)
        finally:
            os.umask(old)
        # A file left by a crash may end in a torn line: start on a fresh line so no complete
        # record is ever glued to the fragment.
        size = os.fstat(fd).st_size
        if size:
            with open(self.path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    os.write(fd, b"\n")
        return fd

    def write_batch(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def release(self) -> None:
        try:
            os.close(self._fd)
        except OSError:
            pass
