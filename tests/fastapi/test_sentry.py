"""An app that initialised the real sentry-sdk still reports what servicelog answers.

In a child process: ``sentry_sdk.init`` patches Starlette and ``logging`` for the whole process,
which the other tests must not inherit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sentry_sdk")

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, logging, sys
    import httpx, sentry_sdk
    from sentry_sdk.transport import Transport
    from fastapi import FastAPI
    import servicelog, servicelog.fastapi
    from servicelog.integrations import sentry as redact

    # "plain", "before_send", "hooks" (all of them, tracing and logs on), "tracing" (on, without
    # the hooks) or "no_redaction"
    mode = sys.argv[1]
    RELEASE = "user_2NNEqL2nrIRdJ194ndJqAHwEfxC"  # a token to the policy, as a field
    events, transactions, logs, metrics = [], [], [], []

    class Capture(Transport):  # the envelope as it would be sent; no network here
        def capture_envelope(self, envelope):
            for item in envelope.items:
                if item.type == "event":
                    events.append(item.payload.json)
                elif item.type == "transaction":
                    transactions.append(item.payload.json)
                elif item.type == "log":
                    logs.extend(item.payload.json["items"])
                elif item.type == "trace_metric":
                    metrics.extend(item.payload.json["items"])

    hooks, tracing = mode == "hooks", mode in ("hooks", "tracing")
    sentry_sdk.init(
        dsn="http://key@127.0.0.1:9/1", transport=Capture, release=RELEASE,
        traces_sample_rate=1.0 if tracing else 0, enable_logs=tracing,
        before_send=redact.before_send if mode in ("before_send", "hooks") else None,
        before_send_transaction=redact.before_send_transaction if hooks else None,
        before_send_log=redact.before_send_log if hooks else None,
        before_send_metric=redact.before_send_metric if hooks else None,
    )
    servicelog.configure(
        service="shop", profile="production", stream="none",
        redaction=mode != "no_redaction",
    )
    app = FastAPI()

    @app.get("/boom")
    async def boom():
        raise RuntimeError("db exploded")

    def connect(dsn, key, page):
        raise RuntimeError(f"connect failed: {dsn} (key {key}, page {page})")

    @app.get("/leak")
    async def leak(page: int = 1):
        api_key = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
        dsn = "postgres://app:hunter2@db/shop"
        logging.getLogger("payments").warning("retrying with token=tok_abcdefghijkl0123")
        sentry_sdk.add_breadcrumb(  # as sentry-sdk records a query with record_sql_params
            category="query", message="INSERT INTO t (email, password) VALUES (?, ?)",
            data={"db.params": ["jane@example.com", dsn.split(":")[2].split("@")[0]]},
        )
        with sentry_sdk.start_span(op="db", name="UPDATE users SET password='hunter2'") as span:
            span.set_data("db.params", {"password": "hunter2", "id": 7})
        with sentry_sdk.start_span(op="db", name="UPDATE users SET pwd = ? WHERE id = ?") as span:
            secret = dsn.split(":")[2].split("@")[0]  # (not written here: a source line)
            span.set_data("db.params", [secret, 7])  # sentry's record_sql_params: a list
        with sentry_sdk.start_span(op="db", name="INSERT INTO t (email, password) VALUES (?, ?)") as span:
            span.set_data("db.params", ["jane@example.com", secret])  # no secret in the text
        logging.getLogger("payments").warning("charge of %s failed with key %s", "order-17", api_key)
        sentry_sdk.logger.warning("login of {user} with {password}", user="jane", password="hunter2")
        sentry_sdk.logger.info("order {order:>6}: pickup pin {pin}", order=4412, pin=9931)
        sentry_sdk.metrics.count("logins", 1, attributes={"password": "hunter2", "user": "jane"})
        connect(dsn, key="sk_live_4eC39HqLyjWDarjtT1zdp7dc", page=page)  # the source line too

    @app.get("/ok")
    async def ok():
        return {}

    class Guard:  # a middleware that raises, outside the application's exception handling
        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            from servicelog import errors

            if scope.get("path") == "/mw-db":
                raise errors.DatabaseException("replica down")
            if scope.get("path") == "/mw-auth":
                raise errors.AuthenticationException("token expired")
            await self.app(scope, receive, send)

    app.add_middleware(Guard)
    servicelog.fastapi.install(app)

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            # (a hostile request ID: rejected, so in no event, header or frame's locals)
            rejected = {"X-Request-ID": "<script>rejected-EVIL-ID</script>"}
            answers = [await client.get(path, headers=rejected) for path in ("/boom", "/ok")]
            leak = await client.get(
                "/leak?page=2&password=hunter2", headers={"X-Session-Token": "tok_abcdefghijkl0123"}
            )
        # sentry-sdk's own events (its logging integration, capture_message)
        logging.getLogger("payments").error("charge failed for card 4111 1111 1111 1111")
        sentry_sdk.capture_message("login failed password=hunter2")
        sentry_sdk.flush()
        answered = len(events)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            middleware_statuses = [(await client.get(p)).status_code for p in ("/mw-db", "/mw-auth")]
        sentry_sdk.flush()
        layer, kinds = app.middleware_stack, []
        while layer is not None:
            kinds.append(type(layer).__name__)
            layer = getattr(layer, "app", None)
        print(json.dumps({
            "layers": kinds,
            "statuses": [r.status_code for r in answers] + [leak.status_code],
            "request_id": answers[0].headers["x-request-id"],
            "leak_request_id": leak.headers["x-request-id"],
            "events": events[:answered],
            "middleware_statuses": middleware_statuses,
            "middleware_events": events[answered:],
            "transactions": transactions,
            "logs": logs,
            "metrics": metrics,
        }))

    asyncio.run(main())
    """
)


