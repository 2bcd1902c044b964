"""One error shape everywhere, no leaks, logged once at the right level."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import httpx
import orjson
import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

import servicelog
import servicelog.fastapi
from fastapi import FastAPI, HTTPException, WebSocket
from servicelog import _errors, errors
from servicelog.sinks import MemorySink

from ..conftest import NO_CAPTURE
from .conftest import break_api_exception_handler, logged_text, make_app

ENVELOPE_KEYS = {"message", "type", "code", "details", "request_id"}


async def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        return await client.request(method, path, **kwargs)


async def raise_through_app(exc: Exception) -> httpx.Response:
    """GET a route that raises *exc*, on a fresh app with servicelog installed."""
    app = FastAPI()

    @app.get("/raise")
    async def raise_it() -> None:
        raise exc

    servicelog.fastapi.install(app)
    return await call(app, "GET", "/raise")


def production(sink: MemorySink) -> None:
    servicelog.configure(
        service="shop", profile="production", stream="none", sinks=[sink], capture=NO_CAPTURE
    )


@pytest.mark.parametrize(
    ("exc", "status", "code", "details"),
    [
        (errors.ValidationException("bad sku", {"field": "sku"}), 400, "validation_error", {"field": "sku"}),
        (errors.AuthenticationException(), 401, "authentication_failed", {}),
        (errors.AuthorizationException(), 403, "forbidden", {}),
        (errors.NotFoundException("Order", 42), 404, "not_found", {"resource": "Order", "identifier": "42"}),
        (errors.ConflictException("duplicate"), 409, "conflict", {}),
        (errors.RateLimitException(30), 429, "rate_limited", {"retry_after": 30}),
        (errors.BusinessRuleException("max_items", "too many"), 422, "business_rule_violation", {"rule": "max_items"}),
        (errors.InsufficientBalanceException(10, 5), 422, "insufficient_balance", {"rule": "balance_check", "required": 10, "available": 5}),
        (errors.InvalidStateException("paid", "cart"), 422, "invalid_state", {"rule": "state_transition", "current_state": "paid", "target_state": "cart"}),
    ],
)  # fmt: skip
async def test_client_errors_have_the_envelope_and_a_warning(
    sink: MemorySink, exc: errors.BaseAPIException, status: int, code: str, details: dict[str, Any]
) -> None:
    response = await raise_through_app(exc)
    assert response.status_code == status
    body = response.json()["error"]
    assert set(body) == ENVELOPE_KEYS
    assert (body["code"], body["type"], body["message"]) == (code, type(exc).__name__, exc.message)
    assert body["details"] == details
    assert body["request_id"] == response.headers["x-request-id"]
    warnings = [r for r in sink.records if r["log.logger"] == "servicelog.errors"]
    assert [r["log.level"] for r in warnings] == ["warning"]
    if status == 429:
        assert response.headers["retry-after"] == "30"


@pytest.mark.parametrize(
    "exc",
    [
        errors.DatabaseException("connection to 10.0.0.5 failed: password=hunter2"),
        errors.ExternalServiceException("payments", "token sk_live_abc rejected"),
    ],
)
async def test_server_errors_hide_their_message_in_production(
    sink: MemorySink, exc: errors.BaseAPIException
) -> None:
    production(sink)
    response = await raise_through_app(exc)
    assert response.status_code == exc.status_code
    body = response.json()["error"]
    assert body["message"] == ("Internal Server Error" if exc.status_code == 500 else "Bad Gateway")
    assert "hunter2" not in response.text and "sk_live" not in response.text
    errors_logged = [r for r in sink.records if r["log.logger"] == "servicelog.errors"]
    assert len(errors_logged) == 1 and errors_logged[0]["log.level"] == "error"
    assert errors_logged[0]["error.type"].endswith(type(exc).__name__)


async def test_unhandled_exception_is_a_generic_500_logged_once(sink: MemorySink) -> None:
    production(sink)
    response = await call(make_app(), "GET", "/boom")
    assert response.status_code == 500
    body = response.json()["error"]
    assert body == {
        "message": "Internal server error",
        "type": "InternalServerError",
        "code": "internal_error",
        "details": {},
        "request_id": response.headers["x-request-id"],
    }
    for leak in ("hunter2", "RuntimeError", "Traceback", ".py"):
        assert leak not in response.text
    with_trace = [r for r in sink.records if "error.stack_trace" in r]
    assert len(with_trace) == 1, "logged exactly once, with its traceback"
    assert with_trace[0]["error.type"] == "RuntimeError"
    assert with_trace[0]["request_id"] == response.headers["x-request-id"]
    (access,) = [r for r in sink.records if r["log.logger"] == "servicelog.access"]
    assert access["event.outcome"] == "failure" and access["log.level"] == "error"


async def test_validation_errors_never_echo_submitted_values(sink: MemorySink) -> None:
    secret = "4111111111111111-SECRET-CARD"
    response = await call(
        make_app(),
        "POST",
        "/orders",
        json={
            "item_id": "not-a-number",
            "quantity": 1000,
            "card_number": secret,
            "password": "pw1",
        },
    )
    assert response.status_code == 422
    body = response.json()["error"]
    assert body["code"] == "validation_error"
    errs = body["details"]["errors"]
    assert {tuple(e["loc"]) for e in errs} >= {("body", "item_id"), ("body", "quantity")}
    assert all(set(e) == {"loc", "type", "msg"} for e in errs)
    for leak in (secret, "not-a-number", "pw1", "1000"):
        assert leak not in response.text
        assert leak not in logged_text(sink.records)


class _Login(BaseModel):
    """Validators that quote the value they reject."""

    password: str
    pin: int
    tag: str = "ok"

    @field_validator("password")
    @classmethod
    def long_enough(cls, value: str) -> str:
        if len(value) < 12:
            raise ValueError(f"password {value} is too short; try {value}123 (was: {value})")
        return value

    @field_validator("pin")
    @classmethod
    def big_enough(cls, value: int) -> int:
        if value <= 9999:
            raise AssertionError(f"pin {value} too small; 123 and 9912 are not {value}")
        return value

    @field_validator("tag")
    @classmethod
    def known(cls, value: str) -> str:
        raise ValueError(f"unknown tag {value}, card 4111 1111 1111 1111")


class _Signup(BaseModel):
    """A model validator (it gets the whole object), a list field, an upper-cased quote."""

    password: str
    confirm: str
    codes: list[str] = []
    coupon: str = ""

    @field_validator("codes")
    @classmethod
    def known_codes(cls, value: list[str]) -> list[str]:
        if value:
            raise ValueError(f"code {value[0]} is not known")
        return value

    @field_validator("coupon")
    @classmethod
    def live_coupon(cls, value: str) -> str:
        if value:
            raise ValueError(f"coupon {value.upper()} expired")
        return value

    @model_validator(mode="after")
    def same(self) -> _Signup:
        if self.password != self.confirm:
            raise ValueError(f"{self.password} and {self.confirm} differ")
        return self


async def test_values_inside_objects_and_lists_are_masked_in_any_case(sink: MemorySink) -> None:
    app = FastAPI()

    @app.post("/signup")
    async def signup(body: _Signup) -> dict[str, str]:
        return {}

    servicelog.fastapi.install(app)
    payloads = [
        {"password": "hunter2xyz", "confirm": "hunter3xyz"},
        {"password": "p", "confirm": "p", "codes": ["SECRET-CODE-1"]},
        {"password": "p", "confirm": "p", "coupon": "summer-sale-k3y"},
    ]
    for payload in payloads:
        response = await call(app, "POST", "/signup", json=payload)
        assert response.status_code == 422
        for secret in ("hunter2xyz", "hunter3xyz", "SECRET-CODE-1", "SUMMER-SALE-K3Y"):
            assert secret.lower() not in response.text.lower()
    assert "REDACTED" in response.text
    for secret in ("hunter2xyz", "SECRET-CODE-1", "summer-sale-k3y"):
        assert secret.lower() not in repr(sink.records).lower()


def test_masking_covers_long_values_and_withholds_what_it_cannot_check() -> None:
    """A value of any length is masked whole (a 1,000-character cut left its tail); with too
    many parts to check, or a message too long, the message is withheld; pydantic's prefix
    and short words differing in case are left alone."""
    from servicelog.asgi.handlers import _masked

    secret = "k" * 1500 + "THE-SECRET-TAIL"
    assert _masked(f"Value error, token {secret} is not valid", secret) == (
        "Value error, token [REDACTED] is not valid"
    )
    many = [f"item{i:04d}" for i in range(600)]
    assert "item0599" not in _masked("Value error, duplicate entry item0599", many)
    assert "withheld" in _masked("Value error, " + "x" * 5000, "y")
    many_long = {f"k{i}": f"v{i:03d}" * 100 for i in range(200)}  # 80,000 characters to seek
    assert _masked("Value error, " + "x" * 1990, many_long) == "Value error, " + "x" * 1990
    # the request's budget: a message it cannot pay for is withheld, and so is every later one
    budget = [30]
    assert "withheld" in _masked("Value error, unknown tag zz-top-77", "zz-top-77", budget=budget)
    assert budget == [0]
    assert "withheld" in _masked("Value error, ok", "x", budget=budget)
    assert _masked("Value error, kind value and note disagree", {"kind": "Value", "x": "and"}) == (
        "Value error, kind value [REDACTED] note disagree"
    )
    # Found on the text itself (lower() of "İ" is two characters: spans shifted), "ß" quoted
    # upper-cased, a value nested deeper than looked, a number written with separators.
    assert _masked("Value error, İİİİ code secretvalue42 rejected", "secretvalue42") == (
        "Value error, İİİİ code [REDACTED] rejected"
    )
    assert _masked("Value error, code WEISSWURST-GEHEIM", "weißwurst-geheim").endswith(
        "code [REDACTED]"
    )
    deep: Any = {"d": {"l1": {"l2": {"l3": {"l4": "deep-secret-99"}}}}}
    assert (
        _masked("Value error, deep-secret-99 rejected", deep) == "Value error, [REDACTED] rejected"
    )
    for _ in range(4):  # deeper than looked (8 levels): withheld
        deep = {"d": deep}
    assert "withheld" in _masked("Value error, deep-secret-99 rejected", deep)
    assert _masked("Value error, 4,111,111,111,111,111.00 over", 4111111111111111) == (
        "Value error, [REDACTED] over"
    )


async def test_a_validators_own_message_does_not_echo_the_submitted_value(
    sink: MemorySink,
) -> None:
    """A validator's ``ValueError`` (or assertion) may quote the value it got: the value is
    masked in ``msg`` (response and log), the rest of the message kept; a short value only
    where it stands as a word. pydantic's own messages are left as they are."""
    app = FastAPI()

    @app.post("/login")
    async def login(body: _Login) -> dict[str, str]:
        return {}

    servicelog.fastapi.install(app)
    response = await call(
        app, "POST", "/login", json={"password": "hunter2", "pin": 12, "tag": "a"}
    )
    assert response.status_code == 422
    msgs = {e["loc"][-1]: e["msg"] for e in response.json()["error"]["details"]["errors"]}
    assert msgs == {
        "password": "Value error, password [REDACTED] is too short; try [REDACTED]123 "
        "(was: [REDACTED])",
        "pin": "Assertion failed, pin [REDACTED] too small; 123 and 9912 are not [REDACTED]",
        "tag": "Value error, unknown tag [REDACTED], card ****-****-****-1111",
    }
    (logged,) = [r["validation.errors"] for r in sink.records if "validation.errors" in r]
    assert {e["loc"][-1]: e["msg"] for e in logged} == msgs
    assert "hunter2" not in repr(sink.records)
    response = await call(app, "POST", "/login", json={"password": "x" * 12, "pin": "ab"})
    (error,) = response.json()["error"]["details"]["errors"]
    assert error["msg"] == "Input should be a valid integer, unable to parse string as an integer"


