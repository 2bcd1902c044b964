"""Sinks: where rendered records go.

A sink receives records that are complete and already redacted; it renders them with its own
renderer and writes them. ``emit`` runs on the caller's thread and must be cheap and must not
raise; slow sinks buffer and write in batches (see :class:`BufferedSink`).

The file set (:class:`RotatingFileSink`, :func:`file_set`) loads on first use: it costs
imports that a service logging to stdout never needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import BufferedSink, Sink, drain_all, install_signal_handlers
from .file import FileSink
from .memory import MemorySink
from .stream import ConsoleSink, StreamSink

if TYPE_CHECKING:
    from .rotating import FileSpec, RotatingFileSink, file_set, has_field

_LAZY = {"FileSpec", "RotatingFileSink", "file_set", "has_field"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'servicelog.sinks' has no attribute {name!r}")
    from . import rotating

    value = getattr(rotating, name)
    globals()[name] = value
    return value


__all__ = [
    "BufferedSink",
    "ConsoleSink",
    "FileSink",
    "FileSpec",
    "MemorySink",
    "RotatingFileSink",
    "Sink",
    "StreamSink",
    "drain_all",
    "file_set",
    "has_field",
    "install_signal_handlers",
]