def run_script(mode: str) -> Any:
    """Run SCRIPT from a file (so that the frames have source lines) in a child process."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "sentry_app.py"
        script.write_text(SCRIPT)
        done = subprocess.run(
            [sys.executable, str(script), mode], capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def exception_events(out: Any) -> list[Any]:
    return [e for e in out["events"] if "exception" in e]


SECRETS = ("hunter2", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "tok_abcdefghijkl0123", "4111 1111")


@pytest.fixture(scope="module")
def out() -> Any:
    """What the script printed, sentry-sdk initialised without servicelog's before_send."""
    return run_script("plain")


def test_an_unhandled_exception_reaches_sentry_once_tagged_with_the_request_id(out: Any) -> None:
    assert out["statuses"] == [500, 200, 500]
    boom, leak = exception_events(out)
    assert boom["exception"]["values"][-1]["value"] == "db exploded"
    assert boom["tags"]["request_id"] == out["request_id"]
    assert boom["request"]["url"] == "http://t/boom"
    assert leak["tags"]["request_id"] == out["leak_request_id"]


def test_a_rejected_request_id_reaches_no_sentry_event(out: Any) -> None:
    """The rejected value is neither in the request's headers (the middleware passes the
    request ID on in its place) nor in a frame's local variables."""
    (boom,) = [e for e in exception_events(out) if e["tags"]["request_id"] == out["request_id"]]
    headers = dict(boom["request"]["headers"])
    assert headers["x-request-id"] == out["request_id"]
    assert "EVIL-ID" not in json.dumps(out)


def test_a_server_error_raised_in_a_middleware_reaches_sentry_and_a_client_error_not(
    out: Any,
) -> None:
    """Raised in a middleware and answered by the application's handler, as inside: a 5xx of
    the hierarchy is reported once, a 4xx not at all."""
    assert out["middleware_statuses"] == [500, 401]
    (event,) = exception_events({"events": out["middleware_events"]})
    assert event["exception"]["values"][-1]["type"] == "DatabaseException"