class _Quoting(BaseModel):
    """Validators that quote what they got in another form than it was sent in, or another
    field's value (review of 2026-11-30)."""

    model_config = ConfigDict(str_strip_whitespace=True)
    password: str
    owner: str
    confirm: str
    pin: str
    note: str
    amount: Decimal
    account: int
    born: date
    code: str

    @field_validator("password")
    @classmethod
    def strong(cls, v: str) -> str:
        raise ValueError(f"password {v} is too weak")  # stripped of the spaces sent

    @field_validator("confirm")
    @classmethod
    def same(cls, v: str, info: ValidationInfo) -> str:
        raise ValueError(f"not signed by {info.data.get('owner')}")  # another field

    @field_validator("pin")
    @classmethod
    def digits(cls, v: str) -> str:
        raise ValueError(f"PIN {v.upper()} must be digits")  # short, upper-cased

    @field_validator("note")
    @classmethod
    def printable(cls, v: str) -> str:
        raise ValueError(f"note {v!r} has a tab")  # escaped by repr

    @field_validator("amount")
    @classmethod
    def limit(cls, v: Decimal) -> Decimal:
        raise ValueError(f"amount {v:,.2f} exceeds your limit")  # a string, as money

    @field_validator("account")
    @classmethod
    def known(cls, v: int) -> int:
        raise ValueError(f"account {v} is closed")  # sent as 87654321.0

    @field_validator("born")
    @classmethod
    def past(cls, v: date) -> date:
        raise ValueError(f"born {v:%d.%m.%Y} is too late")  # another date format

    @field_validator("code")
    @classmethod
    def fmt(cls, v: str) -> str:  # one of pydantic's own type names, its own message
        raise PydanticCustomError("string_pattern_mismatch", "code '{code}' is bad", {"code": v})


