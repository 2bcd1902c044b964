"""Renderers turn a record into the bytes or text a sink writes."""

from __future__ import annotations

from .console import ConsoleRenderer
from .json import JsonRenderer

__all__ = ["ConsoleRenderer", "JsonRenderer"]