def test_the_event_servicelog_sends_is_redacted_as_its_log_line_is(out: Any) -> None:
    # The exception's message, the frame's local variables, the query string, the request
    # headers and the breadcrumb of a log line: each held a secret, none reaches Sentry.
    _, leak = exception_events(out)
    text = json.dumps(leak)
    for secret in SECRETS[:3]:
        assert secret not in text
    assert leak["exception"]["values"][-1]["value"] == (
        "connect failed: postgres://app:[REDACTED]@db/shop (key [REDACTED], page 2)"
    )
    frame = leak["exception"]["values"][-1]["stacktrace"]["frames"][-2]
    assert frame["function"] == "leak"
    assert frame["vars"]["dsn"] == "'postgres://app:[REDACTED]@db/shop'"  # not in sentry's list
    assert frame["vars"]["page"] == "2"  # what is not secret stays
    assert frame["context_line"].strip().startswith('connect(dsn, key="[REDACTED]"')
    assert leak["request"]["query_string"] == "page=2&password=[REDACTED]"
    crumbs = [
        c["message"] for c in leak["breadcrumbs"]["values"] if c.get("category") == "payments"
    ]
    (query,) = [c for c in leak["breadcrumbs"]["values"] if c.get("category") == "query"]
    assert query["data"]["db.params"] == "[REDACTED]"  # the statement names a password
    assert crumbs == [
        "retrying with token=[REDACTED]",
        "charge of order-17 failed with key [REDACTED]",
    ]
    assert leak["contexts"]["trace"]["trace_id"]  # IDs are left as they are


def test_sentrys_own_events_are_redacted_with_before_send() -> None:
    out = run_script("before_send")
    assert len(out["events"]) == 4  # /boom, /leak, the logging error, the message
    text = json.dumps(out["events"])
    for secret in SECRETS:
        assert secret not in text
    messages = {e.get("logentry", {}).get("message") or e.get("message") for e in out["events"]}
    assert "login failed password=[REDACTED]" in messages
    assert "charge failed for card ****-****-****-1111" in messages


def test_transactions_and_sentry_logs_are_redacted_with_their_hooks() -> None:
    # Tracing and Sentry's logs on: the span's SQL statement and data, the request's query
    # string in the transaction, a log's template parameters, and the standard library's log
    # line forwarded as a Sentry log each held a secret.
    out = run_script("hooks")
    assert out["transactions"] and out["logs"]
    text = json.dumps(out)
    for secret in SECRETS:
        assert secret not in text
    spans = [s for t in out["transactions"] for s in t.get("spans", ()) if s.get("op") == "db"]
    assert [s["description"] for s in spans] == [
        "UPDATE users SET password='[REDACTED]'",
        "UPDATE users SET pwd = [REDACTED] WHERE id = ?",
        "INSERT INTO t (email, password) VALUES (?, ?)",
    ]
    assert spans[0]["data"]["db.params"] == {"password": "[REDACTED]", "id": 7}
    # which one is the password? (a statement with a secret, or naming a denied column)
    assert spans[1]["data"]["db.params"] == spans[2]["data"]["db.params"] == "[REDACTED]"
    leak = next(t for t in out["transactions"] if "/leak" in t["request"]["url"])
    assert leak["request"]["query_string"] == "page=2&password=[REDACTED]"
    bodies = {log["body"]: log["attributes"] for log in out["logs"]}
    attributes = bodies["login of jane with [REDACTED]"]
    assert attributes["sentry.message.parameter.password"]["value"] == "[REDACTED]"
    assert attributes["sentry.message.parameter.user"]["value"] == "jane"
    # sentry's own attribute is kept, though the policy would take it for a token
    assert attributes["sentry.release"]["value"] == "user_2NNEqL2nrIRdJ194ndJqAHwEfxC"
    assert "retrying with token=[REDACTED]" in bodies
    # "pin" is denied as a whole name: the body is made again from the template
    assert "order   4412: pickup pin [REDACTED]" in bodies
    # a standard library line's %-template, filled again with the redacted argument
    assert "charge of order-17 failed with key [REDACTED]" in bodies
    (metric,) = out["metrics"]
    assert metric["attributes"]["password"]["value"] == "[REDACTED]"
    assert metric["attributes"]["user"]["value"] == "jane"
    in_request = [log for log in out["logs"] if log["body"].startswith(("login", "retrying"))]
    assert [log["trace_id"] for log in in_request] == [spans[0]["trace_id"]] * 2  # IDs kept