async def test_a_value_quoted_in_another_form_or_from_another_field_is_masked(
    sink: MemorySink,
) -> None:
    app = FastAPI()

    @app.post("/quote")
    async def quote(body: _Quoting) -> dict[str, str]:
        return {}

    servicelog.fastapi.install(app)
    sent = {
        "password": "  hunter2-secret  ",
        "owner": "margaret-hamilton-42",
        "confirm": "x",
        "pin": "ab12",
        "note": "top\tsecret-note",
        "amount": "98765.4",
        "account": 87654321.0,
        "born": "1987-03-14",
        "code": "SECRET-CODE-777",
    }
    response = await call(app, "POST", "/quote", json=sent)
    msgs = {e["loc"][-1]: e["msg"] for e in response.json()["error"]["details"]["errors"]}
    assert msgs == {
        "password": "Value error, password [REDACTED] is too weak",
        "confirm": "Value error, not signed by [REDACTED]",
        "pin": "Value error, PIN [REDACTED] must be digits",
        "note": "Value error, note '[REDACTED]' has a tab",
        "amount": "Value error, amount [REDACTED] exceeds your limit",
        "account": "Value error, account [REDACTED] is closed",
        "born": "Value error, born [REDACTED] is too late",
        "code": "code '[REDACTED]' is bad",
    }
    leaks = ("hunter2", "hamilton", "AB12", "secret-note", "98,765", "87654321", "1987", "SECRET")
    for leak in leaks:
        assert leak not in response.text and leak not in logged_text(sink.records)


class _CardA(BaseModel):
    kind: Literal["a"]


class _CardB(BaseModel):
    kind: Literal["b"]


class _Booking(BaseModel):
    """Review 3: a datetime quoted as Python writes it, an int of 51 digits, a short value of
    another field that is also a common word or number (kept), pydantic's tagged union."""

    page: int
    note: str
    start: datetime
    account: int
    per_page: int
    item: Annotated[_CardA | _CardB, Field(discriminator="kind")]

    @field_validator("start")
    @classmethod
    def future(cls, v: datetime) -> datetime:
        raise ValueError(f"start {v} must be in the future")

    @field_validator("account")
    @classmethod
    def known(cls, v: int) -> int:
        raise ValueError(f"account {v} is closed")

    @field_validator("per_page")
    @classmethod
    def bounded(cls, v: int) -> int:
        raise ValueError("per_page must be between 1 and 100, at most")


async def test_more_quoted_forms_are_masked_and_common_words_kept(sink: MemorySink) -> None:
    app = FastAPI()

    @app.post("/booking")
    async def booking(body: _Booking) -> dict[str, str]:
        return {}

    servicelog.fastapi.install(app)
    sent = {
        "page": 1,
        "note": "at",
        "start": "2021-06-05T10:30:00Z",
        "account": 10**50 + 12345,
        "per_page": 500,
        "item": {"kind": "my-secret-tag-value"},
    }
    response = await call(app, "POST", "/booking", json=sent)
    msgs = {e["loc"][1]: e["msg"] for e in response.json()["error"]["details"]["errors"]}
    assert msgs == {
        "start": "Value error, start [REDACTED] must be in the future",
        "account": "Value error, account [REDACTED] is closed",
        "per_page": "Value error, per_page must be between 1 and 100, at most",
        "item": "Input tag '[REDACTED]' found using 'kind' does not match any of the expected "
        "tags: 'a', 'b'",
    }
    # a body deeper than looked through: the application's messages are withheld
    sent["note"] = [[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]
    response = await call(app, "POST", "/booking", json=sent)
    errors = response.json()["error"]["details"]["errors"]
    assert any("withheld" in e["msg"] for e in errors)


class _Tagged(BaseModel):
    tags: list[str]

    @field_validator("tags")
    @classmethod
    def known(cls, v: list[str]) -> list[str]:
        raise ValueError(f"unknown tag {v[0]} " + "1" * 1900)


async def test_masking_has_a_budget_for_the_whole_request(sink: MemorySink) -> None:
    """Many errors, each to be checked against near-miss values (review: one request of 1 MB
    cost 1.35 s of CPU): the search stops at the request's budget and withholds the rest; the
    messages it could check are masked. A body too large to look through (a validator may
    quote any of its values) has every message of the application's withheld."""
    app = FastAPI()

    @app.post("/tags")
    async def tags(body: list[_Tagged]) -> dict[str, str]:
        return {}

    servicelog.fastapi.install(app)
    near = [["1" * 45 + f"{i:02d}{j:03d}" for j in range(60)] for i in range(30)]
    body = [{"tags": [f"secret-tag-{i}", *near[i]]} for i in range(30)]  # 1,830 values
    response = await call(app, "POST", "/tags", json=body)
    msgs = [e["msg"] for e in response.json()["error"]["details"]["errors"]]
    assert len(msgs) == 30 and "secret-tag" not in response.text
    assert msgs[0].startswith("Value error, unknown tag [REDACTED] 111")
    assert "withheld" in msgs[-1]  # the budget ran out before the last
    body = [{"tags": [f"secret-tag-{i}", *near[i] * 2]} for i in range(30)]  # 3,630 values
    response = await call(app, "POST", "/tags", json=body)
    msgs = [e["msg"] for e in response.json()["error"]["details"]["errors"]]
    assert all("withheld" in m for m in msgs)


@pytest.mark.parametrize(
    "raised",
    [
        errors.BaseAPIException("odd", status_code=999),
        errors.BaseAPIException("not an error", status_code=200),
        errors.BaseAPIException("text", status_code="404"),  # type: ignore[arg-type]
        HTTPException(999, detail="odd"),
    ],
    ids=["api-999", "api-200", "api-str", "http-999"],
)
async def test_an_exception_with_an_impossible_status_is_answered_500(
    sink: MemorySink, raised: Exception
) -> None:
    """A status no server can send (999: uvicorn then dropped the connection, the client got
    no answer) or no error has (200) is answered 500, and logged as a server error saying so."""
    app = FastAPI()

    @app.get("/odd")
    async def odd() -> None:
        raise raised

    servicelog.fastapi.install(app)
    response = await call(app, "GET", "/odd")
    assert response.status_code == 500
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]
    (logged,) = [r for r in sink.records if "is not a valid status" in r["message"]]
    assert logged["log.level"] == "error" and logged["http.response.status_code"] == 500


