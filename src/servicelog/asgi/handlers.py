"""Exception handlers: every error answered in one shape, logged once at the right level.

Installed in one call by ``servicelog.fastapi.install`` (or ``ErrorHandlers(...).install(app)``
on a Starlette app). Handles, in order of specificity:

* :class:`~servicelog.errors.BaseAPIException` and subclasses: their status, code, message,
  details and headers (``Retry-After``);
* Starlette's ``HTTPException`` (FastAPI's too): 404/405 from the router, ``raise
  HTTPException(...)`` in endpoints; its headers (``Allow``) are kept;
* FastAPI's ``RequestValidationError``: 422 with ``errors`` as ``{"loc", "type", "msg"}`` only —
  never the submitted values or body (FastAPI's default handler and the guide's echo them,
  passwords included), at most 50 errors, messages cut at 300 characters; a WebSocket route's
  (``WebSocketRequestValidationError``) the same way: a 422 denial response before the
  handshake, a close with code 1008 after it (FastAPI's closes with the errors, values and
  all, as the reason);
* any other exception: a generic 500 with the request ID; never a traceback, a file path or the
  exception text in production. Logged once, with its traceback.

4xx are logged as warnings, 5xx as errors. Messages and details in responses pass through the
same redaction policy as the logs. If a handler itself fails, a minimal valid JSON 500 is
returned.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocketClose

from .. import _errors
from ..context import raised_in
from ..errors import BaseAPIException
from ..exceptions import ConfigError
from ..logger import get_logger
from ..record import safe_repr, safe_str
from .request_context import (
    WEBSOCKET_ACCEPTED,
    mark_logged,
    replaced_by_body_limit,
    was_logged,
)
from .responses import (
    ErrorFormat,
    check_error_format,
    error_content,
    minimal_500_content,
    phrase,
)
from .tracebacks import log_exception

__all__ = ["ErrorHandlers"]

MAX_ERRORS = 50
MAX_MESSAGE = 300

_HTTP_CODES = {
    400: "bad_request",
    401: "authentication_failed",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable_entity",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}

Handler = Callable[[Request, Any], Awaitable[Response]]


def _after_handshake(scope: Any, response: Response) -> Any:
    """*response* as a WebSocket connection can take it: as it is before the handshake (a
    denial response); once accepted, a close: 1011 (internal error) for a 5xx, else 1008
    (policy violation), with the status's phrase as the reason."""
    state = scope.get("state")
    if not (isinstance(state, dict) and state.get(WEBSOCKET_ACCEPTED)):
        return response
    status = response.status_code
    return WebSocketClose(1011 if status >= 500 else 1008, "" if status >= 500 else phrase(status))


def _failure_text(failure: BaseException) -> str:
    """``Type: message`` of a handler's own failure (its type alone if its text fails)."""
    try:
        return f"{type(failure).__name__}: {failure}"
    except Exception:
        return type(failure).__name__


def _request_id(request: Request) -> str | None:
    rid = getattr(request.state, "request_id", None)
    if rid is None:
        from ..context import get_context

        rid = get_context().get("request_id")
    return str(rid) if rid is not None else None


def _code_for(status: int) -> str:
    return _HTTP_CODES.get(status, "server_error" if status >= 500 else "client_error")


