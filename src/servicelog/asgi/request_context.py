"""``RequestContextMiddleware``: request ID, trace context, access log, last-resort 500.

A pure ASGI middleware. For every HTTP (and WebSocket) connection it:

1. reads ``X-Request-ID`` (configurable), accepts it only if safe (see :mod:`.ids`) or makes a
   new one, and continues or starts a W3C trace (``traceparent``);
2. opens a request scope, so ``request_id``, ``trace.id`` and ``span.id`` are on every log line
   of the request, including lines from threads and tasks, and values bound anywhere in the
   request (``servicelog.bind``) reach the access record;
3. sets ``request.state.request_id`` (and ``request.state.trace``);
4. adds the ``X-Request-ID`` header to every response it sees start (and to a WebSocket's
   ``websocket.accept`` or denial response);
5. writes one access record when an HTTP response ends (timed at its last body message), or a
   WebSocket connection
   (``event.outcome: failure`` and level error when the application raised, even after its
   response started); with buffered sinks it is
   built and emitted at the end of the event loop's iteration, in a burst with the others
   (``Pipeline.defer_build``), from the values and the context of the response's end;
6. if the application raises, answers with ``error_app`` (the application's own handler for
   unhandled errors, if given) when no response was started, logs the exception once (unless a
   servicelog handler already did), answers a minimal JSON 500 with the request ID if still no
   response was started, and does not re-raise (the response is complete; the server would
   only log the error a second time); an application that returns without starting a
   response while its client is still there is answered the same way, as a
   :class:`NoResponseError` (the server would answer its own 500, without the request ID);
7. when the application has shut down (its lifespan), drains the sinks and has them write
   each later record at once: uvicorn then logs its last lines and re-raises a SIGTERM it
   handled, whose default action ends the process without ``atexit``.

``servicelog.fastapi.install(app)`` puts it where Starlette's ``ServerErrorMiddleware`` was, the
outermost layer, and hands it that middleware's handler as ``error_app``: even unhandled 500s
carry the header (the gap in asgi-correlation-id issue #19), and a request crosses one layer
less than in the bare application.
"""

from __future__ import annotations

import logging
import time
from asyncio import CancelledError, ensure_future, wait
from asyncio import get_running_loop as _get_running_loop
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from time import monotonic
from typing import Any

from .. import _errors
from .. import logger as _logger
from .._config import drain_for_shutdown, resume_writers
from ..context import _local_get, _scope_get, forget_context, raised_in
from ..context import _scope as _scope_var
from ..integrations.sentry import capture_unhandled
from ..levels import level_name
from ..logger import get_logger
from ..record import (
    LEVEL,
    LOGGER,
    MESSAGE,
    THREAD,
    TIMESTAMP,
    Record,
    format_timestamp,
    thread_name,
)
from .access_log import AccessLog, client_ip
from .ids import (
    REQUEST_ID_HEADERS,
    _requests,
    continue_trace,
    next_request,
    parse_request_id,
    rejected_hint,
)
from .responses import ErrorFormat, check_error_format, minimal_500_content
from .tracebacks import log_exception