async def test_an_http_status_enum_is_a_valid_status(sink: MemorySink) -> None:
    """``HTTPStatus.NOT_FOUND`` is an int subclass: a 404 (it was answered 500)."""
    from http import HTTPStatus

    class Gone(errors.BaseAPIException):
        status_code = HTTPStatus.NOT_FOUND

    app = FastAPI()

    @app.get("/a")
    async def a() -> None:
        raise HTTPException(status_code=HTTPStatus.NOT_FOUND, detail="no such item")

    @app.get("/b")
    async def b() -> None:
        raise Gone("missing")

    servicelog.fastapi.install(app)
    for path in ("/a", "/b"):
        response = await call(app, "GET", path)
        assert response.status_code == 404
    assert not [r for r in sink.records if r["log.level"] == "error"]


async def test_a_huge_invalid_body_gives_a_small_answer(sink: MemorySink) -> None:
    items = [{"bad": "x" * 100}] * 5000
    response = await call(make_app(), "POST", "/orders", json=items)
    assert response.status_code == 422
    assert len(response.content) < 4096


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"quantity": ' + b"9" * (1 << 20) + b"x", id="1 MiB invalid JSON"),
        pytest.param(b'{"item_id": "' + b"x" * (10 << 20) + b'"', id="10 MiB unterminated"),
        pytest.param(b"[" * 10_000 + b"]" * 10_000, id="lists 10,000 deep"),
        pytest.param(b'{"a":' * 10_000 + b"1" + b"}" * 10_000, id="objects 10,000 deep"),
        pytest.param(
            b'{"password": "hunter2-canary", "quantity": "x"}', id="password, missing field"
        ),
    ],
)
async def test_huge_deep_or_invalid_bodies_get_small_answers_and_no_500(
    sink: MemorySink, body: bytes
) -> None:
    """Catalog I7: a 400 or 422 in the error shape, at most 4 KiB, errors with ``loc``, ``type``
    and ``msg`` only, nothing of the body echoed or logged, every log record small."""
    response = await call(
        make_app(), "POST", "/orders", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code in (400, 422)
    assert len(response.content) <= 4096
    error = response.json()["error"]
    assert error["request_id"] == response.headers["x-request-id"]
    assert all(set(e) == {"loc", "type", "msg"} for e in error["details"].get("errors", []))
    assert "hunter2" not in response.text and "xxxxxxxx" not in response.text
    assert "hunter2" not in repr(sink.records)
    assert all(len(repr(record)) < 16384 for record in sink.records)


async def test_router_404_and_405_have_the_shape_and_the_id(sink: MemorySink) -> None:
    app = make_app()
    missing = await call(app, "GET", "/nowhere")
    wrong = await call(app, "DELETE", "/items/1")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    assert wrong.headers["allow"] == "GET"
    for response in (missing, wrong):
        assert response.json()["error"]["request_id"] == response.headers["x-request-id"]


async def test_problem_details_format(sink: MemorySink) -> None:
    app = make_app(error_format="problem", problem_base="https://errors.example.com/")
    response = await call(app, "GET", "/items/999")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "https://errors.example.com/not_found"
    assert (body["title"], body["status"], body["detail"]) == ("Not Found", 404, "Item not found")
    assert body["instance"] == "/items/999"
    assert body["request_id"] == response.headers["x-request-id"]
    invalid = await call(app, "POST", "/orders", json={})
    assert invalid.json()["errors"][0]["type"] == "missing"


async def test_a_failing_handler_still_answers_a_valid_500(
    sink: MemorySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    break_api_exception_handler(monkeypatch, sink)
    response = await call(make_app(), "GET", "/items/999")
    assert response.status_code == 500
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]
    assert servicelog.stats()["errors"] == {"exception handler": 1}
    # the client got a 500: the application's exception is logged as one, with its traceback
    (failed,) = [r for r in sink.records if r["message"].startswith("Exception handler failed")]
    assert failed["log.level"] == "error"
    assert failed["error.type"].endswith("NotFoundException")
    assert failed["error.handler_failure"] == "RuntimeError: handler bug"
    assert "error.stack_trace" in failed


async def test_a_failing_handler_answers_the_500_in_the_problem_format(
    sink: MemorySink,
) -> None:
    """A header value the handler cannot encode (``latin-1``): the last-resort 500 is in the
    configured format, which the OpenAPI schema documents."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/x")
    async def x() -> None:
        raise errors.ConflictException("taken", headers={"X-Reason": "\u2615"})

    servicelog.configure(stream="none", sinks=[sink], capture=NO_CAPTURE, strict=False)
    servicelog.fastapi.install(app, error_format="problem")
    response = await call(app, "GET", "/x")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"]) == (500, "internal_error")
    assert body["request_id"] == response.headers["x-request-id"]


async def test_the_documented_cors_recipe_covers_unhandled_500s(sink: MemorySink) -> None:
    """docs/fastapi.md: CORSMiddleware wrapped around the installed app, so that a front-end
    can read the request ID of every error, the unhandled 500 included."""
    from fastapi.middleware.cors import CORSMiddleware

    app = FastAPI()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("bug")

    servicelog.fastapi.install(app)
    asgi_app = CORSMiddleware(
        app, allow_origins=["https://shop.example"], expose_headers=["X-Request-ID"]
    )
    for path, status in (("/boom", 500), ("/nowhere", 404)):
        response = await call(asgi_app, "GET", path, headers={"Origin": "https://shop.example"})
        assert response.status_code == status
        assert response.headers["access-control-allow-origin"] == "https://shop.example"
        assert response.headers["access-control-expose-headers"] == "X-Request-ID"
        assert response.json()["error"]["request_id"] == response.headers["x-request-id"]


async def test_a_message_that_is_no_text_is_answered_as_its_text(sink: MemorySink) -> None:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/x")
    async def x() -> None:
        raise errors.ConflictException(message=12345)  # type: ignore[arg-type]

    servicelog.fastapi.install(app)
    response = await call(app, "GET", "/x")
    assert (response.status_code, response.json()["error"]["message"]) == (409, "12345")


async def test_a_205_error_has_no_content_and_a_1xx_is_no_final_answer(
    sink: MemorySink,
) -> None:
    """RFC 9110 15.3.6: a server must not send content with 205 Reset Content. A 1xx is an
    interim response (15.2): as a final one it is no valid status, answered 500."""
    from fastapi import FastAPI, HTTPException

    app = FastAPI()

    @app.get("/reset")
    async def reset() -> None:
        raise HTTPException(205)

    @app.get("/continue")
    async def interim() -> None:
        raise HTTPException(100)

    servicelog.fastapi.install(app)
    response = await call(app, "GET", "/reset")
    assert (response.status_code, response.content) == (205, b"")
    response = await call(app, "GET", "/continue")
    assert response.status_code == 500
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]


def test_install_on_an_app_without_an_openapi_schema_changes_nothing() -> None:
    """A Starlette application with ``openapi=True``: refused before anything is replaced."""
    from starlette.applications import Starlette

    app = Starlette()
    build = app.build_middleware_stack
    with pytest.raises(servicelog.ConfigError, match="openapi"):
        servicelog.fastapi.install(app)  # type: ignore[type-var]
    assert app.build_middleware_stack == build and not app.exception_handlers


async def test_debug_true_is_refused_in_production(sink: MemorySink) -> None:
    production(sink)
    with pytest.raises(servicelog.ConfigError, match="debug"):
        servicelog.fastapi.install(FastAPI(debug=True))


async def test_debug_set_after_install_is_overridden_in_production(sink: MemorySink) -> None:
    """No HTML traceback page (with the exception's text and file paths) in production, even
    when ``app.debug`` is turned on after ``install()``; that is logged, as an error."""
    production(sink)
    app = FastAPI()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("password=hunter2")

    servicelog.fastapi.install(app)
    app.debug = True
    response = await call(app, "GET", "/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert "hunter2" not in response.text and "Traceback" not in response.text
    refused = [r for r in sink.records if "debug=True ignored" in r["message"]]
    assert len(refused) == 1 and refused[0]["log.level"] == "error"


@pytest.mark.parametrize("status", [204, 304])
async def test_an_http_exception_without_a_body_is_answered_without_one(
    sink: MemorySink, status: int
) -> None:
    """A 304 for a conditional GET must not carry the error envelope: under a real server
    that body breaks the connection (more data than a 304 may declare)."""
    from starlette.exceptions import HTTPException

    response = await raise_through_app(HTTPException(status, headers={"ETag": '"v1"'}))
    assert (response.status_code, response.content) == (status, b"")
    assert response.headers["etag"] == '"v1"'
    assert "content-type" not in response.headers
    assert not [r for r in sink.records if r["log.logger"] == "servicelog.errors"]


async def test_an_http_exception_5xx_hides_its_detail_in_production(sink: MemorySink) -> None:
    from starlette.exceptions import HTTPException

    production(sink)
    response = await raise_through_app(HTTPException(503, "db at 10.0.0.5 refused: pw=hunter2"))
    assert response.status_code == 503
    assert response.json()["error"]["message"] == "Service Unavailable"
    assert "10.0.0.5" not in response.text
    (logged,) = [r for r in sink.records if r["log.logger"] == "servicelog.errors"]
    assert "10.0.0.5" in logged["message"] and logged["log.level"] == "error"


async def test_handlers_the_app_had_before_install_are_kept(sink: MemorySink) -> None:
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    def mine(status: int) -> Any:
        async def handler(request: Any, exc: Exception) -> Any:
            return JSONResponse({"mine": type(exc).__name__}, status_code=status)

        return handler

    app = FastAPI(exception_handlers={Exception: mine(503)})
    app.add_exception_handler(HTTPException, mine(418))
    app.add_exception_handler(RequestValidationError, mine(400))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/order")
    async def order() -> None:
        raise errors.NotFoundException("Order", 1)  # no handler of the app's: servicelog's

    servicelog.fastapi.install(app)
    answers = [await call(app, "GET", path) for path in ("/boom", "/nope", "/items/x", "/order")]
    assert [(r.status_code, r.json()) for r in answers[:3]] == [
        (503, {"mine": "RuntimeError"}),
        (418, {"mine": "HTTPException"}),
        (400, {"mine": "RequestValidationError"}),
    ]
    assert answers[3].json()["error"]["code"] == "not_found"
    assert all(r.headers["x-request-id"] for r in answers)
    # The unhandled exception is still logged, once, by the middleware.
    assert [r["error.type"] for r in sink.records if "error.type" in r] == ["RuntimeError"]


async def test_an_app_without_handlers_still_gets_the_id_on_a_500(sink: MemorySink) -> None:
    """The plain middleware on a bare ASGI app: a last-resort JSON 500 with the ID."""

    async def bare(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("bare app failed")

    app = servicelog.asgi.RequestContextMiddleware(bare)
    response = await call(app, "GET", "/")
    assert response.status_code == 500
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]
    assert [r["error.type"] for r in sink.records if "error.type" in r] == ["ValueError"]


def middleware_layers(app: FastAPI) -> list[str]:
    """The class names of the app's middleware stack, outermost first, down to the router."""
    names, layer = [], app.build_middleware_stack()
    while "Middleware" in type(layer).__name__:
        names.append(type(layer).__name__)
        layer = layer.app
    return names


def test_the_middleware_takes_the_place_of_server_error_middleware(sink: MemorySink) -> None:
    layers = middleware_layers(servicelog.fastapi.install(FastAPI()))
    assert layers[0] == "RequestContextMiddleware"
    assert "ServerErrorMiddleware" not in layers
    # With debug=True (outside production) Starlette's layer stays, for its traceback page.
    debug = middleware_layers(servicelog.fastapi.install(FastAPI(debug=True)))
    assert debug[:2] == ["RequestContextMiddleware", "ServerErrorMiddleware"]


@pytest.mark.parametrize("sync", [False, True])
async def test_the_apps_own_handler_for_unhandled_errors_still_answers(
    sink: MemorySink, sync: bool
) -> None:
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    servicelog.fastapi.install(app)

    def own(request: Any, exc: Exception) -> Any:
        return JSONResponse({"oops": type(exc).__name__}, status_code=503)

    async def own_async(request: Any, exc: Exception) -> Any:
        return own(request, exc)

    app.add_exception_handler(Exception, own if sync else own_async)  # replaces servicelog's
    response = await call(app, "GET", "/boom")
    assert (response.status_code, response.json()) == (503, {"oops": "RuntimeError"})
    access = [r for r in sink.records if r["log.logger"] == "servicelog.access"]
    assert access[0]["http.response.status_code"] == 503
    assert access[0]["request_id"] == response.headers["x-request-id"]
    # That handler logged nothing: the middleware logs the exception, once.
    assert [r["error.type"] for r in sink.records if "error.type" in r] == ["RuntimeError"]


async def test_a_failing_error_app_still_gets_the_minimal_500(sink: MemorySink) -> None:
    async def bare(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("bare app failed")

    async def broken(scope: Any, receive: Any, send: Any, exc: Exception) -> None:
        raise RuntimeError("error handler bug")

    servicelog.configure(stream="none", sinks=[sink], capture=NO_CAPTURE, strict=False)
    app = servicelog.asgi.RequestContextMiddleware(bare, error_app=broken)
    response = await call(app, "GET", "/")
    assert response.status_code == 500
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]
    assert servicelog.stats()["errors"] == {"error handler": 1}


async def test_a_pydantic_validation_error_in_an_endpoint_logs_no_input(
    sink: MemorySink,
) -> None:
    """A ``ValidationError`` of the application's own (not the request's validation): a 500,
    and its log line's message and trace are pydantic's text with ``input_value='...'``, which
    quotes what the model was given (a password that failed a length check)."""

    class Signup(BaseModel):
        password: str = Field(min_length=20)

    app = FastAPI()

    @app.post("/signup")
    async def signup() -> None:
        Signup.model_validate({"password": "Hunter2SuperSecret"})

    servicelog.fastapi.install(app)
    response = await call(app, "POST", "/signup")
    assert response.status_code == 500
    servicelog.flush()
    (crash,) = [r for r in sink.records if r.get("error.type", "").endswith("ValidationError")]
    assert "string_too_short" in crash["error.message"]
    assert "input_value='[REDACTED]'" in crash["error.message"]
    assert "Hunter2SuperSecret" not in json.dumps(sink.records) + response.text


async def test_the_last_resort_500_takes_the_installed_format(sink: MemorySink) -> None:
    """The application's own ``Exception`` handler fails: the minimal 500 the middleware sends
    is in the format the handlers use (it was always the envelope), over HTTP and as a
    WebSocket denial response."""
    app = FastAPI()

    @app.exception_handler(Exception)
    async def broken(request: Any, exc: Exception) -> Any:
        raise RuntimeError("handler bug")

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError("hunter2")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        raise ValueError("hunter2")

    servicelog.fastapi.install(app, error_format="problem")
    _errors.set_strict(False)
    try:
        response = await call(app, "GET", "/boom")
        sent: list[Any] = []

        async def receive() -> Any:
            return {"type": "websocket.connect"}

        async def send(message: Any) -> None:
            sent.append(message)

        scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b"",
                 "extensions": {"websocket.http.response": {}}}  # fmt: skip
        await app(scope, receive, send)
    finally:
        _errors.set_strict(None)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["request_id"]) == (500, response.headers["x-request-id"])
    start, denial = sent
    assert (start["status"], (b"content-type", b"application/problem+json")) == (
        500,
        start["headers"][0],
    )
    assert orjson.loads(denial["body"])["title"] == "Internal Server Error"
    assert "hunter2" not in response.text + repr(denial)