SPAN_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import httpx, sentry_sdk, sqlalchemy as sa
    from sentry_sdk.transport import Transport
    import servicelog
    from servicelog.integrations import sentry as redact

    spans = []

    class Capture(Transport):  # the envelope as it would be sent; no network here
        def capture_envelope(self, envelope):
            for item in envelope.items:
                if item.type == "span":
                    spans.extend(item.payload.json["items"])

    sentry_sdk.init(
        dsn="https://key@sentry.invalid/1", transport=Capture, traces_sample_rate=1.0,
        trace_lifecycle="stream", release="user_2NNEqL2nrIRdJ194ndJqAHwEfxC",
        before_send_span=redact.before_send_span if sys.argv[1] == "hook" else None,
    )
    servicelog.configure(service="shop", stream="none")
    engine = sa.create_engine("sqlite://")
    with sentry_sdk.traces.start_span(name="nightly export password=hunter2") as job:
        job.set_attribute("api_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc")
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 'token=tok_abcdefghijkl0123', :id"), {"id": 7})
        try:  # a closed port: the span is made all the same
            httpx.get("http://127.0.0.1:9/export?page=2&password=hunter2", timeout=1)
        except httpx.HTTPError:
            pass
    sentry_sdk.flush()
    print(json.dumps(spans))
    """
)


def run_span_script(mode: str) -> list[Any]:
    done = subprocess.run(
        [sys.executable, "-c", SPAN_SCRIPT, mode], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    spans: list[Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return spans


def test_streamed_spans_are_redacted_with_before_send_span() -> None:
    """sentry-sdk's span streaming (``trace_lifecycle="stream"``) sends each span as it ends:
    a segment named with a secret, an SQL statement's literal, an attribute set by the
    program; without the hook they are sent as they are (what the test can fail on)."""
    pytest.importorskip("sqlalchemy")
    plain = json.dumps(run_span_script("plain"))
    for secret in ("hunter2", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "tok_abcdefghijkl0123"):
        assert secret in plain
    spans = run_span_script("hook")
    text = json.dumps(spans)
    for secret in SECRETS:
        assert secret not in text
    names = {span["attributes"].get("sentry.op", {}).get("value"): span["name"] for span in spans}
    names["segment"] = names.pop(None)
    assert names["segment"] == "nightly export password=[REDACTED]"
    assert names["db"] == "SELECT 'token=[REDACTED]', ?"
    assert names["http.client"] == "GET http://127.0.0.1:9/export"
    (segment,) = [span for span in spans if span["is_segment"]]
    assert segment["attributes"]["api_key"]["value"] == "[REDACTED]"
    # sentry's own attribute is kept, though the policy would take it for a token; the IDs too
    assert segment["attributes"]["sentry.release"]["value"] == "user_2NNEqL2nrIRdJ194ndJqAHwEfxC"
    assert {span["trace_id"] for span in spans} == {segment["trace_id"]}
    assert all(s["parent_span_id"] == segment["span_id"] for s in spans if s is not segment)


def test_scrub_span_sends_nothing_of_the_programs_when_it_cannot_redact() -> None:
    """A span cannot be dropped, and sentry-sdk sends the original when the hook raises: what
    could not be redacted goes with its name replaced and sentry-sdk's own attributes only."""
    from servicelog import _errors
    from servicelog.integrations.sentry import scrub_span

    class Broken:
        def redact_text(self, text: str) -> str:
            raise RuntimeError("bug")

    span = {
        "name": "UPDATE users SET password='hunter2'",
        "span_id": "b3eb3e93113bea37",
        "attributes": {"db.query.text": "password='hunter2'", "sentry.release": "1.2"},
    }
    _errors.clear()
    _errors.set_strict(False)
    try:
        assert scrub_span(span, Broken()) is span
        assert span == {
            "name": "[REDACTED]",
            "span_id": "b3eb3e93113bea37",
            "attributes": {"sentry.release": "1.2"},
        }
        assert scrub_span(["not", "a span"], Broken()) == {  # type: ignore[arg-type]
            "name": "[REDACTED]",
            "attributes": {},
        }
        assert _errors.snapshot()["errors"] == {"sentry redaction": 2}
    finally:
        _errors.set_strict(None)
        _errors.clear()


