"""Sinks: where rendered records go.

A sink receives records that are complete and already redacted; it renders them with its own
renderer and writes them. ``emit`` runs on the caller's thread and must be cheap and must not
raise; slow sinks buffer and write in batches (see :class:`BufferedSink`).
"""

from __future__ import annotations

from .base import BufferedSink, Sink
from .file import FileSink
from .memory import MemorySink
from .stream import ConsoleSink, StreamSink

__all__ = ["BufferedSink", "ConsoleSink", "FileSink", "MemorySink", "Sink", "StreamSink"]