def test_the_middlewares_error_format_is_checked() -> None:
    from servicelog.asgi import RequestContextMiddleware
    from servicelog.exceptions import ConfigError

    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    with pytest.raises(ConfigError, match="error_format"):
        RequestContextMiddleware(app, error_format="rfc9457")  # type: ignore[arg-type]


def test_openapi_documents_the_error_shape(sink: MemorySink) -> None:
    schema = make_app().openapi()
    assert "ErrorResponse" in schema["components"]["schemas"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    item = schema["paths"]["/items/{item_id}"]["get"]["responses"]
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for status in ("404", "422", "500"):
        assert item[status]["content"]["application/json"]["schema"] == ref


def test_openapi_keeps_a_routes_own_error_models(sink: MemorySink) -> None:
    from pydantic import BaseModel

    class OutOfStock(BaseModel):
        sku: str

    app = FastAPI()

    @app.post(
        "/orders",
        responses={409: {"model": OutOfStock}, 500: {"model": OutOfStock}, 404: {}},
    )
    async def order() -> None: ...

    servicelog.fastapi.install(app)
    responses = app.openapi()["paths"]["/orders"]["post"]["responses"]
    own = {"$ref": "#/components/schemas/OutOfStock"}
    ours = {"$ref": "#/components/schemas/ErrorResponse"}
    assert responses["409"]["content"]["application/json"]["schema"] == own
    assert responses["500"]["content"]["application/json"]["schema"] == own
    assert responses["422"]["content"]["application/json"]["schema"] == ours
    assert responses["404"]["content"]["application/json"]["schema"] == ours


def test_openapi_keeps_a_model_of_the_applications_named_like_the_error_schema(
    sink: MemorySink,
) -> None:
    """The application's own ``ErrorResponse`` model stays, and so does a route declaring it;
    the error schema takes another name, and ``error_responses()`` entries point at it."""
    from pydantic import BaseModel

    class ErrorResponse(BaseModel):
        reason: str

    app = FastAPI()

    @app.post(
        "/orders",
        responses={409: {"model": ErrorResponse}, **servicelog.fastapi.error_responses(404)},
    )
    async def order() -> None: ...

    servicelog.fastapi.install(app)
    schema = app.openapi()
    components = schema["components"]["schemas"]
    assert components["ErrorResponse"]["properties"] == {
        "reason": {"title": "Reason", "type": "string"}
    }
    assert "error" in components["ServicelogErrorResponse"]["properties"]
    responses = schema["paths"]["/orders"]["post"]["responses"]

    def ref(status: str) -> Any:
        return responses[status]["content"]["application/json"]["schema"]["$ref"]

    assert ref("409") == "#/components/schemas/ErrorResponse"
    for status in ("404", "422", "500"):
        assert ref(status) == "#/components/schemas/ServicelogErrorResponse"
    assert "x-servicelog-error" not in json.dumps(schema)


def test_error_responses_follow_the_installed_format(sink: MemorySink) -> None:
    """``error_responses(404)`` without its ``error_format``, on a problem+json app: the spec
    must not point at a schema it does not define."""
    app = FastAPI()

    @app.get("/orders/{id}", responses=servicelog.fastapi.error_responses(404))
    async def order(id: int) -> None: ...

    servicelog.fastapi.install(app, error_format="problem")
    schema = app.openapi()
    assert "ErrorResponse" not in json.dumps(schema)
    content = schema["paths"]["/orders/{id}"]["get"]["responses"]["404"]["content"]
    assert content == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    }


