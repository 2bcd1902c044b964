"""Sinks that write to a stream: JSON lines to stdout/stderr, or the readable dev console."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, BinaryIO, Literal, TextIO

from .. import _errors
from ..record import Record
from ..render.json import JsonRenderer
from .base import JsonLinesSink

__all__ = ["ConsoleSink", "StreamSink", "resolve_stream"]


def resolve_stream(stream: Literal["stdout", "stderr"] | TextIO) -> TextIO:
    if stream == "stdout":
        return sys.stdout
    if stream == "stderr":
        return sys.stderr
    return stream


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
        stream: Literal["stdout", "stderr"] | TextIO = "stdout",
        **options: Any,
    ) -> None:
        self.stream = resolve_stream(stream)
        self.name = f"stream:{getattr(self.stream, 'name', 'stream')}"
        self._binary: BinaryIO | None = getattr(self.stream, "buffer", None)
        super().__init__(renderer, interactive=_isatty(self.stream), **options)

    def write_batch(self, data: bytes) -> None:
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
        stream: Literal["stdout", "stderr"] | TextIO = "stderr",
    ) -> None:
        self.renderer = renderer
        self.stream = resolve_stream(stream)
        self.name = f"console:{getattr(self.stream, 'name', 'stream')}"

    def emit(self, record: Record, levelno: int) -> None:
        text = self.renderer(record)
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError) as exc:  # closed pipe, closed file
            _errors.report(f"sink {self.name}", OSError(str(exc)), lost=1)
        except UnicodeEncodeError:
            # A terminal whose encoding cannot show some characters: escape them, not fail.
            enc = getattr(self.stream, "encoding", None) or "ascii"
            self.stream.write(text.encode(enc, "backslashreplace").decode(enc))
            self.stream.flush()

    def flush(self) -> None:
        try:
            self.stream.flush()
        except Exception:
            pass

    def close(self, timeout: float | None = None) -> None:
        self.flush()
