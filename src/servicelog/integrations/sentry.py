"""Sentry: the exceptions servicelog answers still reach a Sentry client the app initialised,
redacted as servicelog's own records are.

Starlette's stack re-raises an unhandled exception to the server, and sentry-sdk's ASGI
integration, wrapped around the application, reports it on its way out. The request-context
middleware answers it instead (a 500 with the request ID, logged once) and does not re-raise,
so it hands the exception to Sentry itself, with the event redacted by the configured policy
(the log line of the same exception is, so the Sentry event must not carry what the log line
hides). servicelog never imports sentry-sdk: nothing happens unless the application imported
and initialised it.

Events that sentry-sdk makes on its own (its logging integration, ``capture_message``, its
other integrations), its performance data (transactions and their spans: SQL statements, the
URLs of outbound calls) and its logs are redacted too when the application passes the hooks of
this module to ``sentry_sdk.init``::

    from servicelog.integrations import sentry as redact

    sentry_sdk.init(
        dsn=...,
        before_send=redact.before_send,
        before_send_transaction=redact.before_send_transaction,
        before_send_log=redact.before_send_log,  # with enable_logs=True
        before_send_metric=redact.before_send_metric,  # sentry_sdk.metrics
        before_send_span=redact.before_send_span,  # with trace_lifecycle="stream"
    )
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .. import _errors

__all__ = [
    "before_send",
    "before_send_log",
    "before_send_metric",
    "before_send_span",
    "before_send_transaction",
    "capture_unhandled",
    "scrub_event",
    "scrub_log",
    "scrub_span",
]

Event = dict[str, Any]


def capture_unhandled(exc: BaseException, request_id: str | None = None) -> None:
    """Report *exc* to the active Sentry client, if the app has one, tagged with the request
    ID that its log lines carry and redacted by the configured policy (never raises)."""
    sentry = sys.modules.get("sentry_sdk")
    if sentry is None:
        return
    try:
        if not sentry.get_client().is_active():
            return
        # The request's own scope (sentry's ASGI integration opened it outside us) adds the
        # request data; its dedupe drops this event if the exception reaches it too. A new
        # scope forked from it adds the tag and the redaction, whose processor runs last
        # (after the request data was added).
        new_scope = getattr(sentry, "new_scope", None) or sentry.push_scope  # 2.x, else 1.x
        with new_scope() as scope:
            if request_id:
                scope.set_tag("request_id", request_id)
            policy = _configured_policy()
            if policy is not None:
                scope.add_event_processor(_processor(policy))
            sentry.capture_exception(exc)
    except Exception as failure:  # an old or broken sentry-sdk
        _errors.report("sentry", failure)


def before_send(event: Event, hint: Any = None) -> Event | None:
    """sentry-sdk's ``before_send``: *event* redacted by servicelog's policy (the configured
    one, else the default), as :func:`scrub_event` says. Chain it from your own::

        def my_before_send(event, hint):
            event = servicelog.integrations.sentry.before_send(event, hint)
            ...
    """
    from ..redaction import get_policy

    return scrub_event(event, get_policy())


def before_send_transaction(event: Event, hint: Any = None) -> Event | None:
    """sentry-sdk's ``before_send_transaction``: a transaction (the performance data of a
    request) redacted as :func:`before_send` redacts an event, its spans too: their
    descriptions (an SQL statement with its literals, the URL of an outbound call) and their
    data and tags."""
    from ..redaction import get_policy

    return scrub_event(event, get_policy())


def before_send_log(log: Event, hint: Any = None) -> Event | None:
    """sentry-sdk's ``before_send_log`` (Sentry's logs, ``enable_logs=True``): *log* redacted
    by servicelog's policy, as :func:`scrub_log` says. sentry-sdk's logging integration sends
    the lines of the standard library's loggers there as they were written."""
    from ..redaction import get_policy

    return scrub_log(log, get_policy())


def before_send_metric(metric: Event, hint: Any = None) -> Event | None:
    """sentry-sdk's ``before_send_metric`` (``sentry_sdk.metrics``): the metric's attributes
    redacted by servicelog's policy (its name, value and unit are the program's own)."""
    from ..redaction import get_policy

    try:
        _scrub_attributes(metric, get_policy())
    except Exception as exc:  # a shape not foreseen: not sent as it is
        _errors.report("sentry redaction", exc)
        return None
    return metric