def test_error_responses_are_complete_without_the_installed_schema(sink: MemorySink) -> None:
    """With ``install(openapi=False)`` (or no install), an ``error_responses()`` entry still
    describes the error shape: no reference to a component the spec does not define."""
    for error_format, media, required in (
        ("envelope", "application/json", ["error"]),
        ("problem", "application/problem+json", ["type", "title", "status", "detail"]),
    ):
        app = FastAPI()

        declared = servicelog.fastapi.error_responses(404, 409, error_format=error_format)

        @app.get("/orders/{id}", responses=declared)
        async def order(id: int) -> None: ...

        servicelog.fastapi.install(app, openapi=False, error_format=error_format)
        schema = app.openapi()
        text = json.dumps(schema)
        defined = set(schema.get("components", {}).get("schemas", {}))
        for ref in re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text):
            assert ref in defined, (error_format, ref)
        responses = schema["paths"]["/orders/{id}"]["get"]["responses"]
        for status in ("404", "409"):
            body = responses[status]["content"][media]["schema"]
            assert set(required) <= set(body["required"]), (error_format, status)


def test_subclassing_in_one_line() -> None:
    class PaymentDeclined(errors.BusinessRuleException):
        code = "payment_declined"

    exc = PaymentDeclined("card_check", "declined")
    assert (exc.status_code, exc.code, exc.details) == (
        422,
        "payment_declined",
        {"rule": "card_check"},
    )


