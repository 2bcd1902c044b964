"""``configure()`` and ``reset()``: the only place that changes servicelog's global state.

``configure()`` is idempotent: calling it again replaces the previous configuration whole (the
old sinks are flushed and closed, unless the new configuration uses them too; hooks and
handlers are not installed twice). The new sinks are built first: if that fails, the previous
configuration stays in force, untouched.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping, Sequence

from . import _errors
from .context import _local
from .exceptions import ConfigError
from .logger import Runtime, current_runtime, install_runtime
from .pipeline import Pipeline, Processor, Route, run_all_deferred
from .record import ECS_VERSION

TYPE_CHECKING = False  # typing is imported only by type checkers: it costs ~8 ms at import

if TYPE_CHECKING:
    from typing import Any, Literal

    from .options import CaptureOptions, Settings
    from .ratelimit import RateLimit
    from .redaction import RedactionPolicy
    from .sinks.base import Sink

__all__ = ["configure", "flush", "reset", "settings", "stats"]

_lock = threading.RLock()
_settings: Settings | None = None
_initial_runtime = current_runtime()
_installed: set[str] = set()


def configure(
    *,
    service: str | None = None,
    version: str | None = None,
    profile: str | None = None,
    level: int | str | None = None,
    levels: Mapping[str, int | str] | str | None = None,
    format: str | None = None,
    stream: str | None = None,
    file: str | os.PathLike[str] | None = None,
    color: bool | None = None,
    callsite: bool | None = None,
    show_locals: bool | None = None,
    max_line_bytes: int | None = None,
    capture: CaptureOptions | Literal[False] | None = None,
    sinks: Sequence[Route | Sink] = (),
    processors: Sequence[Processor] = (),
    strict: bool | None = None,
    redaction: RedactionPolicy | bool | None = None,
    rate_limit: RateLimit | bool | None = None,
) -> Settings:
    """Configure logging for the whole process. Safe to call again; the last call wins.

    Args:
        service: ``service.name`` on every record (``SERVICELOG_SERVICE``; default ``"app"``).
        version: ``service.version``.
        profile: ``"development"`` (DEBUG, readable console), ``"production"`` (INFO, ECS JSON
            on stdout, no locals in tracebacks) or ``"debug"`` (everything, with call sites).
            Default: ``SERVICELOG_ENV``, else ``"development"``.
        level: the default level (name or number).
        levels: per-logger levels by dotted prefix, e.g. ``{"sqlalchemy.engine": "WARNING"}``.
        format: ``"json"`` or ``"console"``.
        stream: ``"stdout"``, ``"stderr"`` or ``"none"``.
        file: also append JSON lines to this file.
        color: force console colours on or off (default: ``FORCE_COLOR``/``NO_COLOR``/TTY).
        callsite: add ``log.origin.*`` to each record.
        show_locals: local variables in tracebacks (refused with the production profile).
        max_line_bytes: the longest JSON line (default 16 KiB).
        capture: which front-ends to take over (stdlib, warnings, excepthooks, structlog, loguru);
            ``False``: none.
        sinks: more sinks, or :class:`~servicelog.pipeline.Route` objects with a level/filter.
        processors: functions ``(record, levelno) -> record | None`` run before the sinks.
        strict: raise servicelog's own internal errors (default: only while pytest runs a test).
        redaction: a :class:`~servicelog.redaction.RedactionPolicy`, ``True`` (the default
            policy) or ``False`` (off). Default: ``SERVICELOG_REDACTION``, else on, with the
            PII patterns only in the production profile. It runs before *processors*.
        rate_limit: a :class:`~servicelog.ratelimit.RateLimit`, ``True`` or ``False``.
            Default: on in the production profile only (WARNING and up). It runs first.

    Returns:
        The :class:`~servicelog.options.Settings` now in force.

    Raises:
        ConfigError: naming the option, the value received and what is allowed.
        OSError: ``ELOOP`` when *file* is a symlink. In both cases the configuration in force
            before the call stays in force.
    """
    args = dict(
        service=service,
        version=version,
        profile=profile,
        level=level,
        levels=levels,
        format=format,
        stream=stream,
        file=file,
        color=color,
        callsite=callsite,
        show_locals=show_locals,
        max_line_bytes=max_line_bytes,
        capture=capture,
        strict=strict,
        redaction=redaction,
        rate_limit=rate_limit,
    )
    from .options import build_settings

    new = build_settings(args)  # validate everything before touching any state
    processors = tuple(processors)  # once: a generator would be used up by the check
    for processor in processors:
        if not callable(processor):
            raise ConfigError("processors", processor, "callables (record, levelno) -> record")
    extra_routes = [_as_route(s) for s in sinks]
    global _settings
    with _lock:
        # Build the new sinks before touching the old ones: a sink that fails to start (a
        # symlink at the file's path) leaves the configuration in force as it was.
        routes = _build_routes(new) + extra_routes
        _errors.set_strict(new.strict)
        static: dict[str, Any] = {"ecs.version": ECS_VERSION, "service.name": new.service.name}
        if new.service.version:
            static["service.version"] = new.service.version
        static["service.environment"] = new.service.environment
        static["event.dataset"] = f"{new.service.name}.log"
        static["process.pid"] = os.getpid()
        # Rate limit first (a dropped record costs nothing more), then redaction, so summaries
        # and the user's processors only ever see redacted records. Bound methods: calling one
        # is ~60 ns cheaper per record than calling an object through its __call__ slot.
        builtin = [p.__call__ for p in (new.rate_limit, new.redaction) if p is not None]
        pipeline = Pipeline(routes, [*builtin, *processors], static)
        runtime = Runtime(
            pipeline,
            level=new.levels.level,
            levels=dict(new.levels.levels),
            callsite=new.record.callsite,
            show_locals=new.record.show_locals,
        )
        old = _uninstall()
        install_runtime(runtime)
        _install_frontends(new)
        _settings = new
        # Closed once the new configuration is in force (records logged meanwhile reach a
        # working sink); sinks the new configuration uses again stay open.
        _close_sinks(old, keep=routes)
        _flush_before_exit_drain()
    return new


def _flush_before_exit_drain() -> None:
    """Make sure records held upstream of the sinks reach them before the sinks' drain at exit
    (and in a multiprocessing child, which drains through the same function).

    This used to be an ``atexit`` registration at import: ``atexit`` runs last-registered
    first, and the sinks module registers its drain when it is first imported, after this
    one, so the rate limit's "suppressed N" summaries reached the sinks after their final
    drain and were lost. The sinks' drain now runs this flush itself, first.
    """
    from .sinks import base

    if _flush_pending not in base.before_exit_drain:
        base.before_exit_drain.append(_flush_pending)


def _as_route(item: object) -> Route:
    from .sinks.base import Sink

    route = item if isinstance(item, Route) else Route(item) if isinstance(item, Sink) else None
    if route is None:
        raise ConfigError("sinks", item, "Sink objects or servicelog.Route(sink, level, filter)")
    if getattr(route.sink, "_closed", False) is True:
        # It would drop every record ("closed"): say so now rather than lose them quietly.
        raise ConfigError(
            "sinks",
            route.sink,
            "an open sink (this one was closed, by reset() or a configure() that did not "
            "use it; create a new one)",
        )
    return route


def _build_routes(settings: Settings) -> list[Route]:
    # Sinks and renderers load here, not at import: orjson's own import costs ~11 ms.
    from .render.json import JsonRenderer
    from .sinks.file import FileSink
    from .sinks.stream import ConsoleSink, StreamSink, resolve_stream

    out = settings.output
    routes: list[Route] = []
    json_renderer = JsonRenderer(out.max_line_bytes)
    if out.stream != "none":
        stream = resolve_stream(out.stream)
        if out.format == "console":
            from .render.console import ConsoleRenderer, should_color

            color = should_color(stream, out.color)
            routes.append(Route(ConsoleSink(ConsoleRenderer(color=color), stream)))
        else:
            routes.append(Route(StreamSink(json_renderer, stream)))
    if out.file is not None:
        try:
            routes.append(Route(FileSink(out.file, json_renderer)))
        except BaseException:
            for route in routes:  # the stream sink built above: stop its writer thread
                route.sink.close(0)
            raise
    return routes


def _wanted(flag: bool | None, module: str) -> bool:
    if flag is not None:
        return flag
    import importlib.util

    return module in sys.modules or importlib.util.find_spec(module) is not None


def _install_frontends(settings: Settings) -> None:
    cap = settings.capture
    level, levels = settings.levels.level, dict(settings.levels.levels)
    if cap.stdlib:
        from .frontends import stdlib

        stdlib.install(level, levels, callsite=settings.record.callsite)
        _installed.add("stdlib")
    if cap.warnings or cap.excepthooks:
        from .frontends import hooks

        hooks.install(warnings_=cap.warnings, excepthooks=cap.excepthooks)
        _installed.add("hooks")
    if _wanted(cap.structlog, "structlog"):
        from .frontends import structlog as sl

        sl.install(level)
        _installed.add("structlog")
    if _wanted(cap.loguru, "loguru"):
        from .frontends import loguru as lg

        lg.install(level)
        _installed.add("loguru")


def _flush_pending(blocking: bool = True) -> None:
    """Emit deferred records (the access log's bursts), then send pending "suppressed N"
    summaries down the pipeline now (teardown, flush, exit; ``blocking=False`` from a signal
    handler, which must not wait for a lock its own thread may hold)."""
    run_all_deferred()  # (its lock is re-entrant)
    from .ratelimit import flush_all

    flush_all(blocking)  # rate_limit=, and limits passed in processors= as well


def _uninstall() -> Runtime:
    """Emit what is held upstream, undo every front-end, and return the runtime in force (its
    sinks still open)."""
    _flush_pending()
    for name in sorted(_installed):
        if name == "stdlib":
            from .frontends import stdlib

            stdlib.reset()
        elif name == "hooks":
            from .frontends import hooks

            hooks.reset()
        elif name == "structlog":
            from .frontends import structlog as sl

            sl.reset()
        elif name == "loguru":
            from .frontends import loguru as lg

            lg.reset()
    _installed.clear()
    return current_runtime()


def _close_sinks(runtime: Runtime, keep: Sequence[Route] = ()) -> None:
    """Drain and close the sinks of *runtime*, except those *keep* routes to."""
    if runtime is not _initial_runtime:
        runtime.pipeline.close(keep=[route.sink for route in keep])


def reset() -> None:
    """Undo :func:`configure`: flush and close sinks, restore stdlib handlers, hooks, structlog
    and loguru, clear the current context and the error counters. For tests."""
    global _settings
    with _lock:
        old = _uninstall()
        install_runtime(_initial_runtime)
        _close_sinks(old)
        _settings = None
        _errors.set_strict(None)
        _errors.clear()
        _local.set({})


def settings() -> Settings | None:
    """The configuration in force, or ``None`` before :func:`configure`."""
    return _settings


def flush() -> None:
    """Write out everything buffered in every sink now (and pending rate-limit summaries)."""
    _flush_pending()
    current_runtime().pipeline.flush()


#: The sinks a server's lifespan end set to write on the caller (:func:`drain_for_shutdown`),
#: for :func:`resume_writers` when a lifespan starts again (any application's).
_switched: list[Any] = []


def drain_for_shutdown() -> None:
    """The end of a server's lifespan: :func:`~servicelog.sinks.base.drain_to_caller` (what
    is logged afterwards is written at once), then the other sinks' ``flush()``."""
    from .sinks.base import BufferedSink, drain_to_caller

    _switched.extend(drain_to_caller())
    for route in current_runtime().pipeline.routes:
        if not isinstance(route.sink, BufferedSink):
            try:
                route.sink.flush()
            except Exception as exc:
                _errors.report("flush", exc)


def resume_writers() -> None:
    """A lifespan starts (again, in this process: a test client, an embedded server): the
    sinks an earlier lifespan's end switched hand the writing back to their writer threads."""
    from .sinks.base import write_by_writer

    switched = list(_switched)
    _switched.clear()
    write_by_writer(switched)


def stats() -> dict[str, Any]:
    """Counters: internal errors by stage, records lost, and per sink what it was given,
    wrote, dropped (by reason) and still holds (``produced = written + dropped + queued``)."""
    run_all_deferred()  # a deferred record counts once it reaches the sinks
    sinks: dict[str, dict[str, Any]] = {}
    for route in current_runtime().pipeline.routes:
        sink: Any = route.sink
        counters = getattr(sink, "counters", None)
        if callable(counters):
            sinks[sink.name] = counters()
    out = _errors.snapshot()  # after the sinks' counters: they add their drops to "lost"
    out["sinks"] = sinks
    return out


def _refresh_pid_after_fork() -> None:
    current_runtime().pipeline.update_static(**{"process.pid": os.getpid()})


os.register_at_fork(after_in_child=_refresh_pid_after_fork)
