"""Configuration options: small frozen dataclasses, profiles, and the environment.

``configure()`` combines them. Precedence, highest first: an argument passed to
``configure()``, then a ``SERVICELOG_*`` environment variable, then the profile's default. So
code fixes what must not change, and operators steer the rest (``SERVICELOG_LEVEL=DEBUG``)
without a redeploy.

=============================  ===============================================================
variable                       option
=============================  ===============================================================
``SERVICELOG_ENV``             profile: ``development`` (default), ``production``, ``debug``
``SERVICELOG_LEVEL``           level: ``TRACE`` ... ``CRITICAL`` or 0-50
``SERVICELOG_LEVELS``          per-logger levels: ``sqlalchemy.engine=WARNING,httpx=INFO``
``SERVICELOG_FORMAT``          ``json`` or ``console``
``SERVICELOG_STREAM``          ``stdout``, ``stderr`` or ``none``
``SERVICELOG_FILE``            also append JSON lines to this file
``SERVICELOG_SERVICE``         service name;  ``SERVICELOG_VERSION``: service version
``SERVICELOG_CALLSITE``        ``1``/``0``: add ``log.origin.*`` (file, line, function)
``SERVICELOG_MAX_LINE_BYTES``  the longest JSON line (1024 to 64 MiB)
``SERVICELOG_REDACTION``       ``1``/``0``: the default redaction policy on or off
=============================  ===============================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .exceptions import ConfigError
from .levels import parse_level

if TYPE_CHECKING:
    from .ratelimit import RateLimit
    from .redaction import RedactionPolicy

__all__ = [
    "PROFILES",
    "CaptureOptions",
    "LevelOptions",
    "OutputOptions",
    "RecordOptions",
    "ServiceOptions",
    "Settings",
]

Profile = Literal["development", "production", "debug"]
Format = Literal["json", "console"]
Stream = Literal["stdout", "stderr", "none"]


@dataclass(frozen=True)
class ServiceOptions:
    """Who is logging: ``service.name``, ``service.version``, ``service.environment``."""

    name: str = "app"
    version: str | None = None
    environment: str = "development"


@dataclass(frozen=True)
class LevelOptions:
    """The default level, and per-logger levels by dotted name prefix."""

    level: int = 20
    levels: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class OutputOptions:
    """Where records go and how they look.

    Attributes:
        format: ``"json"`` (ECS, one object per line) or ``"console"`` (readable, coloured).
        stream: ``"stdout"``, ``"stderr"`` or ``"none"``.
        file: also append JSON lines to this file (created ``0600``).
        color: force colours on or off; ``None`` follows ``FORCE_COLOR``/``NO_COLOR``/TTY.
        max_line_bytes: the longest JSON line; longer records are cut, marked ``truncated``.
    """

    format: Format = "console"
    stream: Stream = "stderr"
    file: Path | None = None
    color: bool | None = None
    max_line_bytes: int = 16384


@dataclass(frozen=True)
class RecordOptions:
    """What each record carries beyond the message and fields.

    Attributes:
        callsite: add ``log.origin.file.name``/``.line``/``log.origin.function``.
        show_locals: include local variables in tracebacks (never in production).
    """

    callsite: bool = True
    show_locals: bool = False


@dataclass(frozen=True)
class CaptureOptions:
    """Which other front-ends feed the pipeline. ``None`` means "if the library is installed"."""

    stdlib: bool = True
    warnings: bool = True
    excepthooks: bool = True
    structlog: bool | None = None
    loguru: bool | None = None


@dataclass(frozen=True)
class Settings:
    """The complete configuration in force (``servicelog.settings()`` returns it)."""

    profile: Profile
    service: ServiceOptions
    levels: LevelOptions
    output: OutputOptions
    record: RecordOptions
    capture: CaptureOptions
    strict: bool | None = None
    #: The redaction processor in force (``None``: off); see :mod:`servicelog.redaction`.
    redaction: RedactionPolicy | None = None
    #: The per-message rate limit in force (``None``: off); see :mod:`servicelog.ratelimit`.
    rate_limit: RateLimit | None = None


PROFILES: dict[str, dict[str, Any]] = {
    # The guide's LoguruConfig.setup: everything from DEBUG, readable, with call sites.
    "development": dict(
        level=10, format="console", stream="stderr", callsite=True, show_locals=True
    ),
    # The guide's setup_production_logging: INFO and up, JSON to stdout, no local variables.
    "production": dict(level=20, format="json", stream="stdout", callsite=False, show_locals=False),
    # The guide's enable_debug_mode: everything (TRACE), call sites, locals.
    "debug": dict(level=5, format="console", stream="stderr", callsite=True, show_locals=True),
}

_ENV = {
    "profile": "SERVICELOG_ENV",
    "level": "SERVICELOG_LEVEL",
    "levels": "SERVICELOG_LEVELS",
    "format": "SERVICELOG_FORMAT",
    "stream": "SERVICELOG_STREAM",
    "file": "SERVICELOG_FILE",
    "service": "SERVICELOG_SERVICE",
    "version": "SERVICELOG_VERSION",
    "callsite": "SERVICELOG_CALLSITE",
    "max_line_bytes": "SERVICELOG_MAX_LINE_BYTES",
    "redaction": "SERVICELOG_REDACTION",
}


def _choice(option: str, value: object, allowed: tuple[str, ...], source: str) -> str:
    if isinstance(value, str) and value.strip().lower() in allowed:
        return value.strip().lower()
    raise ConfigError(option, value, "one of " + ", ".join(repr(a) for a in allowed), source=source)


def _bool(option: str, value: object, source: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(option, value, "true or false (or 1/0, yes/no, on/off)", source=source)


def _levels(value: object, source: str) -> dict[str, int]:
    if isinstance(value, str):
        pairs: dict[str, object] = {}
        for item in filter(None, (p.strip() for p in value.split(","))):
            name, sep, lvl = item.partition("=")
            if not sep or not name.strip():
                raise ConfigError(
                    "levels", value, "'logger=LEVEL' pairs separated by commas", source=source
                )
            pairs[name.strip()] = lvl
        value = pairs
    if not isinstance(value, Mapping):
        raise ConfigError(
            "levels",
            value,
            "a mapping of logger name to level, e.g. {'httpx': 'WARNING'}",
            source=source,
        )
    out: dict[str, int] = {}
    for name, lvl in value.items():
        if not isinstance(name, str) or not name:
            raise ConfigError("levels", name, "logger names as non-empty strings", source=source)
        out[name] = parse_level(lvl, f"levels[{name!r}]", source=source)
    return out


#: The longest JSON line allowed: one record of 64 MiB is already a bug, not a log line.
MAX_LINE_BYTES_LIMIT = 64 * 1024 * 1024


def _max_line(value: object, source: str) -> int:
    number = -1
    if isinstance(value, bool):
        pass  # an int subclass, never a size anyone meant
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())  # ASCII digits only: no '4_096', no other scripts' digits
    if not 1024 <= number <= MAX_LINE_BYTES_LIMIT:
        raise ConfigError(
            "max_line_bytes",
            value,
            f"an integer from 1024 to {MAX_LINE_BYTES_LIMIT} (64 MiB)",
            source=source,
        )
    return number


def _file(value: object, source: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError("file", value, "a path (str or os.PathLike)", source=source)
    path = Path(value)
    # Path("") is Path("."): both would make every record fail to open its file, silently.
    if os.fspath(value) == "" or path.is_dir():
        raise ConfigError("file", value, "the path of a file, not a directory", source=source)
    return path


#: ``capture=False``: no other front-end feeds the pipeline.
_CAPTURE_NONE = CaptureOptions(
    stdlib=False, warnings=False, excepthooks=False, structlog=False, loguru=False
)


def _capture(value: object) -> CaptureOptions:
    if value is None:
        return CaptureOptions()
    if value is False:
        return _CAPTURE_NONE
    if isinstance(value, CaptureOptions):
        return value
    raise ConfigError(
        "capture",
        value,
        "a servicelog.CaptureOptions, False (capture nothing) or None (defaults)",
        source="argument",
    )


def build_settings(args: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Combine ``configure()`` arguments, the environment and the profile into :class:`Settings`.

    Raises:
        ConfigError: naming the first bad option, the value and what is allowed.
    """
    env = os.environ if environ is None else environ

    def pick(option: str) -> tuple[Any, str]:
        if args.get(option) is not None:
            return args[option], "argument"
        var = _ENV.get(option)
        if var and env.get(var, "") != "":
            return env[var], f"environment variable {var}"
        return None, ""

    raw_profile, src = pick("profile")
    # An empty argument is an unknown profile; an empty variable was skipped by pick() (unset).
    profile = _choice(
        "profile", "development" if raw_profile is None else raw_profile, tuple(PROFILES), src
    )
    defaults = PROFILES[profile]

    def value(option: str) -> tuple[Any, str]:
        got, source = pick(option)
        return (got, source) if got is not None else (defaults.get(option), "profile default")

    level_raw, src = value("level")
    level = parse_level(level_raw, "level", source=src)
    levels_raw, src = pick("levels")
    levels = _levels(levels_raw, src) if levels_raw is not None else {}
    fmt_raw, src = value("format")
    fmt = _choice("format", fmt_raw, ("json", "console"), src)
    stream_raw, src = value("stream")
    stream = _choice("stream", stream_raw, ("stdout", "stderr", "none"), src)
    file_raw, src = pick("file")
    file = _file(file_raw, src) if file_raw is not None else None
    callsite_raw, src = value("callsite")
    callsite = _bool("callsite", callsite_raw, src)
    locals_raw, src = value("show_locals")
    show_locals = _bool("show_locals", locals_raw, src)
    if profile == "production" and show_locals:
        raise ConfigError(
            "show_locals",
            True,
            "False with the production profile (locals leak secrets)",
            source=src,
        )
    mlb_raw, src = pick("max_line_bytes")
    max_line_bytes = _max_line(mlb_raw, src) if mlb_raw is not None else 16384
    color = args.get("color")
    if color is not None and not isinstance(color, bool):
        raise ConfigError("color", color, "True, False or None (auto)", source="argument")

    service_raw, src = pick("service")
    if service_raw is not None and (not isinstance(service_raw, str) or not service_raw.strip()):
        raise ConfigError("service", service_raw, "a non-empty string", source=src)
    version_raw, src = pick("version")
    if version_raw is not None and not isinstance(version_raw, str):
        raise ConfigError("version", version_raw, "a string", source=src)

    capture = _capture(args.get("capture"))
    strict = args.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise ConfigError(
            "strict", strict, "True, False or None (auto: under pytest)", source="argument"
        )
    redaction = _redaction(*pick("redaction"), profile)
    rate_limit = _rate_limit(args.get("rate_limit"), profile)

    return Settings(
        profile=profile,  # type: ignore[arg-type]
        service=ServiceOptions(
            name=(service_raw or "app").strip(), version=version_raw, environment=profile
        ),
        levels=LevelOptions(level=level, levels=levels),
        output=OutputOptions(
            format=fmt,  # type: ignore[arg-type]
            stream=stream,  # type: ignore[arg-type]
            file=file,
            color=color,
            max_line_bytes=max_line_bytes,
        ),
        record=RecordOptions(callsite=callsite, show_locals=show_locals),
        capture=capture,
        strict=strict,
        redaction=redaction,
        rate_limit=rate_limit,
    )


def _redaction(value: object, source: str, profile: str) -> RedactionPolicy | None:
    """On in every profile; the PII patterns (e-mails, phones, SSNs) in production only."""
    from .redaction import RedactionPolicy, default_policy

    if isinstance(value, RedactionPolicy):
        return value
    try:
        on = True if value is None else _bool("redaction", value, source)
    except ConfigError:
        raise ConfigError(
            "redaction",
            value,
            "a servicelog.redaction.RedactionPolicy, True or False (1/0 in the environment)",
            source=source,
        )
    return default_policy(pii=profile == "production") if on else None


def _rate_limit(value: object, profile: str) -> RateLimit | None:
    """On in production only (WARNING and up, 1,000 per 10 s per message)."""
    from .ratelimit import RateLimit

    if isinstance(value, RateLimit):
        return value
    if value is None:
        return RateLimit() if profile == "production" else None
    if value is True:
        return RateLimit()
    if value is False:
        return None
    raise ConfigError(
        "rate_limit",
        value,
        "a servicelog.ratelimit.RateLimit, True, False or None",
        source="argument",
    )