class ErrorHandlers:
    """The exception handlers, configured once.

    Args:
        error_format: ``"envelope"`` (the guide's shape, default) or ``"problem"`` (RFC 9457).
        expose_server_errors: show 5xx messages and exception types to clients (``False`` by
            default; ``True`` only for local development).
        problem_base: a URI prefix for problem ``type`` (``"https://errors.example.com/"``);
            without it ``type`` is ``"about:blank"``.
    """

    def __init__(
        self,
        *,
        error_format: ErrorFormat = "envelope",
        expose_server_errors: bool = False,
        problem_base: str | None = None,
    ) -> None:
        self.error_format: ErrorFormat = check_error_format(error_format)
        self.expose_server_errors = expose_server_errors
        self.problem_base = problem_base
        self._log = get_logger("servicelog.errors")

    # --- response building --------------------------------------------------------------------
    def respond(
        self,
        request: Request,
        *,
        status: int,
        code: str,
        message: str,
        type_name: str,
        details: dict[str, Any] | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        from .. import redaction  # error responses pass the same policy as the logs

        if status < 200 or status in (204, 205, 304):  # no content (RFC 9110 6.4.1, 15.3.6)
            return Response(status_code=status, headers=headers)
        body, media_type = error_content(
            self.error_format,
            status=status,
            code=code,
            message=redaction.redact_text(
                message if isinstance(message, str) else safe_str(message)
            ),
            type_name=type_name,
            details=redaction.redact_mapping(details) if details else details,
            request_id=_request_id(request),
            instance=request.url.path,
            errors=redaction.redact_mapping(errors) if errors else errors,
            problem_base=self.problem_base,
        )
        return Response(body, status_code=status, headers=headers, media_type=media_type)

    def _guarded(self, handler: Handler) -> Handler:
        async def run(request: Request, exc: Any) -> Any:
            try:
                response = await handler(request, exc)
            except Exception as failure:  # the handler itself broke: answer something valid
                try:
                    _errors.report("exception handler", failure)
                except Exception:
                    pass
                try:  # the client gets a 500: the application's exception is logged as one
                    if not was_logged(exc):
                        log_exception(
                            self._log,
                            "Exception handler failed; answered 500",
                            exc,
                            {
                                **(raised_in(exc) or {}),
                                "http.response.status_code": 500,
                                "error.handler_failure": _failure_text(failure),
                            },
                        )
                        mark_logged(exc)
                except Exception:
                    pass
                body, media_type = minimal_500_content(self.error_format, _request_id(request))
                response = Response(body, status_code=500, media_type=media_type)
            if request.scope.get("type") == "websocket" and response is not None:
                return _after_handshake(request.scope, response)
            return response

        setattr(run, _OURS, True)
        return run

    # --- the handlers -------------------------------------------------------------------------
    async def api_exception(self, request: Request, exc: BaseAPIException) -> Response:
        status, invalid = _error_status(exc.status_code)
        fields = {
            **(raised_in(exc) or {}),  # bound where it was raised (a block since left)
            "http.response.status_code": status,
            "error.code": exc.code,
            "details": exc.details,
        }
        server = status >= 500
        if server:
            log_exception(self._log, f"Server error: {exc.message}{invalid}", exc, fields)
            mark_logged(exc)
        elif not replaced_by_body_limit(request.scope):
            self._log.warning(f"Client error: {exc.message}", **fields)
        hide = server and not self.expose_server_errors
        return self.respond(
            request,
            status=status,
            code=exc.code,
            message=phrase(status) if hide else exc.message,
            type_name=type(exc).__name__,
            details={} if hide else exc.details,
            headers=exc.headers or None,
        )

    async def http_exception(self, request: Request, exc: HTTPException) -> Response:
        # (Not below 200: a 1xx is no final response; a server would send it as one.)
        status, invalid = _error_status(exc.status_code, low=200)
        raw: Any = exc.detail  # FastAPI's HTTPException allows any JSON value
        detail = raw if isinstance(raw, str) else phrase(status)
        fields = {**(raised_in(exc) or {}), "http.response.status_code": status}
        if status >= 500:
            self._log.error(f"HTTP {status}: {detail}{invalid}", **fields)
        elif status >= 400 and not replaced_by_body_limit(request.scope):
            # (Not below 400, a 304 for a conditional GET: the access record says it.)
            self._log.warning(f"HTTP {status}: {detail}", **fields)
        details: dict[str, Any] = {}
        if not isinstance(raw, str) and raw is not None and status < 500:
            details["detail"] = raw
        hide = status >= 500 and not self.expose_server_errors  # logged above, not shown
        return self.respond(
            request,
            status=status,
            code=_code_for(status),
            message=phrase(status) if hide else detail,
            type_name="HTTPException",
            details=details,
            headers=dict(exc.headers) if exc.headers else None,
        )

    async def validation_error(self, request: Request, exc: Any) -> Response:
        errors = safe_validation_errors(exc)
        if not replaced_by_body_limit(request.scope):
            self._log.warning(
                "Request validation failed",
                **{"http.response.status_code": 422, "validation.errors": errors},
            )
        return self.respond(
            request,
            status=422,
            code="validation_error",
            message="Request validation failed",
            type_name=type(exc).__name__,  # (or WebSocketRequestValidationError)
            errors=errors,
        )

    async def unhandled(self, request: Request, exc: Exception) -> Response:
        if not was_logged(exc):
            fields = {
                **(raised_in(exc) or {}),
                "http.request.method": request.method,
                "url.path": request.url.path,
            }
            log_exception(self._log, "Unhandled exception", exc, fields)
            mark_logged(exc)
        expose = self.expose_server_errors
        return self.respond(
            request,
            status=500,
            code="internal_error",
            message=f"{type(exc).__name__}: {exc}" if expose else "Internal server error",
            type_name=type(exc).__name__ if expose else "InternalServerError",
        )

    def install(self, app: Any) -> None:
        """Register the handlers on a Starlette or FastAPI application.

        A handler the application already has for one of these exceptions (registered before
        this call, or given to the constructor) is kept: yours win, before or after.

        Raises:
            ConfigError: for an object that takes no exception handlers (such as the
                application already wrapped in ``RequestContextMiddleware``).
        """
        if not callable(getattr(app, "add_exception_handler", None)):
            raise ConfigError(
                "app",
                app,
                "a Starlette or FastAPI application (install the handlers on it, then wrap it "
                "in RequestContextMiddleware)",
            )
        handlers: list[tuple[Any, Handler]] = [
            (BaseAPIException, self.api_exception),
            (HTTPException, self.http_exception),
        ]
        try:
            from fastapi.exceptions import (
                RequestValidationError,
                WebSocketRequestValidationError,
            )
        except ImportError:  # a plain Starlette app
            pass
        else:
            # (Two classes: a WebSocket route's is no RequestValidationError, and FastAPI's
            # own handler for it closes the socket with the submitted values as the reason.)
            handlers.append((RequestValidationError, self.validation_error))
            handlers.append((WebSocketRequestValidationError, self.validation_error))
        handlers.append((Exception, self.unhandled))
        present = getattr(app, "exception_handlers", {})
        for key, handler in handlers:
            if _replaceable(present.get(key)):
                app.add_exception_handler(key, self._guarded(handler))


_OURS = "__servicelog_handler__"


def _replaceable(handler: Any) -> bool:
    """Whether an application's handler may be replaced by ours: none, one of servicelog's
    (an earlier install), or FastAPI's default (which echoes submitted values)."""
    if handler is None or getattr(handler, _OURS, False):
        return True
    try:
        from fastapi import exception_handlers as defaults
    except ImportError:  # a plain Starlette app: every registered handler is the user's
        return False
    return handler in (
        defaults.http_exception_handler,
        defaults.request_validation_exception_handler,
        defaults.websocket_request_validation_exception_handler,
    )


def safe_validation_errors(exc: Any) -> list[dict[str, Any]]:
    """``loc``, ``type`` and ``msg`` of each error, never ``input``/``ctx``/``url``/the body.

    A ``msg`` written by the application (a validator's ``ValueError``, a custom error type,
    or a pydantic error type whose message is not pydantic's) may quote the submitted value:
    that value, and any other value of the request's body, is masked in it (see
    :func:`_masked`), and the text redacted as a log message is (``password=...``, card
    numbers, tokens). The search has a budget for the whole request: past it, messages are
    withheld rather than searched (a client must not choose the cost)."""
    try:
        raw = list(exc.errors())
    except Exception:
        return [{"loc": [], "type": "invalid", "msg": "Invalid request"}]
    out: list[dict[str, Any]] = []
    budget = [MASKING_BUDGET]
    others: list[_Others] = []  # the body's values, looked through once
    for err in raw[:MAX_ERRORS]:
        try:
            out.append(_safe_error(err, exc, others, budget))
        except Exception:  # an entry of an odd shape (a str, loc None, a msg whose str raises)
            out.append({"loc": [], "type": "invalid", "msg": "Invalid value"})
    if len(raw) > MAX_ERRORS:
        out.append({"loc": [], "type": "too_many_errors", "msg": f"{len(raw) - MAX_ERRORS} more"})
    return out


def _safe_error(err: Any, exc: Any, others: list[_Others], budget: list[int]) -> dict[str, Any]:
    """One error of :func:`safe_validation_errors` (*others* holds the body's index once it
    is made)."""
    raw_loc = err.get("loc") or ()
    if isinstance(raw_loc, (str, int)):
        raw_loc = (raw_loc,)
    loc = [p if isinstance(p, (int, str)) else str(p) for p in list(raw_loc)[:10]]
    loc = [p[:100] if isinstance(p, str) else p for p in loc]
    kind = str(err.get("type", "invalid"))[:100]
    msg = str(err.get("msg", ""))
    if not _pydantic_wrote(kind, msg, err.get("ctx")):
        if not others:  # a validator may quote another field (``info.data``)
            others.append(_Others(getattr(exc, "body", None), budget))
        msg = _redact_text(_masked(msg, err.get("input"), others[0], budget))
    return {"loc": loc, "type": kind, "msg": msg[:MAX_MESSAGE]}


def _error_status(status: object, low: int = 400) -> tuple[int, str]:
    """*status* if it is an HTTP status from *low* to 599, else 500 and why, for the log (a
    server cannot send a status line of 999: the client got no answer at all)."""
    # (An int subclass too: HTTPStatus.NOT_FOUND is a status; a bool is not.)
    if isinstance(status, int) and not isinstance(status, bool) and low <= status <= 599:
        return int(status), ""
    return 500, f" (status_code {safe_repr(status)[:40]} is not a valid status: answered 500)"


def _pydantic_own() -> frozenset[str]:
    """The error types whose message pydantic writes (it never quotes the input); not
    ``value_error`` and ``assertion_error``, whose message is the application's."""
    try:
        from typing import get_args

        from pydantic_core.core_schema import ErrorType
    except ImportError:  # pragma: no cover - FastAPI requires pydantic
        return frozenset()
    return frozenset(get_args(ErrorType)) - {"value_error", "assertion_error"}


_PYDANTIC_OWN = _pydantic_own()


#: pydantic's own types whose message quotes the input (from its context): masked as the
#: application's are ("Input tag 'x' found using 'kind' does not match ...").
_QUOTING = frozenset({"union_tag_invalid", "get_attribute_error", "uuid_parsing"})
#: pydantic's errors of its own that are not core error types (``pydantic.networks``).
_PYDANTIC_FIXED = frozenset(
    {
        ("ip_any_address", "value is not a valid IPv4 or IPv6 address"),
        ("ip_any_interface", "value is not a valid IPv4 or IPv6 interface"),
        ("ip_any_network", "value is not a valid IPv4 or IPv6 network"),
    }
)


def _pydantic_wrote(kind: str, msg: str, ctx: Any) -> bool:
    """Whether *msg* is pydantic's own message for error type *kind*, one that does not quote
    the input: the application can raise ``PydanticCustomError("string_pattern_mismatch",
    "code {code} is wrong", ...)`` too, so the type's name alone does not tell; pydantic's
    template for it, filled with *ctx*, must give *msg* exactly."""
    if (kind, msg) in _PYDANTIC_FIXED:
        return True
    if kind not in _PYDANTIC_OWN or kind in _QUOTING:
        return False
    try:
        from pydantic_core import PydanticKnownError

        return bool(PydanticKnownError(kind, ctx).message() == msg)  # type: ignore[arg-type]
    except Exception:  # a context the template does not take: not pydantic's message
        return False


_MASK = "[REDACTED]"


#: A message written by the application longer than this is withheld whole (pydantic's own are
#: short): checking it for every submitted value would let a client choose the cost.
MAX_CHECKED_MESSAGE = 2000
#: The most strings and numbers looked for in one message; with more, it is withheld whole.
MAX_LEAVES = 500
#: The most text (in characters) the values found in one message may add up to.
MAX_PATTERN = 100_000
#: The work (characters of message times characters and forms of values) one request's
#: masking may do: a few milliseconds. Past it, the remaining messages are withheld.
MASKING_BUDGET = 20_000_000
_WITHHELD = "Invalid value (the message is withheld: it may quote the submitted value)"
_PREFIXES = ("Value error, ", "Assertion failed, ")  # what pydantic puts before the message


def _masked(
    msg: str, value: Any, others: _Others | None = None, budget: list[int] | None = None
) -> str:
    """*msg* without the submitted *value* in it, nor any string or number inside it (a model
    validator gets the whole object, a list validator the list), nor any of the body's other
    values of 6 characters or more (*others*: a validator may quote another field), in the
    forms a message quotes them in (:func:`_forms`): as given, stripped of surrounding
    spaces, as ``repr()`` writes it (escaped), a number or numeric string in its common
    spellings (``1234``, ``1,234``, ``1234.00``, ``1,234.00``), an ISO date or time as Python
    and common formats write it. One of 6 characters or more is masked in any letter case (a
    validator may quote it upper-cased); a shorter one where it stands as a word of its own,
    as written (it is also a common word or number), or in any case if it mixes letters and
    digits (``AB12``).

    Each form is first looked for with a plain substring test (linear), the body's through an
    index of their first characters; only those found go into the replacing pattern. The work
    is charged to *budget* (a one-item list, shared by the request's messages); a message it
    cannot pay for is withheld whole, as is one too long, a value too deep or with too many
    parts to check, or one in a body that could not be looked through."""
    prefix = next((p for p in _PREFIXES if msg.startswith(p)), "")
    text = msg[len(prefix) :]
    if budget is None:
        budget = [MASKING_BUDGET]
    leaves = _leaves(value, max_depth=8)
    if len(text) > MAX_CHECKED_MESSAGE or leaves is None or (others and others.unknown):
        return _WITHHELD
    if not _charge(budget, len(leaves) * _PER_LEAF):
        return _WITHHELD
    try:
        forms = _forms(leaves, len(text), text, budget)
    except _Unpaid:
        return _WITHHELD
    # The substring tests: each is linear in the text and the form.
    if not _charge(budget, len(text) * len(forms) + sum(map(len, forms))):
        return _WITHHELD
    folded = text.casefold()
    long: set[str] = set()
    short: set[str] = set()
    codes: set[str] = set()  # short, of letters and digits both: no common word
    for form in forms:
        if len(form) < 6:
            if form.casefold() in folded:
                if any(c.isdigit() for c in form) and any(c.isalpha() for c in form):
                    codes.update((form, form.upper(), form.casefold()))
                elif form in text:
                    short.add(form)
        elif form.casefold() in folded:
            long.add(form)
    if others is not None:
        found = others.found_in(folded, budget)
        if found is None:
            return _WITHHELD
        long |= found
    if not long and not short and not codes:
        return prefix + text
    # (upper(): "ß" becomes "SS", which IGNORECASE does not match against "ß".)
    long = {
        f for form in long for f in (form, form.upper(), form.casefold()) if len(f) <= len(text)
    }
    found_size = sum(map(len, long)) + sum(map(len, short)) + sum(map(len, codes))
    # The pattern is compiled (per character), and may try each of them at every position.
    cost = (len(text) + _PER_PATTERN_CHAR) * found_size
    if found_size > MAX_PATTERN or not _charge(budget, cost):
        return _WITHHELD
    patterns = []
    if long:  # one pass, longest first, case-insensitive on the text itself (no index shift)
        alternatives = "|".join(map(re.escape, sorted(long, key=len, reverse=True)))
        patterns.append(re.compile(alternatives, re.IGNORECASE))
    for words, flags in ((short, 0), (codes, re.IGNORECASE)):
        if words:
            alternatives = "|".join(map(re.escape, sorted(words, key=len, reverse=True)))
            patterns.append(re.compile(rf"(?<![^\W_])(?:{alternatives})(?![^\W_])", flags))
    for pattern in patterns:
        text = pattern.sub(_MASK, text)
    return prefix + text


#: What making the forms of one value is charged (a few microseconds of work: numbers are
#: parsed and written several ways), and a date's more (~50 us), and compiling the pattern of
#: the values found, per character (~1 us): in the budget's units (~1 ns of work each).
_PER_LEAF = 2_000
_PER_NUMBER = 10_000
_PER_DATE = 50_000
_PER_PATTERN_CHAR = 1_000


class _Unpaid(Exception):
    """The request's masking budget cannot pay for what remains: withhold."""


def _json_text(text: str) -> str:
    """*text* as ``json.dumps`` writes it, without the quotes."""
    return json.dumps(text)[1:-1]


def _charge(budget: list[int], cost: int) -> bool:
    """Take *cost* from *budget*; ``False`` (and the budget spent) if it cannot pay."""
    if cost > budget[0]:
        budget[0] = 0
        return False
    budget[0] -= cost
    return True


class _Others:
    """The body's values of 6 characters or more, in their forms (but a date's other
    spellings), indexed by their first 6 characters (casefolded): finding those in a message
    costs one look-up per position of the message, however many there are. ``unknown`` when
    the body could not be looked through (too deep, or too many values): then no message of
    the application's is shown."""

    def __init__(self, body: Any, budget: list[int]) -> None:
        leaves = _leaves(body, max_depth=16) if body is not None else []
        self.unknown = leaves is None
        self.index: dict[str, list[tuple[str, str]]] = {}
        if not leaves:  # none, or the body could not be looked through
            return
        try:
            if not _charge(budget, len(leaves) * _PER_LEAF):
                raise _Unpaid
            forms = _forms(leaves, MAX_CHECKED_MESSAGE, budget=budget)
        except _Unpaid:
            self.unknown = True
            return
        for form in forms:
            folded = form.casefold()
            if len(form) >= 6 and len(folded) >= 6:
                self.index.setdefault(folded[:6], []).append((form, folded))

    def found_in(self, folded: str, budget: list[int]) -> set[str] | None:
        """The forms in *folded* (a casefolded message); ``None`` if *budget* cannot pay."""
        found: set[str] = set()
        index = self.index
        if not index:
            return found
        seen: set[str] = set()
        for i in range(len(folded) - 5):
            key = folded[i : i + 6]
            bucket = index.get(key)
            if bucket is None or key in seen:
                continue
            seen.add(key)
            if not _charge(budget, len(bucket) * len(folded)):
                return None
            found.update(form for form, low in bucket if low in folded)
        return found


def _forms(
    leaves: list[str], longest: int, message: str | None = None, budget: list[int] | None = None
) -> set[str]:
    """The forms of *leaves* a message may quote (see :func:`_masked`), none empty or longer
    than *longest* characters. A date's other spellings (each has its year) only for a date
    whose year is in *message*, each date charged to *budget* (they cost tens of microseconds).

    Raises:
        _Unpaid: when *budget* cannot pay for a date's spellings.
    """
    forms: set[str] = set()
    for leaf in leaves:
        stripped = leaf.strip()
        if not stripped or len(stripped) > longest:
            continue
        forms.add(stripped)
        if len(leaf) <= longest:
            forms.add(leaf)
            forms.add(repr(leaf)[1:-1])  # tabs, newlines, backslashes and quotes escaped
            if not leaf.isascii() or not leaf.isprintable() or '"' in leaf or "\\" in leaf:
                forms.add(ascii(leaf)[1:-1])  # {v!a}: J\xf6rg
                forms.add(_json_text(leaf))  # json.dumps(v): J\u00f6rg, pa\"ss
        if len(stripped) <= 40 and stripped[0] in _NUMBER_START:
            if budget is not None and not _charge(budget, _PER_NUMBER):
                raise _Unpaid
            forms.update(_number_forms(stripped))
            dated = len(stripped) >= 10 and _ISO_DATE.fullmatch(stripped[:10])
            if dated and message is not None and stripped[:4] in message:
                if budget is not None and not _charge(budget, _PER_DATE):
                    raise _Unpaid
                forms.update(_date_forms(stripped))
    return {f for f in forms if f and len(f) <= longest}


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _date_forms(text: str) -> tuple[str, ...]:
    """An ISO date's (or date and time's) other common spellings: ``1987-03-14`` as
    ``14.03.1987``, ``03/14/1987``, ``14 March 1987``, ...; ``2021-06-05T10:30:00Z`` as Python
    writes the datetime (``2021-06-05 10:30:00+00:00``) and without seconds or zone. None for
    what is not a date."""
    from datetime import date, datetime

    try:
        day = date.fromisoformat(text[:10])
    except ValueError:
        return ()
    formats = ("%d.%m.%Y", "%d/%m/%Y", "%m/%d/%Y", "%Y/%m/%d", "%d-%m-%Y", "%Y%m%d")
    names = (f"{day.day} {day:%B %Y}", f"{day:%B} {day.day}, {day.year}", f"{day:%d %b %Y}")
    forms = (text[:10], *(day.strftime(f) for f in formats), *names)
    if len(text) > 10 and text[10] in "Tt ":
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return forms
        forms += (
            str(moment),
            moment.isoformat(),
            f"{moment:%Y-%m-%d %H:%M:%S}",
            f"{moment:%Y-%m-%d %H:%M}",
            f"{moment:%d.%m.%Y %H:%M}",
        )
    return forms


_NUMBER_START = frozenset("+-.0123456789")


def _number_forms(text: str) -> tuple[str, ...]:
    """A number's or numeric string's other spellings (``"87654321.0"`` is quoted as
    ``87654321``; an amount as ``98,765.40``); none for what is not a number."""
    plain = text.replace(",", "")
    number: float
    try:
        number = int(plain)
    except ValueError:
        try:
            number = float(plain)
        except ValueError:
            return ()
    return _spellings(number)


def _spellings(number: float) -> tuple[str, ...]:
    """A number's common spellings: ``1234.5`` also as ``1,234.5``, ``1_234.5``, ``1 234.5``,
    ``1234.50``, ``1,234.50``, ``1234.5`` to one decimal, ``1235`` rounded (``1,235``); none
    for NaN, the infinities, or a magnitude of 10**50 or more (written at length, each would
    cost microseconds, and a message hardly spells one out)."""
    try:
        if not abs(number) < 1e50:
            return ()
        whole = round(number)
        grouped = f"{number:,}"
        forms = [
            str(number),
            grouped,
            f"{number:_}",
            grouped.replace(",", " "),
            f"{number:.2f}",
            f"{number:,.2f}",
            f"{number:.1f}",
            str(whole),
            f"{whole:,}",
        ]
    except (ValueError, OverflowError, TypeError):
        return ()
    return tuple(forms)


def _leaves(value: Any, max_depth: int = 4) -> list[str] | None:
    """The strings and numbers in *value*, as text (mappings, a form's every value, and
    sequences followed; bytes decoded); ``None`` if there are more than :data:`MAX_LEAVES`,
    containers deeper than *max_depth* levels, or an int too long to write."""
    found: list[str] = []
    stack: list[tuple[Any, int]] = [(value, 0)]
    limit = 10 * MAX_LEAVES
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, (bytes, bytearray)):  # a raw body (text/plain) validated as str
            found.append(bytes(item[: 4 * MAX_CHECKED_MESSAGE]).decode("utf-8", "replace"))
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            try:  # (its other spellings are made from the text, as a numeric string's)
                found.append(str(item))
            except ValueError:  # past the interpreter's digits limit: no message quotes it
                return None
        elif isinstance(item, (dict, list, tuple, Mapping)):
            if depth >= max_depth or len(stack) + len(item) > limit:
                return None  # deeper or wider than we look: what it holds could be quoted
            if isinstance(item, (list, tuple)):
                items: Any = item
            elif hasattr(item, "multi_items"):  # a form (FormData): every value of a key
                items = [v for _, v in item.multi_items()]
            else:
                items = item.values()
            stack.extend((v, depth + 1) for v in items)
        if len(found) > 4 * MAX_LEAVES:
            return None
    return found


def _redact_text(text: str) -> str:
    from ..redaction import redact_text

    try:
        return redact_text(text)
    except Exception as exc:  # redaction never raises; if it did, say nothing of the text
        _errors.report("redaction", exc)
        return "Invalid value"