def test_scrub_span_never_hands_sentry_attributes_it_would_raise_on() -> None:
    """Redaction that fails inside (at the recursion limit) puts its marker, a str, in place of
    the attributes: sentry-sdk then raised into the application from ``span.end()``. The span
    goes with its name ``[REDACTED]`` and sentry-sdk's own attributes."""
    from servicelog import _errors
    from servicelog.integrations.sentry import scrub_span

    class Failing:
        def redact_text(self, text: str) -> str:
            return text

        def redact_mapping(self, value: Any) -> Any:
            return "[REDACTION FAILED]"

    span = {"name": "GET /", "attributes": {"api_key": "sk", "sentry.release": "1.2"}}
    _errors.clear()
    _errors.set_strict(False)
    try:
        assert scrub_span(span, Failing()) is span
        assert span == {"name": "[REDACTED]", "attributes": {"sentry.release": "1.2"}}
        assert _errors.snapshot()["errors"] == {"sentry redaction": 1}
    finally:
        _errors.set_strict(None)
        _errors.clear()


def test_scrub_span_drops_a_request_id_header_the_middleware_rejects() -> None:
    """sentry-sdk takes a streamed span's request headers when it starts, outside servicelog's
    middleware (which passes a rejected value on replaced): a value it would reject is not
    sent; a valid one is."""
    from servicelog.asgi import RequestContextMiddleware
    from servicelog.integrations.sentry import scrub_span
    from servicelog.redaction import default_policy

    RequestContextMiddleware(lambda *a: None, request_id_header="X-Correlation-ID")  # type: ignore[arg-type]
    span = {
        "name": "GET /boom",
        "attributes": {
            "http.request.header.x-correlation-id": "<script>rejected-EVIL-ID</script>",
            "http.request.header.x-request-id": "abc-123",
        },
    }
    scrub_span(span, default_policy())
    assert span["attributes"] == {
        "http.request.header.x-correlation-id": "[REDACTED]",
        "http.request.header.x-request-id": "abc-123",
    }


def test_the_release_of_the_test_above_would_be_redacted_as_a_field() -> None:
    from servicelog.redaction import default_policy

    release = "user_2NNEqL2nrIRdJ194ndJqAHwEfxC"
    assert default_policy().redact_mapping({"release": release}) == {"release": "[REDACTED]"}


def test_without_the_hooks_transactions_and_logs_are_sent_as_they_are() -> None:
    # What the hooks are for (and the test above can fail): sentry-sdk sends them unredacted.
    out = run_script("tracing")
    spans = [s for t in out["transactions"] for s in t.get("spans", ()) if s.get("op") == "db"]
    assert spans[0]["description"] == "UPDATE users SET password='hunter2'"
    assert "login of jane with hunter2" in {log["body"] for log in out["logs"]}
    assert out["metrics"][0]["attributes"]["password"]["value"] == "hunter2"


def test_with_redaction_off_the_event_is_sent_as_it_is() -> None:
    # configure(redaction=False): the log lines are not redacted, nor is the Sentry event.
    out = run_script("no_redaction")
    _, leak = exception_events(out)
    assert "hunter2" in leak["exception"]["values"][-1]["value"]


def test_sentrys_patched_exception_middleware_is_kept(out: Any) -> None:
    # sentry-sdk patches ExceptionMiddleware.__call__ (the user on events, a span): install()
    # must not put its lighter layer in that one's place.
    layers = out["layers"]
    assert "ExceptionMiddleware" in layers
    assert "ExceptionLayer" not in layers


