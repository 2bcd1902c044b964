"""Request IDs and W3C trace context: accept what is safe, generate what is missing.

A request ID from a client is accepted only if it matches a strict pattern (a letter or digit,
then up to 127 of letters, digits and ``._:-``) or parses as a UUID (then canonicalised). Anything
else is replaced by a new UUID4, and the rejected value is never logged or echoed: only its length
and a SHA-256 prefix (catalog item I5 in the research notes).

``traceparent`` (https://www.w3.org/TR/trace-context/) is continued when valid: the trace ID is
kept, a new span ID is made for this service, and the flags are kept. Otherwise a new trace
starts.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Callable
from itertools import repeat
from typing import NamedTuple

__all__ = [
    "TraceContext",
    "continue_trace",
    "new_ids",
    "new_request_id",
    "next_request",
    "parse_request_id",
    "parse_traceparent",
    "rejected_hint",
]

#: The request ID headers of every RequestContextMiddleware made (lower case): Sentry's hooks
#: judge their values, which sentry-sdk may have taken before the middleware replaced a
#: rejected one.
REQUEST_ID_HEADERS: set[str] = set()

_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
# Hyphenated UUIDs (any case, braces, urn:uuid:) are canonicalised; a bare 32-hex ID (nginx's
# $request_id) is kept as sent, so it still matches the proxy's own logs.
_UUID_LIKE = re.compile(
    r"(?:urn:uuid:)?\{?[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}?"
)
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


# IDs are made in pools of _POOL at a time, from one os.urandom() call, with C-level work only
# (bytes.hex with a separator, strided slice copies): ~0.2 us an ID. Formatting each one in
# Python (slices and an f-string) cost ~1 us per request for the three IDs: in the request path
# that was the middleware's largest single cost. The pool holds ready tuples of the three IDs
# and the trace they start (for a request without traceparent): the middleware pops one per
# request (``next_request``) and builds no tuple. A forked child empties the pool, so two
# workers never hand out the same pooled IDs.
#
# The ready tuples are made _CHUNK at a time from the strings of a batch: the strings are not
# tracked by the garbage collector, but tuples and TraceContexts are, and 512 of them made at
# once and kept (a whole batch) set off a young-generation collection about every 256 requests,
# which then promoted the rest of the pool to the older generations: ~300 collections per
# 100,000 requests, among them full ones of ~6 ms (the bare application had ~10). In chunks of
# 64 (128 objects), the pool stays well below the collector's threshold of 700. A batch is cut
# into its chunks when it is made, and a chunk is taken with one ``list.pop``: atomic, so two
# threads (or a signal handler that needs an ID in the middle of a refill) never take the same
# one, and no lock is needed.
_POOL = 256
_CHUNK = 64  # divides _POOL
_requests: list[tuple[str, str, str, TraceContext]] = []
_chunks: list[tuple[list[str], list[str], list[str]]] = []  # a batch's IDs not yet in _requests
_UUID_WIDTH = 37  # 36 characters and a comma
_UUID_TEMPLATE = b"00000000-0000-4000-8000-000000000000," * _POOL
# Where each of the 32 hex digits of 16 random bytes goes in the canonical form. Digit 12 is
# the version (always "4", left as the template has it) and digit 16 the variant (10xx).
_UUID_SLOTS = [i for i in range(36) if i not in (8, 13, 18, 23)]
_VARIANT_TABLE = bytes.maketrans(b"0123456789abcdef", b"89ab89ab89ab89ab")
_ZERO_SPAN, _ONE_SPAN = "0" * 16, "0" * 15 + "1"
_ZERO_TRACE, _ONE_TRACE = "0" * 32, "0" * 31 + "1"


def _generate() -> tuple[list[str], list[str], list[str]]:
    """_POOL new request IDs (canonical UUID4s), trace IDs and span IDs."""
    raw = os.urandom(_POOL * 40)
    digits = raw[: _POOL * 16].hex().encode()
    text = bytearray(_UUID_TEMPLATE)
    for digit, slot in enumerate(_UUID_SLOTS):
        if digit == 12:
            continue
        column = digits[digit::32]
        text[slot::_UUID_WIDTH] = column.translate(_VARIANT_TABLE) if digit == 16 else column
    request_ids = text.decode().split(",")
    request_ids.pop()  # after the last comma
    trace_bytes, span_bytes = raw[_POOL * 16 : _POOL * 32], raw[_POOL * 32 :]
    trace_ids = trace_bytes.hex(",", 16).split(",")
    span_ids = span_bytes.hex(",", 8).split(",")
    # All-zero IDs are invalid (W3C); at 2**-64 and 2**-128 this is for correctness, not luck.
    # The bytes are searched first (a C scan; the lists only if a zero run is anywhere).
    if bytes(8) in span_bytes:
        while _ZERO_SPAN in span_ids:
            span_ids[span_ids.index(_ZERO_SPAN)] = _ONE_SPAN
    if bytes(16) in trace_bytes:
        while _ZERO_TRACE in trace_ids:
            trace_ids[trace_ids.index(_ZERO_TRACE)] = _ONE_TRACE
    return request_ids, trace_ids, span_ids


def _refill() -> None:
    """Add _CHUNK entries to the pool: the three IDs and the trace they start (for a request
    without a traceparent), made with C calls only, from the spare IDs of a batch (a new batch
    when they are used up)."""
    while True:  # (another thread may take the chunks of a new batch before this one does)
        try:
            request_ids, trace_ids, span_ids = _chunks.pop()
            break
        except IndexError:
            batch = _generate()
            _chunks.extend(
                [
                    (batch[0][i : i + _CHUNK], batch[1][i : i + _CHUNK], batch[2][i : i + _CHUNK])
                    for i in range(0, _POOL, _CHUNK)
                ]
            )
    traces = map(_trace, repeat(TraceContext), zip(trace_ids, span_ids, repeat(None), repeat("01")))
    _requests.extend(zip(request_ids, trace_ids, span_ids, traces, strict=True))


def _empty_pools() -> None:
    """Forget every ID made and not handed out (a forked child: its parent holds them too)."""
    _requests.clear()
    _chunks.clear()


os.register_at_fork(after_in_child=_empty_pools)


def new_request_id() -> str:
    """A new random UUID4, canonical form."""
    return next_request()[0]


def parse_request_id(raw: str) -> str | None:
    """Return the accepted (possibly canonicalised) ID, or ``None`` to reject *raw*."""
    if len(raw) > 128 + 9:
        return None
    if _UUID_LIKE.fullmatch(raw):
        try:
            return str(uuid.UUID(raw))
        except ValueError:
            pass
    if _SAFE_ID.fullmatch(raw):
        return raw
    return None


def rejected_hint(raw: bytes) -> dict[str, object]:
    """What may be logged about a rejected value: its length and a hash prefix, nothing else."""
    return {"length": len(raw), "sha256_prefix": hashlib.sha256(raw).hexdigest()[:12]}


class TraceContext(NamedTuple):
    """The trace this request belongs to, and this service's span in it."""

    trace_id: str
    span_id: str
    parent_id: str | None
    flags: str

    @property
    def traceparent(self) -> str:
        """The header value to send downstream (our span as the parent)."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def next_request() -> tuple[str, str, str, TraceContext]:
    """A new request ID (a canonical UUID4), trace ID and span ID, and the new trace they start:
    the middleware's one call per request (the four come from one pool, with one ``list.pop``,
    which is atomic: nothing is given twice)."""
    while True:  # (another thread may empty a new batch before this one pops from it)
        try:
            return _requests.pop()
        except IndexError:
            _refill()


def new_ids() -> tuple[str, str, str]:
    """A new request ID (a canonical UUID4), trace ID and span ID."""
    request_id, trace_id, span_id, _ = next_request()
    return request_id, trace_id, span_id


def continue_trace(raw: str | None, trace_id: str, span_id: str) -> TraceContext:
    """Continue a valid ``traceparent`` *raw* with our *span_id*, or start trace *trace_id*."""
    if raw:
        raw = raw.strip()
        match = _TRACEPARENT.fullmatch(raw[:55])
        # Version 00 is exactly 55 characters; a later version may add fields after a "-".
        if match and len(raw) > 55 and (match.group(1) == "00" or raw[55] != "-"):
            match = None
        if match:
            version, parent_trace, parent_id, flags = match.groups()
            if version != "ff" and parent_trace != _ZERO_TRACE and parent_id != _ZERO_SPAN:
                return _trace(TraceContext, (parent_trace, span_id, parent_id, flags))
    return _trace(TraceContext, (trace_id, span_id, None, "01"))


def parse_traceparent(raw: str | None) -> TraceContext:
    """Continue a valid ``traceparent`` or start a new trace."""
    _, trace_id, span_id = new_ids()
    return continue_trace(raw, trace_id, span_id)


# tuple.__new__ directly: a NamedTuple's own __new__ is a Python function (a frame per request).
_trace: Callable[[type[TraceContext], tuple[str, str, str | None, str]], TraceContext]
_trace = tuple.__new__