class _Raised:
    """A stand-in for RequestValidationError: ``errors()`` and ``body`` (what FastAPI's has)."""

    def __init__(self, errors: Any, body: Any = None) -> None:
        self._errors, self.body = errors, body

    def errors(self) -> Any:
        return self._errors


def test_masking_review_4_forms_shapes_and_bodies() -> None:
    """Review 4: escapes written by json.dumps and ascii(), separators, rounding; a raw bytes
    body; entries of odd shapes answered, never raised; a very wide body withheld quickly."""
    from servicelog.asgi.handlers import safe_validation_errors

    def msg(text: str, value: Any, body: Any = None) -> str:
        err = {"loc": ("body", "x"), "type": "value_error", "msg": text, "input": value}
        (out,) = safe_validation_errors(_Raised([err], body))
        return str(out["msg"])

    assert msg('bad name "J\\u00f6rg M\\u00fcller"', "Jörg Müller") == 'bad name "[REDACTED]"'
    assert msg("bad name 'J\\xf6rg M\\xfcller'", "Jörg Müller") == "bad name '[REDACTED]'"
    assert msg('bad "pa\\"ss12word"', 'pa"ss12word') == 'bad "[REDACTED]"'
    for shown in ("1_234_567", "1 234 567", "1234567.0", "1,234,567"):
        assert msg(f"amount {shown} too big", 1234567) == "amount [REDACTED] too big"
    assert msg("amount 1234.6 too big", 1234.5678) == "amount [REDACTED] too big"
    assert msg("password hunter2-x too weak", b"hunter2-x") == "password [REDACTED] too weak"
    odd = ["email is required", {"loc": None, "msg": "m"}, {"loc": 3, "msg": "m"}]
    out = safe_validation_errors(_Raised(iter(odd)))
    assert [e["loc"] for e in out] == [[], [], [3]]
    wide = {"ids": [0] * 500_000}
    assert "withheld" in msg("at most 1000 ids", wide["ids"], wide)


async def test_an_error_record_carries_what_the_endpoint_bound_in_a_block_it_left(
    sink: MemorySink,
) -> None:
    # The handlers log after the exception left the endpoint's bound_context block; the
    # record still has its fields. An instance raised again in another request does not bring
    # the first request's fields back.
    production(sink)
    app = FastAPI()
    reused = errors.NotFoundException("Order", 1)

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> None:
        if order_id == 2:
            raise reused
        with servicelog.bound_context(order_id=order_id, step="lookup"):
            if order_id == 1:
                raise reused
            raise RuntimeError("lookup failed")

    servicelog.fastapi.install(app)
    statuses = [(await call(app, "GET", f"/orders/{n}")).status_code for n in (1, 2, 3)]
    assert statuses == [404, 404, 500]
    first, second, crash = [r for r in sink.records if r["log.logger"] == "servicelog.errors"]
    assert (first["order_id"], first["step"]) == (1, "lookup")
    assert "order_id" not in second and "step" not in second
    assert (crash["order_id"], crash["step"], crash["log.level"]) == (3, "lookup", "error")
    assert crash["request_id"] != first["request_id"]


async def test_a_block_binding_error_fields_does_not_break_the_error_record(
    sink: MemorySink,
) -> None:
    # Fields named like the exception's own (error.type) or the logger's arguments: the
    # exception's own win, and the record is written.
    production(sink)
    app = FastAPI()

    @app.get("/clash")
    async def clash() -> None:
        with servicelog.bound_context(**{"error.type": "upstream_timeout", "exc_info": 1}):
            raise RuntimeError("boom")

    servicelog.fastapi.install(app)
    assert (await call(app, "GET", "/clash")).status_code == 500
    (record,) = [r for r in sink.records if r["log.logger"] == "servicelog.errors"]
    assert record["error.type"] == "RuntimeError"


