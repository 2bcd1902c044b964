"""The log record: a plain ``dict`` with Elastic Common Schema (ECS) dotted keys.

The JSON line users read is the public contract, so its field names live here, in one place.
Key order is fixed: ``@timestamp``, ``log.level``, ``message`` first (the ecs-logging spec
requires it), then the logger, thread and call site, the bound context, the call's own fields,
the error fields, and last the static fields (``ecs.version``, ``service.*``,
``event.dataset``, ``process.pid``). The static fields are not stored in each record dict: JSON
sinks append them pre-serialised (see ``Pipeline.static``).

The helpers here are used by every front-end (servicelog's own logger, the stdlib bridge,
structlog, loguru, warnings and the exception hooks), so a record looks the same whichever way
it came in.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping
from types import CodeType, TracebackType

__all__ = [
    "ECS_VERSION",
    "RESERVED_KEYS",
    "Record",
    "add_exception",
    "add_origin",
    "format_timestamp",
    "thread_name",
]

TYPE_CHECKING = False  # typing is imported only by type checkers: it costs ~8 ms at import

if TYPE_CHECKING:
    from typing import Any, TypeAlias

    Record: TypeAlias = dict[str, Any]
    #: What ``exc_info=`` accepts, as in the standard library.
    ExcInfo: TypeAlias = (
        BaseException
        | tuple[type[BaseException], BaseException, TracebackType | None]
        | tuple[None, None, None]
        | bool
        | None
    )
else:
    Record = dict
    ExcInfo = object

#: The ECS version our field names follow.
ECS_VERSION = "8.11.0"

TIMESTAMP = "@timestamp"
LEVEL = "log.level"
MESSAGE = "message"
LOGGER = "log.logger"
ORIGIN_FILE = "log.origin.file.name"
ORIGIN_LINE = "log.origin.file.line"
ORIGIN_FUNCTION = "log.origin.function"
THREAD = "process.thread.name"
ERROR_TYPE = "error.type"
ERROR_MESSAGE = "error.message"
ERROR_STACK = "error.stack_trace"
#: Records of the performance channel carry this key, so a sink can route them.
CHANNEL = "servicelog.channel"
#: How many fields a record lost: to the redaction policy's ``max_items``, or to the line cap.
DROPPED_FIELDS = "log.dropped_fields"

#: Keys a call's own fields may not overwrite; a clashing field is kept as ``fields.<key>``.
RESERVED_KEYS = frozenset(
    {
        TIMESTAMP,
        LEVEL,
        MESSAGE,
        "ecs.version",
        LOGGER,
        # Static fields, appended to every JSON line by the sinks.
        "service.name",
        "service.version",
        "service.environment",
        "event.dataset",
        "process.pid",
        # ECS object roots: a plain value here would clash with their dotted children
        # (``error="x"`` next to ``error.type``), which Elasticsearch rejects.
        "log",
        "error",
        "service",
        "process",
        "ecs",
        "event",
    }
)

# --- time -------------------------------------------------------------------------------------
# An aware datetime.isoformat() costs ~0.8 us per record (see the research note); the second is
# formatted once and cached, the microseconds appended. A tuple swap keeps it thread-safe.
_DIGITS = tuple(f"{i:03d}" for i in range(1000))
_ts_cache: list[tuple[int, int, str]] = [(0, -1, "")]


def format_timestamp(ns: int) -> str:
    """Format nanoseconds since the epoch as RFC 3339 UTC with microseconds."""
    start, end, prefix = _ts_cache[0]
    if not start <= ns < end:
        sec = ns // 1_000_000_000
        start, end = sec * 1_000_000_000, (sec + 1) * 1_000_000_000
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
        _ts_cache[0] = (start, end, prefix)
    us = (ns - start) // 1000
    return f"{prefix}{_DIGITS[us // 1000]}{_DIGITS[us % 1000]}Z"


# --- thread name ------------------------------------------------------------------------------
_tls = threading.local()


def thread_name() -> str:
    """The current thread's name, cached per thread (``current_thread().name`` is ~3x slower)."""
    try:
        return _tls.name  # type: ignore[no-any-return]
    except AttributeError:
        name = _tls.name = threading.current_thread().name
        return name


# --- call site --------------------------------------------------------------------------------
_origin_cache: dict[CodeType, tuple[str, str]] = {}


def add_origin(record: Record, frame: Any) -> None:
    """Add ``log.origin.*`` from a frame; file basenames are cached per code object."""
    code = frame.f_code
    names = _origin_cache.get(code)
    if names is None:
        names = (os.path.basename(code.co_filename), code.co_name)
        if len(_origin_cache) < 10_000:
            _origin_cache[code] = names
    record[ORIGIN_FILE] = names[0]
    record[ORIGIN_LINE] = frame.f_lineno
    record[ORIGIN_FUNCTION] = names[1]


# --- exceptions -------------------------------------------------------------------------------
def _exception_of(exc_info: ExcInfo) -> BaseException | None:
    if exc_info is None or exc_info is False:
        return None
    if isinstance(exc_info, BaseException):
        return exc_info
    if exc_info is True:
        return sys.exc_info()[1]
    return exc_info[1]


