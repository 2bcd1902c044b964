"""The JSON renderer: one record, one line of valid UTF-8 JSON, whatever the record holds.

Guarantees, each pinned by a test:

* exactly one line: orjson escapes CR, LF and every C0 control (ANSI escapes included);
  U+2028, U+2029 and NEL, which JSON allows raw but which many line readers split on, are
  escaped here too;
* always valid UTF-8 JSON: values orjson cannot encode (arbitrary objects, sets, Decimal, bytes,
  big integers, non-string keys, lone surrogates, cycles, very deep nesting, objects whose
  ``__repr__`` raises or returns megabytes) take a slower, safe path instead of failing;
* at most ``max_line_bytes``: a longer record is cut down, field by field, and marked
  ``"truncated": true``.

The fast path is a single ``orjson.dumps`` call; everything else happens only when needed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from datetime import date, datetime, time
from enum import Enum
from typing import Any

import orjson

from ..record import (
    DROPPED_FIELDS,
    LEVEL,
    MESSAGE,
    TIMESTAMP,
    Record,
    dataclass_fields,
    items_cut,
    safe_repr,
)

__all__ = ["JsonRenderer", "default", "jsonable"]

#: orjson formats aware datetimes itself, calling their ``tzinfo.utcoffset()``: a tzinfo whose
#: method raises crashes the process (orjson 3.13, SIGSEGV), one that returns a wrong type
#: gives a garbage offset. With this option datetimes reach ``default`` (``_iso``) instead.
SAFE = orjson.OPT_PASSTHROUGH_DATETIME
_OPTIONS = orjson.OPT_APPEND_NEWLINE | SAFE
_MAX_DEPTH = 64
_MAX_REPR = 4096
_MAX_ITEMS = 1000
#: The most container items one value's rendering looks at, nested ones included, past which
#: each container is written as its marker alone (``"<N items cut>"``). A renderer counts one
#: item per byte of its ``max_line_bytes`` instead: every item takes at least a byte of the
#: line, so what its count cuts lies past what the line can show (a list of a thousand dicts
#: of a thousand keys is not walked whole for a line of 16 KiB, and a redacted record, whose
#: containers show at most ``max_total_items``, 10,000, is never cut again).
_MAX_TOTAL_ITEMS = 10_000


def _safe_repr(value: object) -> str:
    return safe_repr(value, _MAX_REPR)


def default(value: Any) -> Any:
    """orjson's fallback for types it does not know (called on the fast path)."""
    if isinstance(value, (datetime, date, time)):
        return _iso(value)
    if type(value).__name__ == "Decimal":
        return str(value)
    if type(value).__name__ == "UUID":
        return _uuid(value)
    if isinstance(value, (set, frozenset)):  # (cut as the safe path cuts it, and said so)
        return _marked(_sorted_list(value), len(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, BaseException):
        return f"{type(value).__qualname__}: {value}"
    return _safe_repr(value)


def _uuid(value: Any) -> Any:
    """A UUID as orjson takes it: the stdlib's ``uuid.UUID`` itself, another class of that name
    (``uuid6``, ``uuid_utils``: orjson refuses them) as its text."""
    if type(value).__module__ == "uuid":
        return value
    try:
        text = str(value)
    except Exception:
        return _safe_repr(value)
    return text if type(text) is str and len(text) <= 64 else _safe_repr(value)


def _iso(value: datetime | date | time) -> str:
    """ISO 8601 text, as orjson writes it; Python checks what ``tzinfo`` returns (a raising or
    wrong ``utcoffset()`` gives the value's repr, not a crash)."""
    try:
        return value.isoformat()
    except Exception:
        return _safe_repr(value)


def _marked(items: list[Any], size: int) -> list[Any]:
    """*items*, the first of a container of *size*, ending with a marker of the rest if any."""
    if size > len(items):
        items.append(f"<{size - len(items)} more items>")
    return items


def _sorted_list(value: set[Any] | frozenset[Any]) -> list[Any]:
    items = list(value)[:_MAX_ITEMS]
    try:
        items.sort()
    except TypeError:
        pass
    return items


def _clean_str(text: str) -> str:
    """Replace lone surrogates so the string encodes as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _int_text(value: int) -> str:
    """*value* in decimal, or past the interpreter's limit on int-to-text conversions
    (``sys.set_int_max_str_digits``, 4,300 digits by default, where ``str()`` raises) its size
    and its last 20 digits."""
    try:
        return str(value)
    except ValueError:
        digits = int(value.bit_length() * 0.30103) + 1  # log10(2) decimal digits a bit
        sign = "-" if value < 0 else ""
        last = str(abs(value) % 10**20).zfill(20)
        return f"{sign}<int of about {digits} digits, ending ...{last}>"


def jsonable(
    value: Any, depth: int = 0, seen: frozenset[int] = frozenset(), left: list[int] | None = None
) -> Any:
    """Turn any value into something orjson always encodes: the safe, slow path.

    Cycles become ``"<cycle>"``, nesting beyond 64 levels ``"<max depth>"``, containers are cut
    at 1,000 items, and at 10,000 items in all (*left*: the count still allowed, shared by the
    calls for one record), NaN and infinities become ``None`` (null), and unknown objects their
    ``repr``.
    """
    if value is None or value is True or value is False:
        return value
    if isinstance(value, str):
        if type(value) is not str:  # a subclass: its text (its own methods may do anything)
            value = str.__str__(value)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return _clean_str(value)
        return value
    if isinstance(value, int) and not isinstance(value, Enum):
        return value if -(2**63) <= value < 2**64 else _int_text(value)
    if isinstance(value, float):  # null, as orjson writes them on the fast path
        return value if math.isfinite(value) else None
    if isinstance(value, (datetime, date, time)):
        return _iso(value)
    if type(value).__name__ == "UUID":
        return _uuid(value)
    if depth >= _MAX_DEPTH:
        return "<max depth>"
    if left is None:
        left = [_MAX_TOTAL_ITEMS]
    if isinstance(value, Mapping):
        ident = id(value)
        if ident in seen:
            return "<cycle>"
        seen = seen | {ident}
        out: dict[str, Any] = {}
        keep = min(_MAX_ITEMS, left[0])
        try:
            size = len(value)
            if keep <= 0 and size:  # the count ran out: the marker alone, as redaction cuts
                return items_cut(size)
            left[0] -= min(size, keep)
            for i, (key, item) in enumerate(value.items()):
                if i >= keep:
                    out["<truncated>"] = f"{size - keep} more items"
                    break
                # orjson takes only exact str keys: a str subclass (a ``StrEnum`` member) is
                # written as its text, as a value of that type is, not dropped with the record.
                k = str.__str__(key) if isinstance(key, str) else _safe_repr(key)
                try:  # one value that fails costs that value, not the fields after it
                    out[jsonable(k)] = jsonable(item, depth + 1, seen, left)
                except Exception as exc:  # pragma: no cover - jsonable guards every type
                    out[jsonable(k)] = f"<error: {type(exc).__name__}>"
        except Exception as exc:
            out["<error>"] = f"iterating raised {type(exc).__name__}"
        return out
    if isinstance(value, (list, tuple)):
        ident = id(value)
        if ident in seen:
            return "<cycle>"
        seen = seen | {ident}
        keep = min(_MAX_ITEMS, left[0])
        if keep <= 0 and value:
            return items_cut(len(value))
        left[0] -= min(len(value), keep)
        return _marked([jsonable(v, depth + 1, seen, left) for v in value[:keep]], len(value))
    if isinstance(value, (set, frozenset)):
        keep = min(_MAX_ITEMS, left[0])
        if keep <= 0 and value:
            return items_cut(len(value))
        kept = _sorted_list(value)[:keep]
        left[0] -= len(kept)
        return _marked([jsonable(v, depth + 1, seen, left) for v in kept], len(value))
    if hasattr(type(value), "__dataclass_fields__") and not isinstance(value, type):
        # As orjson writes it on the fast path (and redaction walks it): its fields, none
        # starting with "_"; its repr would show those too.
        ident = id(value)
        if ident in seen:
            return "<cycle>"
        try:
            fields = dataclass_fields(value)
        except Exception:
            return _safe_repr(value)
        return jsonable(fields, depth + 1, seen | {ident}, left)
    try:
        converted = default(value)
    except Exception:
        return _safe_repr(value)
    if converted is value:
        return _safe_repr(value)
    return jsonable(converted, depth + 1, seen, left)


# UTF-8 encodings of characters JSON allows raw but line readers may split on.
_LINE_BREAKS = (
    (b"\xe2\x80\xa8", b"\\u2028"),
    (b"\xe2\x80\xa9", b"\\u2029"),
    (b"\xc2\x85", b"\\u0085"),
)


def _escape_breaks(line: bytes) -> bytes:
    for raw, escaped in _LINE_BREAKS:
        if raw in line:
            line = line.replace(raw, escaped)
    return line


class JsonRenderer:
    """Render a record as one JSON line (bytes, ending in ``\\n``), static fields appended.

    Args:
        max_line_bytes: the longest line written, newline included (at least 1024).
        static: fields appended to every line (the pipeline binds them with
            :meth:`bind_static`).
    """

    __slots__ = ("max_line_bytes", "static", "tail")

    def __init__(
        self, max_line_bytes: int = 16384, static: Mapping[str, Any] | None = None
    ) -> None:
        self.max_line_bytes = max_line_bytes
        self.static: dict[str, Any] = {}
        self.tail = b"}\n"
        if static:
            self.bind_static(static)

    def bind_static(self, static: Mapping[str, Any]) -> None:
        """Pre-serialise the static fields into the bytes that close every line."""
        self.static = dict(static)
        if self.static:
            encoded = _escape_breaks(orjson.dumps(jsonable(self.static)))
            self.tail = b"," + encoded[1:] + b"\n"
        else:
            self.tail = b"}\n"

    def __call__(self, record: Record) -> bytes:
        try:
            body = orjson.dumps(record, default=default, option=SAFE)
        except Exception:
            return self.slow(record)
        line = body[:-1] + self.tail
        if not body.isascii() or len(line) > self.max_line_bytes:
            return self.finish(record, line)
        return line

    # Sinks inline the fast path above (one C call) and call these only when needed.
    def slow(self, record: Record) -> bytes:
        """Render a record orjson refused (bad strings, keys, integers, cycles...)."""
        body = orjson.dumps(jsonable(record, 0, frozenset(), [self.max_line_bytes]))
        return self.finish(record, body[:-1] + self.tail)

    def finish(self, record: Record, line: bytes) -> bytes:
        """Escape line-breaking characters and enforce ``max_line_bytes``."""
        if not line.isascii():
            line = _escape_breaks(line)
        if len(line) > self.max_line_bytes:
            line = self._truncate({**record, **self.static}, len(line))
        return line

    # --- the slow path for long records -------------------------------------------------------
    def _dump(self, record: Record) -> bytes:
        return _escape_breaks(orjson.dumps(jsonable(record), option=_OPTIONS))

    def _truncate(self, record: Record, size: int) -> bytes:
        """Cut a record to fit: shorten long values (as little as needed), then drop fields,
        keeping the head and the fields that say what happened and where, first."""
        limit = self.max_line_bytes
        # The largest per-value budget (in characters) with which the whole record fits: short
        # values are kept whole, long ones cut to it (a single long value keeps nearly the
        # whole line, not a quarter of it).
        # Each value is made writable (and a container rendered to text) once, not at every
        # step of the search.
        prepared = _prepared(record, self.max_line_bytes)
        low, high, best = 64, limit, None
        while low <= high:
            budget = (low + high) // 2
            line = _cut_values(prepared, size, budget)
            if len(line) <= limit:
                best, low = line, budget + 1
            else:
                high = budget - 1
        if best is not None:
            return best
        # Still too long (very many fields): keep the head fields and as many others as fit.
        # The head is cut in characters; escaped, one may take 6 bytes (U+2028, ESC): shorter
        # until the head fits.
        for keep in (512, 256, 128, 64, 16):
            # (From the prepared values: a raw one may be an int of 4,000 digits.)
            head = {k: _cut(*prepared.get(k, ("", "", None))[1:], keep) for k in _HEAD}
            head["truncated"] = True
            head["log.original_bytes"] = size
            base = len(self._dump(head))
            if base + 48 <= limit:
                break
        # Fields the redaction policy already dropped (max_items) count too.
        earlier = record.get(DROPPED_FIELDS)
        # (At most 12 digits: the room kept for the count below is 40 bytes.)
        dropped = min(earlier, _MAX_DROPPED) if type(earlier) is int and earlier > 0 else 0
        # The error, the logger, the service and the trace first (a longer cut for the error's
        # text and trace), then the rest in order.
        first = [k for k in _KEEP_FIRST if k in prepared]
        for raw_key in first + [k for k in prepared if k not in _KEEP_FIRST_SET]:
            key, safe, text = prepared[raw_key]
            if key in head or key == DROPPED_FIELDS:
                continue
            if base + 48 > limit:  # full: no field fits any more, count the rest
                dropped += 1
                continue
            for keep in (512, 64) if key in _KEEP_LONGER else (64,):
                item = {key: _cut(safe, text, keep)}
                extra = len(self._dump(item)) - 2
                if base + extra + 40 <= limit:
                    head[key] = item[key]
                    base += extra
                    break
            else:
                dropped += 1
        head[DROPPED_FIELDS] = dropped
        return self._dump(head)


Prepared = dict[Any, tuple[str, Any, str | None]]


def _prepared(record: Record, most: int = _MAX_TOTAL_ITEMS) -> Prepared:
    """Each field, by its key, as ``(key as written, writable value, its JSON text if it is a
    container or object)``: :func:`jsonable` and the rendering done once, for :func:`_cut`.
    The fields' containers show *most* items in all (one count for the record)."""
    out: Prepared = {}
    left = [most]
    for raw_key, value in record.items():
        # As jsonable() writes keys: a str subclass (a StrEnum) as its text, others as their
        # repr, lone surrogates escaped (orjson takes none of these as they are).
        key = jsonable(str.__str__(raw_key) if isinstance(raw_key, str) else _safe_repr(raw_key))
        safe = jsonable(value, 0, frozenset(), left)
        if safe is None or isinstance(safe, (str, bool, int, float)):
            out[raw_key] = (key, safe, None)
        else:
            try:
                text = orjson.dumps(safe).decode("utf-8")
            except Exception:
                text = _safe_repr(value)
            out[raw_key] = (key, safe, text)
    return out


def _cut(safe: Any, text: str | None, budget: int) -> Any:
    """A prepared value (see :func:`_prepared`) cut to about *budget* characters, as
    :func:`_shorten` cuts it, without rendering it again."""
    if text is None:
        return _shorten(safe, budget)
    return safe if len(text) <= budget else _shorten(text, budget)


def _cut_values(prepared: Prepared, size: int, budget: int) -> bytes:
    """The record with every value cut to about *budget* characters."""
    cut: Record = {key: _cut(safe, text, budget) for key, safe, text in prepared.values()}
    cut["truncated"] = True
    cut["log.original_bytes"] = size
    return _escape_breaks(orjson.dumps(cut, option=_OPTIONS))


_HEAD = (TIMESTAMP, LEVEL, MESSAGE)
_MAX_DROPPED = 10**12 - 1

#: Kept first when a record's fields must be dropped to fit (after the time, level, message).
_KEEP_FIRST = (
    "ecs.version",  # required by the ECS logging spec, with the time, level and message
    "log.logger",
    "error.type",
    "error.message",
    "error.stack_trace",
    "service.name",
    "service.environment",
    "event.dataset",
    "request_id",
    "trace.id",
    "span.id",
    "http.response.status_code",
    "process.pid",
)
_KEEP_FIRST_SET = frozenset(_KEEP_FIRST)
_KEEP_LONGER = frozenset({"error.message", "error.stack_trace"})


def _shorten(value: Any, budget: int) -> Any:
    """Cut a value to about *budget* characters of JSON."""
    if isinstance(value, str):
        if type(value) is not str:  # a subclass: its text (its slicing may do anything)
            value = str.__str__(value)
        if len(value) <= budget:
            return value
        # Keep the head and the tail: a stack trace's last lines name the error.
        half = budget // 2
        return f"{value[:half]}...<{len(value) - 2 * half} chars cut>...{value[-half:]}"
    if value is None or isinstance(value, (bool, int, float)):
        return value
    try:
        text = orjson.dumps(jsonable(value)).decode("utf-8")
    except Exception:
        text = _safe_repr(value)
    if len(text) <= budget:
        return jsonable(value)
    return _shorten(text, budget)