async def test_fields_of_the_block_survive_the_helpers_that_raise_the_exception_again(
    sink: MemorySink,
) -> None:
    # Starlette's BaseHTTPMiddleware (call_next) and contextlib (a yield dependency that binds
    # for the endpoint) raise the exception again on its way out: its fields stay.
    from collections.abc import AsyncIterator

    from fastapi import Depends

    production(sink)
    app = FastAPI()

    @app.middleware("http")
    async def timing(request: Any, call_next: Any) -> Any:
        return await call_next(request)

    async def tenant() -> AsyncIterator[None]:
        with servicelog.bound_context(tenant="acme"):
            yield

    @app.get("/orders/{order_id}")
    async def order(order_id: int, _: None = Depends(tenant)) -> None:
        with servicelog.bound_context(order_id=order_id):
            raise RuntimeError("db down")

    servicelog.fastapi.install(app)
    assert (await call(app, "GET", "/orders/7")).status_code == 500
    (record,) = [r for r in sink.records if r["log.logger"] == "servicelog.errors"]
    assert (record["order_id"], record["tenant"]) == (7, "acme")


def test_the_exceptions_own_fields_win_over_fields_of_the_same_name(sink: MemorySink) -> None:
    from servicelog.asgi.tracebacks import log_exception

    production(sink)
    try:
        raise KeyError("sku")
    except KeyError as exc:
        log_exception(servicelog.get_logger("t"), "failed", exc, {"error.type": "mine", "a": 1})
    (record,) = sink.records
    assert (record["error.type"], record["a"]) == ("KeyError", 1)


class OutOfStock(Exception):
    """An exception of the application's own, with a handler of its own."""


def _guarded_app(kind: str) -> FastAPI:
    """An app whose middleware (pure ASGI, or Starlette's ``BaseHTTPMiddleware``) raises what
    the request's ``x-raise`` header names, before the application's exception handling."""
    from fastapi.responses import JSONResponse
    from starlette.middleware.base import BaseHTTPMiddleware

    from fastapi import Request

    raised: dict[str, Exception] = {
        "auth": errors.AuthenticationException("token expired"),
        "http": HTTPException(403, "no entry"),
        "own": OutOfStock("sku-1"),
        "bug": RuntimeError("middleware bug"),
    }
    app = FastAPI()

    @app.get("/items")
    async def items() -> dict[str, str]:
        return {"ok": "yes"}

    @app.exception_handler(OutOfStock)
    async def out_of_stock(request: Request, exc: OutOfStock) -> JSONResponse:
        return JSONResponse({"out_of_stock": str(exc)}, status_code=409)

    if kind == "asgi":

        def guard(inner: Any) -> Any:
            async def middleware(scope: Any, receive: Any, send: Any) -> None:
                name = dict(scope.get("headers", ())).get(b"x-raise", b"").decode()
                if name:
                    raise raised[name]
                await inner(scope, receive, send)

            return middleware

        app.add_middleware(guard)  # type: ignore[arg-type]
    else:

        async def dispatch(request: Request, call_next: Any) -> Any:
            name = request.headers.get("x-raise")
            if name:
                raise raised[name]
            return await call_next(request)

        app.add_middleware(BaseHTTPMiddleware, dispatch=dispatch)
    return servicelog.fastapi.install(app)


@pytest.mark.parametrize("kind", ["asgi", "base_http"])
async def test_an_exception_raised_in_a_middleware_is_answered_by_its_handler(
    sink: MemorySink, kind: str
) -> None:
    """A middleware sits outside the application's exception handling (Starlette answers what
    it raises 500): an exception the application has a handler for is answered by that handler
    all the same, as a handled error (logged by the handler, no failure); any other is an
    unhandled 500, logged once."""
    app = _guarded_app(kind)
    expected = {"auth": 401, "http": 403, "own": 409, "bug": 500}
    for name, status in expected.items():
        response = await call(app, "GET", "/items", headers={"x-raise": name})
        assert response.status_code == status, name
        assert response.headers["x-request-id"]
    assert (await call(app, "GET", "/items")).status_code == 200
    access = [r for r in sink.records if r["log.logger"] == "servicelog.access"]
    assert [r["http.response.status_code"] for r in access] == [401, 403, 409, 500, 200]
    assert [r.get("event.outcome") for r in access] == [None, None, None, "failure", None]
    unhandled = [r for r in sink.records if r["message"] == "Unhandled exception"]
    assert [r["error.type"] for r in unhandled] == ["RuntimeError"]
    handled = [
        r
        for r in sink.records
        if r["log.logger"] == "servicelog.errors" and r["message"] != "Unhandled exception"
    ]
    assert [r["log.level"] for r in handled] == ["warning", "warning"]  # servicelog's handlers


async def test_a_middleware_exceptions_handler_reads_the_body_and_its_failure_is_unhandled(
    sink: MemorySink,
) -> None:
    """The application's handler for an exception raised in a middleware gets the request as
    inside (it can read the body); a handler that fails, or returns no response, is answered as
    its failure inside would be: the catch-all 500, in the application's error format, logged
    once as unhandled."""
    from fastapi.responses import JSONResponse

    from fastapi import Request

    class NeedsBody(Exception):
        pass

    class Broken(Exception):
        pass

    class Silent(Exception):
        pass

    app = FastAPI()

    @app.exception_handler(NeedsBody)
    async def needs_body(request: Request, exc: NeedsBody) -> JSONResponse:
        return JSONResponse({"got": (await request.body()).decode()}, status_code=409)

    @app.exception_handler(Broken)
    async def broken(request: Request, exc: Broken) -> JSONResponse:
        raise LookupError("handler bug")

    @app.exception_handler(Silent)
    async def silent(request: Request, exc: Silent) -> Any:
        return None

    def guard(inner: Any) -> Any:
        async def middleware(scope: Any, receive: Any, send: Any) -> None:
            kinds = {"/body": NeedsBody, "/broken": Broken, "/silent": Silent}
            if scope["type"] == "http" and scope["path"] in kinds:
                raise kinds[scope["path"]]()
            await inner(scope, receive, send)

        return middleware

    app.add_middleware(guard)  # type: ignore[arg-type]
    servicelog.fastapi.install(app, error_format="problem")
    answered = await call(app, "POST", "/body", content=b"sku-1")
    assert (answered.status_code, answered.json()) == (409, {"got": "sku-1"})
    for path, failure in (("/broken", "LookupError"), ("/silent", "TypeError")):
        response = await call(app, "GET", path)
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["request_id"] == response.headers["x-request-id"]
        unhandled = [r for r in sink.records if r["message"] == "Unhandled exception"]
        assert unhandled[-1]["error.type"] == failure
    assert len([r for r in sink.records if r["message"] == "Unhandled exception"]) == 2