def test_an_outbound_requests_query_is_redacted_as_a_query_string() -> None:
    """sentry-sdk records an httpx call's query apart (``http.query``, no ``?``): ``code`` (an
    OAuth authorization code) and ``sig`` are denied in a query string."""
    from servicelog.integrations.sentry import scrub_event
    from servicelog.redaction import default_policy

    data = {"url": "https://idp/token", "http.query": "code=Splx&state=s&sig=abc"}
    event: dict[str, Any] = {
        "breadcrumbs": {"values": [{"type": "http", "data": dict(data)}]},
        "spans": [{"op": "http.client", "data": dict(data)}],
    }
    out = scrub_event(event, default_policy())
    expected = "code=[REDACTED]&state=s&sig=[REDACTED]"
    assert out["breadcrumbs"]["values"][0]["data"]["http.query"] == expected
    assert out["spans"][0]["data"]["http.query"] == expected


def test_scrub_event_takes_any_shape_and_drops_what_it_cannot_redact() -> None:
    from servicelog.integrations.sentry import scrub_event
    from servicelog.redaction import default_policy

    policy = default_policy()
    odd: dict[str, Any] = {
        "message": 3,
        "logentry": {"message": "token=abcdefghijklmnop", "params": ["password=hunter2"]},
        "exception": {"values": "not a list"},
        "threads": [{"value": "password=hunter2", "stacktrace": {"frames": [None, {"vars": 1}]}}],
        "breadcrumbs": object(),
        "request": {"url": None, "headers": [("a", "b")], "data": "password=hunter2"},
        "transaction": "http://t/reset?token=abcdefghijklmnop",  # the raw URL, before routing
        "spans": [None, {"description": "password=hunter2", "data": "password=hunter2"}],
        "contexts": {
            "trace": {
                "trace_id": "0af7651916cd43dd8448eb211c80319c",
                "span_id": "b7ad6b7169203331",
                "data": {"db.password": "hunter2"},
            },
            "app": "x",
        },
    }
    out = scrub_event(odd, policy)
    assert out is odd
    assert "hunter2" not in repr(out) and "abcdefghijklmnop" not in repr(out)
    trace = out["contexts"]["trace"]
    assert trace["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert trace["span_id"] == "b7ad6b7169203331"

    class Broken:
        def redact_text(self, text: str) -> str:
            raise RuntimeError("bug")

    assert_dropped_and_counted(lambda: scrub_event({"message": "password=hunter2"}, Broken()))


def assert_dropped_and_counted(scrub: Callable[[], Any]) -> None:
    """*scrub* returns ``None`` (the item dropped) and counts one "sentry redaction" error, as in
    production (tests otherwise raise)."""
    from servicelog import _errors

    _errors.clear()
    _errors.set_strict(False)
    try:
        assert scrub() is None
        assert _errors.snapshot()["errors"] == {"sentry redaction": 1}
    finally:
        _errors.set_strict(None)
        _errors.clear()


def test_scrub_log_takes_any_shape_and_drops_what_it_cannot_redact() -> None:
    from servicelog.integrations.sentry import scrub_log
    from servicelog.redaction import default_policy

    policy = default_policy()
    log: dict[str, Any] = {
        "body": "password 9931 for card 4111 1111 1111 1111",
        "attributes": {
            "sentry.message.template": "password {password} for card {card}",
            "sentry.message.parameter.password": 9931,  # not a str: masked where the body shows it
            "sentry.message.parameter.card": "4111 1111 1111 1111",
            "sentry.message.parameter.empty": "",
            "sentry.sdk.version": "2.75.0",
        },
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
    }
    assert scrub_log(log, policy) is log
    assert "9931" not in log["body"] and "4111 1111" not in log["body"]
    assert log["attributes"]["sentry.sdk.version"] == "2.75.0"
    assert log["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert scrub_log({"body": 3, "attributes": ["password=hunter2"]}, policy) == {
        "body": 3,
        "attributes": ["password=[REDACTED]"],
    }

    class Broken:
        def redact_mapping(self, value: Any) -> Any:
            raise RuntimeError("bug")

    assert_dropped_and_counted(
        lambda: scrub_log({"body": "x", "attributes": {"password": "hunter2"}}, Broken())
    )