def before_send_span(span: Event, hint: Any = None) -> Event:
    """sentry-sdk's ``before_send_span`` (streamed spans, ``trace_lifecycle="stream"``): the
    span's name and attributes redacted by servicelog's policy, as :func:`scrub_span` says."""
    from ..redaction import get_policy

    return scrub_span(span, get_policy())


def scrub_span(span: Event, policy: Any) -> Event:
    """*span* (a streamed span, as sentry-sdk hands it to ``before_send_span``) with its name
    (an SQL statement with its literals, an outbound URL, a segment named after a raw URL)
    and its attributes (``db.query.text``, ``sentry.segment.name``, ...) redacted by *policy*,
    in place; the attributes sentry-sdk sets itself and the span's IDs are kept as they are.

    sentry-sdk cannot drop a span, and sends it as it was when the hook raises or returns
    something else than a span: if *span* could not be redacted, its name is ``[REDACTED]``
    and only sentry-sdk's own attributes are kept (the failure counted)."""
    original: Any = None
    try:
        original = span.get("attributes")
        name = span.get("name")
        span["name"] = policy.redact_text(name) if isinstance(name, str) else _REDACTED
        _scrub_attributes(span, policy)
        attributes = span.get("attributes")
        if isinstance(original, dict) and not isinstance(attributes, dict):
            # (redaction's own failure marker: sentry-sdk would raise on it, in span.end())
            raise TypeError("the span's attributes could not be redacted")
        if isinstance(attributes, dict):
            _sql_params(attributes, name, span["name"], policy)
            _rejected_request_ids(attributes)
    except Exception as exc:  # a shape not foreseen: sent with nothing of the program's
        try:
            _errors.report("sentry redaction", exc)
        except Exception:  # (at the recursion limit, say)
            pass
        kept: dict[str, Any] = {}
        try:
            kept.update((k, v) for k, v in original.items() if k in _KEPT_ATTRIBUTES)
        except Exception:
            kept.clear()
        try:
            span["name"], span["attributes"] = _REDACTED, kept
        except Exception:  # not a dict: sentry-sdk keeps the original, so give it a new one
            return {"name": _REDACTED, "attributes": kept}
    return span


def _rejected_request_ids(attributes: dict[str, Any]) -> None:
    """A request ID header that sentry-sdk took as the client sent it (a streamed span's
    attributes are taken when it starts, outside servicelog's middleware, which passes a
    rejected value on replaced): a value the middleware would reject is not sent."""
    ids = sys.modules.get("servicelog.asgi.ids")  # (none: no middleware was ever made)
    if ids is None:
        return
    for header in ids.REQUEST_ID_HEADERS:
        key = f"http.request.header.{header}"
        value = attributes.get(key)
        if value is not None and not (isinstance(value, str) and ids.parse_request_id(value)):
            attributes[key] = _REDACTED


def scrub_log(log: Event, policy: Any) -> Event | None:
    """*log* (a Sentry log, as sentry-sdk hands it to ``before_send_log``) with its body and
    its attributes redacted by *policy*, in place. A template's parameter
    (``sentry_sdk.logger.info("pickup pin {pin}", pin=12)``) is judged by its own name too;
    when one is redacted, the body is made again from the template with the redacted values
    (or, if the template cannot take them, is the template itself). The attributes
    sentry-sdk sets itself (release, environment, SDK) are kept as they are. ``None`` (the log
    is dropped, and the failure counted) if it could not be redacted."""
    try:
        body = log.get("body")
        if _scrub_attributes(log, policy) and isinstance(body, str):
            attributes = log["attributes"]
            template = attributes.get(_TEMPLATE)
            params = {
                key[len(_PARAMETER) :]: value
                for key, value in attributes.items()
                if key.startswith(_PARAMETER)
            }
            body = _fill(template, params) if isinstance(template, str) else _REDACTED
        if isinstance(body, str):
            log["body"] = policy.redact_text(body)
    except Exception as exc:  # a shape not foreseen: not sent as it is
        _errors.report("sentry redaction", exc)
        return None
    return log


