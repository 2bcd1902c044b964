"""servicelog: production-grade logging, error handling and request tracing for ASGI services.

>>> import servicelog
>>> servicelog.configure(service="shop")          # profile from SERVICELOG_ENV
>>> log = servicelog.get_logger(__name__)
>>> with servicelog.bound_context(request_id="r-1", user_id=42):
...     log.info("order placed", order_id=7, total=12.5)

Importing this package is cheap and has no side effects: nothing is configured, patched or
started until :func:`configure` is called.
"""

from __future__ import annotations

from ._config import configure, flush, reset, settings, stats
from ._version import __version__
from .context import (
    bind,
    bound_context,
    get_context,
    run_in_executor,
    unbind,
)
from .exceptions import ConfigError, ServicelogError
from .levels import LogLevel
from .logger import Logger, get_logger
from .pipeline import Route
from .timing import log_execution_time

TYPE_CHECKING = False  # typing is imported only by type checkers: it costs ~8 ms at import

if TYPE_CHECKING:
    from typing import Any

    from ._executor import ContextThreadPoolExecutor
    from .options import CaptureOptions, Settings
    from .ratelimit import RateLimit
    from .reader import read_records
    from .redaction import RedactionPolicy
    from .sinks.base import install_signal_handlers

_LAZY = {
    "RateLimit": ".ratelimit",
    "RedactionPolicy": ".redaction",
    "read_records": ".reader",
    "install_signal_handlers": ".sinks.base",
    "CaptureOptions": ".options",
    "Settings": ".options",
    "ContextThreadPoolExecutor": "._executor",
}


def __getattr__(name: str) -> Any:
    # Names whose modules cost import time (dataclasses, concurrent.futures) load on first use.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'servicelog' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "CaptureOptions",
    "ConfigError",
    "ContextThreadPoolExecutor",
    "LogLevel",
    "Logger",
    "RateLimit",
    "RedactionPolicy",
    "Route",
    "ServicelogError",
    "Settings",
    "__version__",
    "bind",
    "bound_context",
    "configure",
    "flush",
    "get_context",
    "get_logger",
    "install_signal_handlers",
    "log_execution_time",
    "read_records",
    "reset",
    "run_in_executor",
    "settings",
    "stats",
    "unbind",
]