__all__ = [
    "NoResponseError",
    "RequestContextMiddleware",
    "mark_logged",
    "replaced_by_body_limit",
    "was_logged",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: Answers an exception the application raised before it started a response. ``True``: a
#: handler of the application's for that exception answered (an ``AuthenticationException``
#: raised in a middleware): handled, no failure. An exception: the one answered as unhandled
#: instead (that handler's own failure).
ErrorApp = Callable[[Scope, Receive, Send, Exception], Awaitable[bool | Exception | None]]

_LOGGED = "__servicelog_logged__"
#: In ``scope["state"]`` once a RequestContextMiddleware took the request (an inner one, in a
#: mounted application that was installed too, then passes it through).
_HANDLED = "__servicelog_request__"
#: In ``scope["state"]`` once a WebSocket connection was accepted: an error handler's HTTP
#: response can no longer be sent (a denial response comes before the handshake only).
WEBSOCKET_ACCEPTED = "servicelog.websocket_accepted"


def was_logged(exc: BaseException) -> bool:
    """Whether *exc* was logged with its traceback already (:func:`mark_logged`)."""
    return bool(getattr(exc, _LOGGED, False))


def mark_logged(exc: BaseException) -> None:
    """Note that *exc* was logged with its traceback, so nobody logs it again."""
    try:
        setattr(exc, _LOGGED, True)
    except Exception:  # exceptions with __slots__ or read-only attributes
        pass


def _identity(text: str) -> str:
    return text


def _query_redactor() -> Callable[[str], str]:
    import importlib

    try:  # the redaction policy's query-string redactor
        redact: Callable[[str], str] = importlib.import_module("servicelog.redaction").redact_query
    except (ImportError, AttributeError):  # pragma: no cover - redaction ships with the core
        return _identity
    return redact


_LEVEL_NAMES = {levelno: level_name(levelno) for levelno in (20, 30, 40)}
_time_ns = time.time_ns
_perf_ns = time.perf_counter_ns
_pop_request = _requests.pop  # the list is only ever cleared in place, never replaced


# RFC 9110 section 5.6.2: a field name is a token, one or more tchar.
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def check_options(request_id_header: object, access_log: object, trust_request_id: object) -> None:
    """Refuse, once at construction, options that would fail every request later.

    Raises:
        ConfigError: naming the first bad option, the value and what is allowed.
    """
    from ..exceptions import ConfigError

    if not (
        isinstance(request_id_header, str)
        and request_id_header
        and _TCHAR.issuperset(request_id_header)
    ):
        raise ConfigError(
            "request_id_header",
            request_id_header,
            "a non-empty HTTP header name: ASCII letters, digits and !#$%&'*+-.^_`|~ (RFC 9110)",
        )
    if access_log is not None and not isinstance(access_log, (bool, AccessLog)):
        raise ConfigError(
            "access_log",
            access_log,
            "a servicelog.asgi.AccessLog, True (defaults), or False or None (no access record)",
        )
    if not isinstance(trust_request_id, bool):
        raise ConfigError("trust_request_id", trust_request_id, "True or False")


class NoResponseError(RuntimeError):
    """An application returned without starting a response (its client still there): answered
    and logged as any exception of the application's."""


class RequestContextMiddleware:
    """Request ID, trace context, request scope, access log and a last-resort 500.

    Args:
        app: the ASGI application to wrap.
        request_id_header: the header carrying the request ID, in and out.
        access_log: an :class:`AccessLog`, or ``False`` (or ``None``) to write none.
        trust_request_id: accept a valid incoming ID (``False``: always generate).
        error_app: answers an exception raised before a response was started (for example the
            application's ``Exception`` handler); its response passes through this middleware
            like any other. Without one, or if it fails, a minimal JSON 500 is sent. If it
            returns ``True``, a handler for that exception answered (one raised in a middleware
            outside the application's exception handling): it is no failure, and not logged as
            unhandled (a 5xx is still reported to Sentry, as Sentry's own layer reports it
            inside). If it returns an exception (that handler's failure), that one is logged
            and reported as unhandled.
        too_large_app: answers, in place of Starlette's request-body limit (FastAPI's
            ``max_body_size``), the plain-text ``413 Content Too Large`` that limit sends from
            inside the application, where no exception handler sees it; it is given an
            ``HTTPException(413)``. Without one, or if it fails before it starts a response,
            Starlette's answer is sent as it was.
        error_format: the shape of the minimal 500 (``"envelope"``, default, or ``"problem"``,
            RFC 9457): the error handlers' format, for when there are none or they fail.

    Raises:
        ConfigError: for a bad option (checked here, once, not on each request).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        request_id_header: str = "X-Request-ID",
        access_log: AccessLog | bool | None = True,
        trust_request_id: bool = True,
        error_app: ErrorApp | None = None,
        too_large_app: ErrorApp | None = None,
        error_format: ErrorFormat = "envelope",
    ) -> None:
        check_options(request_id_header, access_log, trust_request_id)
        self.error_format: ErrorFormat = check_error_format(error_format)
        self.app = app
        self.error_app = error_app
        self.too_large_app = too_large_app
        self.header = request_id_header
        self._header_key = request_id_header.lower().encode("latin-1")
        REQUEST_ID_HEADERS.add(request_id_header.lower())
        if access_log is True:
            access_log = AccessLog()
        self.access_log: AccessLog | None = access_log or None
        self.trust_request_id = trust_request_id
        self._log = get_logger("servicelog.request")
        self._access = get_logger(
            self.access_log.logger if self.access_log else "servicelog.access"
        )
        self._redact_query = _query_redactor()
        if self.access_log and self.access_log.enabled:
            replace_uvicorn_access_log()
        filter_uvicorn_after_app()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(
                scope, receive, self._lifespan_send(send) if kind == "lifespan" else send
            )
            return
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        elif _HANDLED in state:  # an inner copy (a mounted app installed too): the outer one acts
            await self.app(scope, receive, send)
            return
        start = _perf_ns()
        # One pass over the headers (the first of each name wins, deterministically) and one
        # pop for the IDs and the new trace (made ahead in a pool): at ~1 us each, these were a
        # third of the middleware's cost. The user agent is picked up in the same pass, for
        # the access record. (A dict of the headers, made in C, is slower: ~0.4 us for one
        # header against ~0.2 us, and still slower for a browser's dozen.)
        header_key = self._header_key
        raw_id = raw_parent = agent = None
        twice = False
        headers = scope.get("headers", ())
        if type(headers) is not list:  # (a server's, always: no copy)
            headers = _listed(scope)
        for key, value in headers:
            if key == header_key:
                if raw_id is None:
                    raw_id = value
                else:
                    twice = True
            elif key == b"traceparent":
                # Twice is invalid (W3C Trace Context 3.2): an empty value starts a new trace.
                raw_parent = value if raw_parent is None else b""
            elif key == b"user-agent" and agent is None:
                agent = value
        try:  # the IDs and the new trace they start, from a pool (one pop)
            request_id, trace_id, span_id, trace = _pop_request()
        except IndexError:
            request_id, trace_id, span_id, trace = next_request()
        rejected = None
        if raw_id is not None:
            accepted = parse_request_id(_latin1(raw_id)) if self.trust_request_id else None
            if accepted is not None:
                request_id = accepted
            elif self.trust_request_id:  # (the bytes themselves, for a server's bytes)
                rejected = rejected_hint(_latin1(raw_id).encode("latin-1", "replace"))
            if accepted is None or twice:
                # What the application (and an error tracker) reads as the header is the
                # request ID: a rejected, untrusted or repeated value is not passed on.
                scope["headers"] = _with_request_id(headers, header_key, request_id)
                # Nor is it kept in this frame's locals, which an error tracker records with
                # the traceback of an exception caught here (sentry-sdk's frame variables).
                del headers, raw_id, value
        if raw_parent is not None:  # else the pooled new trace
            trace = continue_trace(_latin1(raw_parent), trace_id, span_id)
            trace_id = trace.trace_id  # the caller's trace (span_id stays ours)
        state[_HANDLED] = True
        state["request_id"] = request_id
        state["trace"] = trace
        # The request scope, opened directly (this runs once per request: no helper layers).
        token = _scope_var.set({"request_id": request_id, "trace.id": trace_id, "span.id": span_id})
        try:
            if rejected is not None:
                self._log.warning(
                    f"Rejected an invalid {self.header} header; using a new request ID",
                    **{"request_id.rejected": rejected},
                )
            header = (header_key, request_id.encode("latin-1"))
            if kind == "websocket":
                await self._websocket(scope, receive, send, header, start, agent, request_id)
                return
            status = 0
            body_bytes = 0
            ended = 0  # when the response's last body message was sent (a background task may
            # run after it, before the application returns)
            started = False
            # The start of a body limit's 413, until its body shows whether it is Starlette's
            # plain text (then too_large_app answers instead).
            held: Message | None = None

            # A plain function that returns send()'s awaitable: the app awaits it the same
            # way, and no coroutine of our own is made for every message.
            def send_with_id(message: Message) -> Awaitable[None]:
                nonlocal status, body_bytes, started, held, ended
                if held is not None:  # the message after a held 413's start decides
                    held_start, held = held, None

                    # (Not send_with_id itself: a function that refers to itself is a reference
                    # cycle, freed only by the cycle collector.)
                    def account(sent: Message) -> None:
                        nonlocal status, body_bytes, started
                        if sent["type"] == "http.response.start":
                            started = True
                            status = sent["status"]
                        else:
                            body_bytes += len(sent.get("body", b""))

                    return self._answer_too_large(
                        scope, receive, send, header, account, held_start, message
                    )
                kind = message["type"]
                if kind == "http.response.body":
                    body_bytes += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        ended = _perf_ns()
                elif kind == "http.response.start":
                    status = message["status"]
                    if status == 413 and self.too_large_app is not None and _BODY_LIMIT in scope:
                        held = message
                        return _done()
                    started = True
                    headers = list(message.get("headers", ()))
                    for key, _ in headers:  # (faster than a test in C through map())
                        if key.lower() == header_key:
                            break
                    else:
                        headers.append(header)
                    message = {**message, "headers": headers}
                return send(message)

            failed = False
            try:
                await self.app(scope, receive, send_with_id)
                if held is not None:  # a 413's start and nothing after it: sent as it was
                    held_start, held, started = held, None, True
                    await send(_with_header(held_start, header))
                elif not started and not await _client_left(scope, receive, send):
                    # The server would answer its own 500, without the request ID: answered
                    # as an exception of the application's is (its error format, logged once).
                    raise NoResponseError("The application returned without starting a response")
            except Exception as exc:
                failed = True
                if held is not None:  # a 413's start held for what follows, which never came
                    held, status = None, 0
                if not started and self.error_app is not None:
                    try:
                        answered = await self.error_app(scope, receive, send_with_id, exc)
                    except Exception as failure:
                        _errors.report("error handler", failure)
                    else:
                        if answered is True:  # a handler of the application's for it answered
                            failed = False
                            if status >= 500:
                                capture_unhandled(exc, request_id)
                            exc.__traceback__ = None  # (a reused instance would pile them up)
                            forget_context(exc)
                            return
                        if isinstance(answered, Exception):  # that handler's own failure
                            exc = answered
                if not was_logged(exc):
                    fields = {
                        **(raised_in(exc) or {}),  # bound where it was raised (a block left)
                        "http.request.method": scope.get("method"),
                        "url.path": scope.get("path"),
                    }
                    log_exception(self._log, "Unhandled exception", exc, fields)
                    mark_logged(exc)
                capture_unhandled(exc, request_id)  # not re-raised: Sentry's layer can't see it
                if started:  # cut off: uvicorn says so, after this returns, in this task
                    _CUT_OFF.set(request_id)
                else:
                    status = 500
                    body_bytes = await _send_500(send, header, request_id, self.error_format)
            except BaseException as exc:
                # It propagates. A cancellation (the server's), KeyboardInterrupt or SystemExit is
                # not the application's failure: unanswered, the access record says 499. Any
                # other is, and the server answers 500 if no response was started.
                if held is not None:  # never sent
                    held, status = None, 0
                if not isinstance(exc, (CancelledError, KeyboardInterrupt, SystemExit)):
                    failed = True
                    status = status or 500
                raise
            finally:
                options = self.access_log
                if options is not None and options.enabled:
                    # 0: no response was started (the client went away): nginx calls that 499.
                    self._write_access(
                        scope, status or 499, start, body_bytes, options, agent, failed, ended
                    )
        finally:
            _scope_var.reset(token)

    def _lifespan_send(self, send: Send) -> Send:
        """*send* for the lifespan: once the application has shut down, the sinks are drained
        and write each later record at once (uvicorn 0.29+ then logs its last lines and
        re-raises a SIGTERM it handled, whose default action ends the process without
        ``atexit``); a startup hands the writing back to the writer threads."""

        def send_lifespan(message: Message) -> Awaitable[None]:
            kind = message.get("type")
            try:
                if kind == "lifespan.startup.complete":
                    resume_writers()
                elif kind == "lifespan.shutdown.complete" or kind == "lifespan.shutdown.failed":
                    drain_for_shutdown()
            except Exception as exc:
                _errors.report("lifespan", exc)
            return send(message)

        return send_lifespan

    async def _websocket(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        header: tuple[bytes, bytes],
        start: int,
        agent: bytes | None,
        request_id: str,
    ) -> None:
        """A WebSocket connection: the request ID on its ``websocket.accept`` (or denial
        response), and one access record when it ends: 101 if it was accepted, 403 if it was
        closed before (the server's answer), the denial response's own status, 499 if the
        client left before the handshake, or 500 if the application ended or raised before
        either (the server answers 500).

        An exception of the application's is logged here, once, in the connection's scope (with
        its request ID), and answered: after the handshake by closing the connection with code
        1011 (internal error; the server would drop it without a close frame), before it by a
        500 denial response with the request ID (where the server offers the denial response
        extension; else it propagates and the server answers 500). A client that went away
        (``WebSocketDisconnect``) ends the connection; that is no failure."""
        status = 0
        # The connection is over for the client: closed by the app, a denial response sent
        # whole, or the client's own disconnect received.
        closed = False
        state = scope["state"]

        async def send_ws(message: Message) -> None:
            # (A coroutine of our own: a connection sends few messages, and the status counts
            # once the server took the message; a client gone mid-handshake makes it raise.)
            nonlocal status, closed
            kind = message["type"]
            # The accept, or the denial response's start (its extension): with the header.
            if kind == "websocket.accept" or kind == "websocket.http.response.start":
                message = _with_header(message, header)
            try:
                await send(message)
            except Exception as exc:  # the server refuses: this client is gone
                if isinstance(exc, OSError) or type(exc).__name__ in _CLIENT_LEFT:
                    closed = True
                raise
            if kind == "websocket.accept":
                status = 101
                state[WEBSOCKET_ACCEPTED] = True  # (the error handlers close, not answer, then)
            elif kind == "websocket.http.response.start":
                status = message.get("status", 403)
            elif kind == "websocket.close":
                closed = True
                status = status or 403
            elif kind == "websocket.http.response.body" and not message.get("more_body"):
                closed = True
                _DENIAL_SENT.set(True)  # (in this connection's task: not reset)

        async def receive_ws() -> Message:
            nonlocal closed
            message = await receive()
            if message.get("type") == "websocket.disconnect":
                closed = True  # nothing more can be sent (a close would be refused)
            return message

        failed = left = False
        try:
            await self.app(scope, receive_ws, send_ws)
        except Exception as exc:
            # The client going away is how a connection ends, not a failure of the app's.
            left = type(exc).__name__ in _CLIENT_LEFT
            if left and status == 101 and closed:
                # This client left (its disconnect received, or a send refused): over, not
                # raised again for the server to log as an error with a traceback.
                return
            if left and status != 101:
                raise
            # (A WebSocketDisconnect of another connection's, a peer's: a failure like any.)
            left = False
            failed = True
            # Answered here: before the handshake where the server takes a denial response,
            # or once accepted or over. Else (no such extension, or a denial response cut
            # off) the server answers, as it does without this middleware.
            if not (
                (not status and "websocket.http.response" in (scope.get("extensions") or ()))
                or status == 101
                or closed
            ):
                raise
            if not was_logged(exc):
                fields = {
                    **(raised_in(exc) or {}),
                    "url.path": scope.get("path"),
                    "network.protocol": "websocket",
                }
                log_exception(self._log, "Unhandled exception", exc, fields)
                mark_logged(exc)
            capture_unhandled(exc, request_id)
            try:
                if not status and not closed:
                    await _deny_500(request_id, send_ws, self.error_format)
                elif status == 101 and not closed:
                    await send_ws({"type": "websocket.close", "code": 1011, "reason": ""})
            except Exception as failure:  # the client went away meanwhile: nothing to answer
                if type(failure).__name__ not in _CLIENT_LEFT and not isinstance(failure, OSError):
                    _errors.report("websocket answer", failure)
        except BaseException as exc:
            if not isinstance(exc, (CancelledError, KeyboardInterrupt, SystemExit)):
                failed = True  # pragma: no cover - an exception that is no Exception
            raise
        finally:
            options = self.access_log
            if options is not None and options.enabled:
                # No handshake: the client left first (499, as for HTTP), or the server
                # answers 500.
                status = status or (499 if left else 500)
                self._write_access(
                    scope, status, start, 0, options, agent, failed, build=self._ws_record
                )

    def _ws_record(self, *args: Any) -> Record | None:
        """The access record of a WebSocket connection: the HTTP one, for the upgrade request
        (``GET``), with ``network.protocol: websocket``, without a body size, its duration the
        connection's."""
        record = self._access_record(*args)
        if record is not None:
            path = record.get("url.path", "")
            record[MESSAGE] = f"WebSocket {path} {record['http.response.status_code']}"
            record["http.request.method"] = "GET"
            record["network.protocol"] = "websocket"
            record.pop("http.response.body.bytes", None)
        return record

    async def _answer_too_large(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        header: tuple[bytes, bytes],
        account: Callable[[Message], None],
        start: Message,
        body: Message,
    ) -> None:
        """Answer a held 413 with ``too_large_app`` if the message after its *start* is the
        whole plain-text *body* of Starlette's request-body limit, else send both as they were;
        with *header*, and every message sent told to *account* (for the access record)."""
        answered = False

        async def send_answer(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
                message = _with_header(message, header)
            account(message)
            await send(message)

        answer = self.too_large_app
        if (
            answer is not None
            and body["type"] == "http.response.body"
            and body.get("body", b"") == _TOO_LARGE
            and not body.get("more_body", False)
        ):
            from starlette.exceptions import HTTPException

            state = scope["state"]  # set by __call__
            state[_ANSWERING] = True  # this answer is final (see replaced_by_body_limit)
            try:
                await answer(scope, receive, send_answer, HTTPException(413, "Content Too Large"))
                return
            except Exception as exc:
                if answered:  # a response is under way: the application's failure, as any other
                    raise
                _errors.report("body limit answer", exc)
            finally:
                state.pop(_ANSWERING, None)
        await send_answer(start)
        await send_answer(body)

    def _write_access(
        self,
        scope: Scope,
        status: int,
        start: int,
        body_bytes: int,
        options: AccessLog,
        agent: bytes | None,
        failed: bool = False,
        ended: int = 0,
        build: Callable[..., Record | None] | None = None,
    ) -> None:
        """Defer the access record (see :meth:`_access_record`). *ended*: when the response
        ended (``perf_counter_ns``), if before now: its duration and time are taken there."""
        try:
            path = scope.get("path", "")
            # Only skipped and sampled paths need wanted() (most requests are neither); a
            # failed request is always logged, like an error status.
            if (
                (path in options.skip or path in options.sample)
                and not failed
                and not options.wanted(path, status)
            ):
                return
            now = _perf_ns()
            duration = (ended or now) - start
            # An exception after the response started (a streamed body cut off) is an error
            # whatever the status line said.
            levelno = 40 if status >= 500 or failed else 30 if status >= 400 else 20
            if levelno < self._access._levelno:  # the access logger's own level (levels=...)
                return
            # The record is built and emitted in the burst at the end of this event-loop
            # iteration, in this request's context (``Pipeline.defer_build``): done here, one
            # record at a time between two requests' framework code, that code ran cold. What
            # belongs to this moment (the time, the thread) is taken now. The burst runs on the
            # running event loop (asked only when one is scheduled; none, in a sync test
            # harness: built at once).
            # The scope's values, not the scope: held until the burst, a scope keeps what the
            # framework hung on it (its exit stacks, the route, the path parameters) from being
            # freed with the request, and the next requests then allocate colder memory: in
            # 2026-11 that cost ~3.5 us per request, more than building the record.
            if options.trusted_proxies:
                ip = client_ip(scope, options.trusted_proxies)
            else:  # the socket peer (client_ip without the header lookup)
                peer = scope.get("client")
                ip = peer[0] if peer else None
            _logger._runtime.pipeline.defer_build(
                build or self._access_record,
                (scope.get("method", ""), path, scope.get("http_version", ""),
                 scope.get("query_string"), ip, status, duration, body_bytes, agent, failed,
                 _time_ns() - (now - ended if ended else 0), thread_name(), levelno),
                levelno,
                _get_running_loop,
            )  # fmt: skip
        except Exception as exc:
            _errors.report("access log", exc)

    def _access_record(
        self,
        method: str,
        path: str,
        http_version: str,
        query: object,
        ip: str | None,
        status: int,
        duration: int,
        body_bytes: int,
        agent: bytes | None,
        failed: bool,
        now: int,
        thread: str,
        levelno: int,
    ) -> Record | None:
        """The access record, whole: the head every record has, the request's context (its
        keys were checked against the reserved ones when bound), then the ECS HTTP fields,
        stored one by one (a dict display with ``**context`` in its middle builds a second dict
        and resizes the first: ~0.2 us more). ``None`` if it cannot be built: counted under
        "access log", as a failure at the response's end is."""
        try:
            record: Record = {
                TIMESTAMP: format_timestamp(now),
                LEVEL: _LEVEL_NAMES[levelno],
                MESSAGE: f"{method} {path} {status}",
                LOGGER: self._access.name,
                THREAD: thread,
            }
            scoped = _scope_get()
            if scoped:
                record.update(scoped)
            local = _local_get()
            if local:
                record.update(local)
            record["http.request.method"] = method
            record["url.path"] = path
            record["http.response.status_code"] = status
            record["event.duration"] = duration
            record["http.response.body.bytes"] = body_bytes
            record["http.version"] = http_version
            if query:
                record["url.query"] = self._redact_query(_bounded_query(_latin1(query)))
            if ip:
                record["client.ip"] = ip
            if agent:  # the first User-Agent header, found in the middleware's header pass
                # (_latin1's first case inline: a Python call less per record)
                text = agent.decode("latin-1") if type(agent) is bytes else _latin1(agent)
                record["user_agent.original"] = text[:512]
            if failed:  # the application raised (its exception is logged apart, once)
                record["event.outcome"] = "failure"
            return record
        except Exception as exc:
            _errors.report("access log", exc)
            return None


#: Exceptions that say a WebSocket's client went away (Starlette's, uvicorn's), by name: no
#: failure of the application's.
_CLIENT_LEFT = frozenset({"WebSocketDisconnect", "ClientDisconnected"})

#: Starlette's request-body limit: the scope key it sets while it acts, and its 413's body.
_BODY_LIMIT = "starlette.max_body_size"
_TOO_LARGE = b"Content Too Large"
#: The scope key where that limit keeps its state while it acts (private: without it, as in a
#: Starlette that renames it, :func:`replaced_by_body_limit` is always ``False``).
_LIMIT_RESPONDER = "starlette._body_limit_responder"
#: In ``scope["state"]`` while ``too_large_app`` answers: that answer is the one sent.
_ANSWERING = "servicelog.answering_413"


def replaced_by_body_limit(scope: Scope) -> bool:
    """Whether the response about to be made will never reach the client: Starlette's
    request-body limit (FastAPI's ``max_body_size``) acts around it, the request declared a
    larger body, and no response has started, so the limit sends its 413 in its place (its
    rule when a response starts), which ``too_large_app`` then answers and logs. The error
    handlers do not log a client error that the client never gets."""
    responder = scope.get(_LIMIT_RESPONDER)
    if responder is None or _ANSWERING in scope.get("state", ()):
        return False
    declared = getattr(responder, "content_length", None)
    limit = getattr(responder, "max_body_size", None)
    return (
        type(declared) is int
        and type(limit) is int
        and declared > limit
        and getattr(responder, "response_started", True) is False
    )


async def _deny_500(request_id: str, send: Send, fmt: ErrorFormat) -> None:
    """The minimal JSON 500 as a WebSocket denial response (the request ID's header is added
    by *send*)."""
    body, media = minimal_500_content(fmt, request_id)
    headers = [(b"content-type", media.encode()), (b"content-length", b"%d" % len(body))]
    await send({"type": "websocket.http.response.start", "status": 500, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


async def _done() -> None:
    """An awaitable that does nothing (a held message is sent later, or never)."""


#: The longest ``url.query`` an access record keeps (characters).
MAX_QUERY = 2048


def _bounded_query(query: str) -> str:
    """*query* cut to :data:`MAX_QUERY` characters, before it is redacted, at the end of a
    whole ``key=value`` pair: a pair cut in its middle could keep part of a secret that no
    pattern recognises any more (15 digits of a card number). What is cut is marked."""
    if len(query) <= MAX_QUERY:
        return query
    end = max(query.rfind("&", 0, MAX_QUERY), query.rfind(";", 0, MAX_QUERY))
    return f"{query[:end]}&…" if end > 0 else "…"


def _with_request_id(headers: Any, key: bytes, request_id: str) -> list[tuple[bytes, bytes]]:
    """*headers* with the value of every *key* header replaced by *request_id*."""
    value = request_id.encode("latin-1")
    return [(k, value) if k == key else (k, v) for k, v in headers]


def _listed(scope: Scope) -> list[Any] | tuple[Any, ...]:
    """The request's headers as a list, stored back in *scope*: ASGI allows any iterable, and
    one that can be read only once must be left for the application (Starlette does the same).
    A tuple is read again as often as needed: left as it is. Headers that are no iterable are
    none."""
    headers = scope.get("headers")
    if type(headers) is tuple:
        return headers
    try:
        listed = list(headers or ())
    except TypeError:
        listed = []
    scope["headers"] = listed
    return listed


def _stream_closed(send: Send) -> bool:
    """Whether the server says the client has gone, on the object whose method *send* is:
    hypercorn's stream (``closed``), which hands the application ``http.disconnect`` once, so
    an application that received it and returned leaves nothing for :func:`_client_left` to
    read but what it did not. (uvicorn answers every later ``receive()`` with the
    disconnect.)"""
    return getattr(getattr(send, "__self__", None), "closed", None) is True


def _disconnected(send: Send) -> bool:
    """Whether uvicorn's request cycle, the object whose method *send* is, saw its client go
    (``disconnected``): asked where ``receive()`` may not be (a request expecting ``100
    Continue``, which uvicorn would send, and the client its whole body)."""
    return getattr(getattr(send, "__self__", None), "disconnected", None) is True


async def _client_left(scope: Scope, receive: Receive, send: Send) -> bool:
    """Whether the client has gone: ``receive()`` answers ``http.disconnect`` within
    :data:`_WAIT` (a server answers at once once it knows; else it waits, and the call is
    cancelled). A request body the application left unread comes first (hypercorn queues
    ten of its messages at most, then reads on; uvicorn reads on when asked): it is read past,
    each part within :data:`_WAIT_BODY`, until the disconnect comes (also when the server's
    stream already says it closed, :func:`_stream_closed`: hypercorn may be waiting to put the
    disconnect), for up to :data:`_UNREAD_MESSAGES` messages and :data:`_READ_PAST` seconds
    (but at least :data:`_MIN_MESSAGES` messages); a client still sending after them is taken
    to be there (unless the stream said it closed). Not asked for a request that expects
    ``100 Continue``: uvicorn would send it, and the client its whole body, for a 500 (its
    request cycle says whether the client has gone, :func:`_disconnected`)."""
    # A stream already closed is still read to its disconnect: hypercorn may be waiting to
    # put it behind a full queue, and its connection (under HTTP/2, every stream on it) with it.
    closed = _stream_closed(send)
    if not closed and any(key == b"expect" for key, _ in scope.get("headers", ())):
        return _disconnected(send)
    deadline = monotonic() + _READ_PAST
    timeout = _WAIT
    for count in range(_UNREAD_MESSAGES):
        waiting = ensure_future(receive())
        try:  # (a server may need several turns of the event loop: reading on, its socket's end)
            await wait((waiting,), timeout=timeout)
        finally:  # (also when this task is cancelled meanwhile: no receive() left pending)
            if not waiting.done():
                waiting.cancel()
                await wait((waiting,))  # (does not raise: the cancellation is the call's)
        if waiting.cancelled() or waiting.exception() is not None:
            return closed
        message = waiting.result()
        kind = message.get("type") if isinstance(message, dict) else None
        if kind != "http.request":
            return closed or kind == "http.disconnect"
        closed = closed or _stream_closed(send)
        left = deadline - monotonic()
        if left <= 0 and count >= _MIN_MESSAGES:  # (the time is wall-clock: a busy event
            break  # loop's other tasks spend it too, so a few messages are read whatever it is)
        # More of the body: its next part may take longer (uvicorn with h11 resumes reading a
        # socket it had paused, and parses in Python). The body whole, or the stream closed:
        # the disconnect comes at once.
        more = message.get("more_body", False) and not closed
        timeout = min(_WAIT_BODY, max(left, _WAIT)) if more else _WAIT
    return closed


#: How many messages of a request body the application left unread :func:`_client_left` reads
#: past, to a disconnect queued after them (a 4 MB body is ~60 of hypercorn's), and for how
#: long in all (seconds); how long it waits for the first (seconds): uvicorn on asyncio with
#: h11 needs five turns of the event loop to see the end of a socket whose reading it had
#: paused, on uvloop three; and for each next part of a body (a 4 MB body's parts under
#: uvicorn with h11 came more than 50 ms apart on this 2-core machine). At least
#: _MIN_MESSAGES are read whatever the time: it is wall-clock, which a busy event loop's other
#: tasks spend too.
_UNREAD_MESSAGES = 4096
_READ_PAST = 1.0
_MIN_MESSAGES = 16
_WAIT = 0.05
_WAIT_BODY = 0.5


def _latin1(value: object) -> str:
    """A header's (or the query string's) text: bytes as ASGI gives them, decoded as Latin-1;
    other bytes-like values likewise; a ``str`` as it is (a server that breaks the spec)."""
    if type(value) is bytes:
        return value.decode("latin-1")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("latin-1")
    return str(value)


async def _send_500(
    send: Send, header: tuple[bytes, bytes], request_id: str, fmt: ErrorFormat
) -> int:
    """Send the minimal JSON 500 in format *fmt* with the request ID's *header*; its body's
    size."""
    body, media = minimal_500_content(fmt, request_id)
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", media.encode()),
                (b"content-length", str(len(body)).encode()),
                header,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
    return len(body)


def _with_header(message: Message, header: tuple[bytes, bytes]) -> Message:
    """A copy of *message* with *header* added to its headers, unless one of that name is
    there. (``send_with_id`` does the same inline, for every response.)"""
    headers = list(message.get("headers", ()))
    if all(key.lower() != header[0] for key, _ in headers):
        headers.append(header)
    return {**message, "headers": headers}


def replace_uvicorn_access_log() -> None:
    """Turn uvicorn's access log off: servicelog's access record replaces it.

    Disabling the logger is not enough. uvicorn decides per connection whether to log access
    lines with ``logging.getLogger("uvicorn.access").hasHandlers()``, and when that is true it
    formats the client address and the quoted path of every request before the disabled logger
    drops the call (measured: a few microseconds per request). So the logger also loses its
    handlers and stops propagating to the root, where servicelog's handler would answer.
    """
    access = logging.getLogger("uvicorn.access")
    access.disabled = True
    access.propagate = False
    for handler in list(access.handlers):
        access.removeHandler(handler)
    from ..frontends import stdlib

    stdlib.SILENCED.add("uvicorn.access")
    stdlib.SILENCED.add("hypercorn.access")  # (dropped by its filter: it does not propagate)
    # A WebSocket connection's access lines, which uvicorn (and the websockets library it
    # drives) write on its error logger: the WebSocket access record replaces them.
    errors = logging.getLogger("uvicorn.error")
    if _not_websocket_access not in errors.filters:
        errors.addFilter(_not_websocket_access)


#: The messages (before formatting) of uvicorn's WebSocket access lines, and of the websockets
#: library's, at info level on ``uvicorn.error``: lines of connections the application saw
#: (not "connection rejected", which the library also writes for a handshake it refused
#: before the application ran).
_WEBSOCKET_ACCESS = frozenset(
    {
        '%s - "WebSocket %s" [accepted]',
        '%s - "WebSocket %s" 403',
        '%s - "WebSocket %s" %d',
        "connection open",
        "connection closed",
    }
)


#: uvicorn's line (websockets-sansio and wsproto protocols) when the application returns without
#: accepting: it does not count a denial response as an answer. Dropped after one was sent.
_NO_HANDSHAKE = "ASGI callable returned without completing handshake."
#: Set in a WebSocket connection's context once a denial response was sent whole. uvicorn runs
#: each connection in a task of its own, and logs the line above in it after the application
#: returned: the filter sees this connection's value.
_DENIAL_SENT: ContextVar[bool] = ContextVar("servicelog_denial_sent", default=False)


def _not_websocket_access(record: logging.LogRecord) -> bool:
    msg = record.msg
    return not (record.levelno == logging.INFO and type(msg) is str and msg in _WEBSOCKET_ACCESS)


#: uvicorn's line when the application returns after its response started but not ended.
_INCOMPLETE = "ASGI callable returned without completing response."
#: Set in a request's task (not reset) when the application raised after its response started:
#: the request ID, for uvicorn's line above, which it logs after the application returned.
_CUT_OFF: ContextVar[str | None] = ContextVar("servicelog_cut_off", default=None)


def _after_the_app(record: logging.LogRecord) -> bool:
    """uvicorn's lines about how the application ended, once the middleware has answered."""
    msg = record.msg
    if type(msg) is not str:  # (a message object's own __eq__ could raise in the caller)
        return True
    if msg == _NO_HANDSHAKE:
        return not _DENIAL_SENT.get()
    if msg == _INCOMPLETE:
        request_id = _CUT_OFF.get()
        if request_id is not None:  # (an ``extra`` field: the stdlib front-end keeps it)
            record.request_id = request_id
    return True


def filter_uvicorn_after_app() -> None:
    """Have ``uvicorn.error`` drop :data:`_NO_HANDSHAKE` once a denial response was sent, and
    give :data:`_INCOMPLETE` the request ID of the response cut off (with or without the
    access record; idempotent)."""
    errors = logging.getLogger("uvicorn.error")
    if _after_the_app not in errors.filters:
        errors.addFilter(_after_the_app)