def _scrub_attributes(item: Event, policy: Any) -> bool:
    """Redact ``item["attributes"]`` (a log's or a metric's) in place, sentry-sdk's own kept;
    ``True`` if a template parameter changed."""
    attributes = item.get("attributes")
    if attributes is None:
        return False
    new = policy.redact_mapping(attributes)
    changed = False
    if isinstance(attributes, dict) and isinstance(new, dict):
        for key, value in attributes.items():
            if key in _KEPT_ATTRIBUTES:
                new[key] = value
            elif key.startswith(_PARAMETER):
                # Judged by its own name as well ("pin", "otp" are denied as whole names).
                name = key[len(_PARAMETER) :]
                new[key] = policy.redact_mapping({name: new[key]})[name]
                changed = changed or new[key] != value
    item["attributes"] = new
    return changed


def _sql_params(data: Any, statement: Any, redacted: Any, policy: Any) -> None:
    """An SQL statement's parameters in a span's or a query breadcrumb's *data*, recorded as a
    list (sentry-sdk's ``record_sql_params``): which one is the password cannot be told by a
    name, so they are redacted whole when the statement held a secret (*redacted*, its
    redacted text, differs) or names a denied key anywhere (``password``, ``token``: the
    policy's quick test for text, which errs on the side of redacting)."""
    if not isinstance(data, dict) or "db.params" not in data:
        return
    if isinstance(data["db.params"], dict):  # judged by name already
        return
    names_denied = getattr(policy, "_may_hold_denied_key", None)
    if (
        redacted != statement
        or not isinstance(statement, str)
        or names_denied is None
        or names_denied(statement)
    ):
        data["db.params"] = _REDACTED


