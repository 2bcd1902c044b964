"""Sinks that write to a stream: JSON lines to stdout/stderr, or the readable dev console."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from typing import Any, BinaryIO, Literal, TextIO

from .. import _errors
from ..record import Record
from ..render.json import JsonRenderer
from .base import JsonLinesSink

__all__ = ["ConsoleSink", "StreamSink", "resolve_stream"]


#: The drop reason of a sink whose stream is ``None`` (``sys.stdout`` when descriptor 1 is closed).
NO_STREAM = "no stream"


def resolve_stream(stream: Literal["stdout", "stderr"] | TextIO | None) -> TextIO | None:
    """The stream named ``"stdout"``/``"stderr"`` (now), or *stream* itself.

    ``None`` when there is none: Python sets ``sys.stdout``/``sys.stderr`` to ``None`` when the
    process starts with that descriptor closed (``python app.py >&-``, some daemons).
    """
    if stream == "stdout":
        return sys.stdout
    if stream == "stderr":
        return sys.stderr
    return stream


def _stream_name(requested: str | TextIO | None, stream: TextIO | None) -> str:
    """The stream's name (``<stdout>``); for a missing one, ``<stdout>`` if asked for by
    name, else ``<none>``."""
    if stream is None:
        return f"<{requested}>" if isinstance(requested, str) else "<none>"
    return str(getattr(stream, "name", "stream"))


def _write(stream: TextIO, text: str) -> None:
    """Write *text* and flush it, so the line is out before the call returns."""
    stream.write(text)
    stream.flush()


def _isatty(stream: TextIO | BinaryIO) -> bool:
    try:
        return stream.isatty()
    except Exception:
        return False


class StreamSink(JsonLinesSink):
    """JSON lines to a stream (stdout by default: the twelve-factor way for containers).

    Lines are batched; on a terminal every line is written at once.
    """

    def __init__(
        self,
        renderer: JsonRenderer,
        stream: Literal["stdout", "stderr"] | TextIO | None = "stdout",
        **options: Any,
    ) -> None:
        self.stream = resolve_stream(stream)
        self.name = f"stream:{_stream_name(stream, self.stream)}"
        self._binary: BinaryIO | None = getattr(self.stream, "buffer", None)
        # Without a stream there is nothing for a writer thread to do: none is started.
        interactive = self.stream is None or _isatty(self.stream)
        super().__init__(renderer, interactive=interactive, **options)
        if self.stream is None:
            # Every record is dropped on arrival. Bound on the instance, so that the usual
            # emit (the hot path) keeps no check for this.
            self.emit = self._drop_record  # type: ignore[method-assign]

    def _drop_record(self, record: Record, levelno: int) -> None:
        """``emit`` without a stream: count the record as dropped (``"no stream"``).

        The first drop is reported on stderr (when there is one), later ones with the other
        drops, at most once a minute; the ``log.dropped`` summary is never written.
        """
        next(self._seq)  # counts as produced
        self._drop(1, NO_STREAM)

    def write_batch(self, data: bytes) -> None:
        if self.stream is None:  # only the log.dropped summary gets here: keep it pending
            raise OSError(errno.EBADF, "no stream")
        if self._binary is not None:
            try:
                self.stream.flush()  # keep order with text the app printed itself
            except Exception:
                pass
            self._binary.write(data)
            self._binary.flush()
        else:  # a text-only stream such as io.StringIO or pytest's capture
            self.stream.write(data.decode("utf-8"))
            self.stream.flush()


class ConsoleSink:
    """Readable text lines to a stream (stderr by default), written and flushed per record."""

    def __init__(
        self,
        renderer: Callable[[Record], str],
        stream: Literal["stdout", "stderr"] | TextIO | None = "stderr",
    ) -> None:
        self.renderer = renderer
        self.stream = resolve_stream(stream)
        self.name = f"console:{_stream_name(stream, self.stream)}"
        #: Records handed to :meth:`emit` so far (approximate if threads log at once).
        self.produced = 0

    def emit(self, record: Record, levelno: int) -> None:
        stream = self.stream
        if stream is None:  # descriptor closed at start: count it, say so (rate-limited)
            _errors.dropped(f"sink {self.name}", NO_STREAM, 1)
            return
        self.produced += 1
        text = self.renderer(record)
        try:
            _write(stream, text)
        except UnicodeEncodeError:  # a ValueError: caught before the handler below
            # A terminal whose encoding cannot show some characters: escape them, not fail.
            self._write_escaped(stream, text)
        except (OSError, ValueError) as exc:  # closed pipe, closed file
            _errors.report(f"sink {self.name}", OSError(str(exc)), lost=1)

    def _write_escaped(self, stream: TextIO, text: str) -> None:
        """Write *text* with what the stream's encoding lacks escaped (``\\u20ac``)."""
        try:
            encoding = getattr(stream, "encoding", None) or "ascii"
            _write(stream, text.encode(encoding, "backslashreplace").decode(encoding))
        except (OSError, ValueError, LookupError) as exc:  # LookupError: unknown encoding
            _errors.report(f"sink {self.name}", OSError(str(exc)), lost=1)

    def flush(self) -> None:
        if self.stream is None:
            return
        try:
            self.stream.flush()
        except Exception:
            pass

    def close(self, timeout: float | None = None) -> None:
        self.flush()