def type_name(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    if module in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def safe_str(value: object) -> str:
    """``str(value)`` that never raises."""
    try:
        return str(value)
    except Exception as exc:  # a __str__ that raises must not break logging
        return f"<unprintable {type(value).__name__}: str() raised {type(exc).__name__}>"


def dataclass_fields(value: Any) -> dict[str, Any]:
    """What orjson writes for a dataclass instance: its ``__dict__`` (so attributes set in
    ``__post_init__`` too) unless the class has ``__slots__``, then its fields; names starting
    with "_" never (orjson's rule). The dataclasses module is loaded: an instance exists."""
    attrs = getattr(value, "__dict__", None)
    if type(attrs) is dict and "__slots__" not in vars(type(value)):
        items = list(attrs.items())
    else:
        dataclasses = sys.modules["dataclasses"]
        items = [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
    return {k: v for k, v in items if not (type(k) is str and k.startswith("_"))}


def items_cut(size: int) -> str:
    """The marker a whole container of *size* items is written as once a record's count of
    container items ran out (redaction's ``max_total_items``, the JSON renderer's count). Not
    ``"<N more items>"``, which ends a container cut in its middle: read as an item of its
    parent, that would miscount the parent."""
    return f"<{size} item cut>" if size == 1 else f"<{size} items cut>"


#: How deep the reprs servicelog makes of a record's values may nest in one thread: a
#: ``__repr__`` that logs its own object makes servicelog take its repr again, from inside the
#: first, at each level twice (the JSON renderer's fast and safe paths, or redaction and the
#: renderer), so the work doubled per level: at the default recursion limit it never ended.
MAX_NESTED_REPRS = 4
_nesting = threading.local()


def guarded_repr(value: object) -> str:
    """``repr(value)``, made at most :data:`MAX_NESTED_REPRS` deep in a thread.

    Raises:
        RecursionError: when this many reprs servicelog makes are under way already (the
            callers write their marker for an object whose repr raised).
    """
    depth = getattr(_nesting, "depth", 0)
    if depth >= MAX_NESTED_REPRS:
        raise RecursionError("a __repr__ that logs, nested too deep")
    _nesting.depth = depth + 1
    try:
        return repr(value)
    finally:
        _nesting.depth = depth


def safe_repr(value: object, limit: int | None = None) -> str:
    """``repr(value)`` that never raises, cut to *limit* characters (marked) if given."""
    try:
        text = guarded_repr(value)
    except Exception as exc:  # a __repr__ that raises (or returns something else)
        return f"<unrepresentable {type(value).__qualname__}: repr() raised {type(exc).__name__}>"
    if limit is not None and len(text) > limit:
        return f"{text[:limit]}...<{len(text) - limit} more chars>"
    return text


def add_exception(record: Record, exc_info: ExcInfo, *, show_locals: bool = False) -> None:
    """Add ``error.type``, ``error.message`` and ``error.stack_trace`` for *exc_info*.

    The stack trace is the standard library's rendering, so chained causes (``raise ... from``),
    implicit context, ``ExceptionGroup`` sub-exceptions and ``add_note()`` notes are all in it.
    Without *show_locals* (the production profile) it also leaves out the ``^^^^`` position
    markers: on Python 3.11 drawing them parses each frame's source line with ``ast``, measured
    as a fifth of the CPU of a request that fails (``bench/http_bench.py``, /boom).
    """
    exc = _exception_of(exc_info)
    if exc is None:
        return
    import traceback

    record[ERROR_TYPE] = type_name(exc)
    record[ERROR_MESSAGE] = safe_str(exc)
    try:
        te = traceback.TracebackException.from_exception(exc, capture_locals=show_locals)
        _trim_frames(te, set(), show_locals)
        record[ERROR_STACK] = "".join(te.format())
    except Exception:  # pragma: no cover - the stdlib formatter guards reprs itself
        record[ERROR_STACK] = f"{record[ERROR_TYPE]}: {record[ERROR_MESSAGE]}"


_LIBRARY_DIRS: tuple[str, ...] = ()


def _library_dirs() -> tuple[str, ...]:
    """The standard library, site-packages and servicelog itself: their locals are noise."""
    global _LIBRARY_DIRS
    if not _LIBRARY_DIRS:
        import sysconfig

        paths = sysconfig.get_paths()
        dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
        dirs.add(os.path.dirname(os.path.abspath(__file__)))
        _LIBRARY_DIRS = tuple(sorted(d.rstrip(os.sep) + os.sep for d in dirs))
    return _LIBRARY_DIRS


def _trim_frames(te: Any, seen: set[int], show_locals: bool) -> None:
    """With locals: keep them readable (none for module-level or library frames, no dunders).
    Without: drop column positions, so no caret markers are computed or drawn."""
    if id(te) in seen:
        return
    seen.add(id(te))
    for frame in te.stack:
        if not show_locals:
            frame.colno = frame.end_colno = None
        elif frame.locals is not None:
            if frame.name == "<module>" or frame.filename.startswith(_library_dirs()):
                frame.locals = None
            else:
                frame.locals = {k: v for k, v in frame.locals.items() if not k.startswith("__")}
    for child in (te.__cause__, te.__context__, *(getattr(te, "exceptions", None) or ())):
        if child is not None:
            _trim_frames(child, seen, show_locals)


def add_stack(record: Record, frame: Any) -> None:
    """Add the current stack (``stack_info=True``) as ``error.stack_trace``-like text."""
    import traceback

    record["log.origin.stack"] = "".join(traceback.format_stack(frame))


def safe_keys(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Return *fields* with reserved keys renamed ``fields.<key>`` (done once, at bind time)."""
    if RESERVED_KEYS.isdisjoint(fields):
        return dict(fields)
    return {f"fields.{k}" if k in RESERVED_KEYS else k: v for k, v in fields.items()}


def merge_fields(record: Record, fields: Mapping[str, Any]) -> None:
    """Merge a call's fields; a field whose key is reserved is kept as ``fields.<key>``."""
    if RESERVED_KEYS.isdisjoint(fields):
        record.update(fields)
        return
    for key, value in fields.items():
        record[f"fields.{key}" if key in RESERVED_KEYS else key] = value