class _Placeholders(dict[str, Any]):
    """A template's parameters; one that is missing stays as its placeholder (as sentry-sdk
    fills the body)."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fill(template: str, params: dict[str, Any]) -> str:
    """*template* filled with *params* as sentry-sdk filled it: ``str.format`` for
    ``sentry_sdk.logger``; ``%`` for a standard library log line (its arguments are the
    parameters ``0``, ``1``, ... or a mapping's keys). The template itself if it cannot take
    them (a format spec for a number now given ``[REDACTED]``, an index into a redacted
    value)."""
    try:
        if params and all(name.isdigit() for name in params):  # logging's positional args
            return template % tuple(params[str(i)] for i in range(len(params)))
        if "%(" in template:
            return template % params
        return template.format_map(_Placeholders(params))
    except Exception:
        return template


def scrub_event(event: Event, policy: Any) -> Event | None:
    """*event* (a Sentry event, as sentry-sdk hands it to ``before_send`` or an event
    processor) with the fields that carry a program's data redacted by *policy* (a
    :class:`~servicelog.redaction.RedactionPolicy`), in place:

    * the message (``message``, ``logentry``), every exception's message (``value``), and the
      local variables (``vars``) and source lines (``context_line``, ``pre_context``,
      ``post_context``) of every stack frame, in ``exception`` and ``threads``;
    * breadcrumbs' messages and data (the log lines sentry-sdk collected before the event);
    * the transaction's name (the raw URL before routing) and the request: its URL and query
      string (passwords, tokens), headers, cookies, body and environment;
    * ``extra``, ``tags``, ``user`` and ``contexts`` (the ``trace`` context's IDs are kept as
      they are, its data redacted);
    * in a transaction, each span's description (an SQL statement, an outbound URL), data and
      tags (its IDs are kept as they are).

    File and function names are left as they are. ``None`` (the event is dropped, and the
    failure counted) if the event could not be redacted: an event that might leak is not sent;
    servicelog's own log line of an exception carries it anyway.
    """
    try:
        _scrub(event, policy)
    except Exception as exc:  # a shape of event not foreseen: not sent as it is
        _errors.report("sentry redaction", exc)
        return None
    return event


def _configured_policy() -> Any:
    """The policy ``configure()`` installed, or ``None`` (``redaction=False``: nothing is
    redacted, as in the log lines)."""
    from .._config import settings
    from ..redaction import RedactionPolicy

    policy = getattr(settings(), "redaction", None)
    return policy if isinstance(policy, RedactionPolicy) else None


def _processor(policy: Any) -> Callable[[Event, Any], Event | None]:
    def redact(event: Event, hint: Any) -> Event | None:
        return scrub_event(event, policy)

    return redact


def _scrub(event: Event, policy: Any) -> None:
    text: Callable[[str], str] = policy.redact_text
    mapping: Callable[[Any], Any] = policy.redact_mapping
    if isinstance(event.get("message"), str):
        event["message"] = text(event["message"])
    logentry = event.get("logentry")
    if isinstance(logentry, dict):
        for key in ("message", "formatted"):
            if isinstance(logentry.get(key), str):
                logentry[key] = text(logentry[key])
        if "params" in logentry:
            logentry["params"] = mapping(logentry["params"])
    for kind in ("exception", "threads"):
        for item in _values(event.get(kind)):
            if isinstance(item.get("value"), str):
                item["value"] = text(item["value"])
            stacktrace = item.get("stacktrace")
            if isinstance(stacktrace, dict):
                for frame in _dicts(stacktrace.get("frames")):
                    if "vars" in frame:
                        frame["vars"] = mapping(frame["vars"])
                    # The source lines, as the log line's stack trace shows them redacted
                    # (``charge(key="sk_live_...")``).
                    for key in ("context_line", "pre_context", "post_context"):
                        if key in frame:
                            frame[key] = mapping(frame[key])
    for crumb in _values(event.get("breadcrumbs")):
        message = crumb.get("message")  # a query's breadcrumb: the SQL statement
        if isinstance(message, str):
            crumb["message"] = text(message)
        if "data" in crumb:
            crumb["data"] = mapping(crumb["data"])  # (its http.query as a query string)
        _sql_params(crumb.get("data"), message, crumb.get("message"), policy)
    if isinstance(event.get("transaction"), str):  # named after the raw URL before routing
        event["transaction"] = policy.redact_url(event["transaction"])
    request = event.get("request")
    if isinstance(request, dict):
        if isinstance(request.get("url"), str):
            request["url"] = policy.redact_url(request["url"])
        if isinstance(request.get("query_string"), str):
            request["query_string"] = policy.redact_query(request["query_string"])
        if isinstance(request.get("headers"), (dict, list)):
            request["headers"] = policy.redact_headers(request["headers"])
        for key in ("cookies", "data", "env"):
            if key in request:
                request[key] = mapping(request[key])
    for key in ("extra", "tags", "user"):
        if key in event:
            event[key] = mapping(event[key])
    for span in _dicts(event.get("spans")):
        description = span.get("description")
        if isinstance(description, str):
            span["description"] = text(description)
        for key in ("data", "tags"):
            if key in span:
                span[key] = mapping(span[key])
        _sql_params(span.get("data"), description, span.get("description"), policy)
    contexts = event.get("contexts")
    if isinstance(contexts, dict):
        for key, value in contexts.items():
            new = mapping(value)
            if key == "trace" and isinstance(value, dict) and isinstance(new, dict):
                # The trace's IDs as they were (Sentry links events by them); its data redacted.
                new.update((k, value[k]) for k in _TRACE_IDS if k in value)
            contexts[key] = new


_TRACE_IDS = ("trace_id", "span_id", "parent_span_id")
#: A Sentry log's attributes that hold its template and the template's parameters
#: (``sentry_sdk.logger``).
_TEMPLATE = "sentry.message.template"
_PARAMETER = "sentry.message.parameter."
#: What replaces a log's body without its template, when a parameter in it was redacted, and
#: an SQL statement's parameters (the policy's marker; not imported from the redaction module,
#: which loads only when a policy is used).
_REDACTED = "[REDACTED]"
#: A log's attributes that sentry-sdk sets itself (no program data), kept as they are: a
#: release's commit hash is no secret, and the IDs link the log to its trace.
_KEPT_ATTRIBUTES = (
    "sentry.release",
    "sentry.environment",
    "sentry.sdk.name",
    "sentry.sdk.version",
    "sentry.trace.parent_span_id",
    "sentry.segment.id",
    "server.address",
    "process.runtime.name",
    "process.runtime.version",
)


def _values(container: Any) -> list[dict[str, Any]]:
    """The dicts of an ``{"values": [...]}`` interface (or of a plain list of them)."""
    if isinstance(container, dict):
        container = container.get("values")
    return _dicts(container)


def _dicts(items: Any) -> list[dict[str, Any]]:
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []
