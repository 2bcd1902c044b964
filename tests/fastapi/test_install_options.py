"""Bad options to ``install()``, ``RequestContextMiddleware`` and ``AccessLog`` are refused at
construction with a ConfigError, never on each request (or, worse, taken as truthy)."""

from __future__ import annotations

import math
from typing import Any

import pytest

pytest.importorskip("fastapi")

import servicelog.fastapi
from fastapi import FastAPI
from servicelog import ConfigError
from servicelog.asgi import AccessLog, RequestContextMiddleware


async def _app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - never called
    pass


BAD_HEADERS = [None, "", "X-Réq-€", "bad header", "X-Request-ID:", "X-Ä", b"X-Request-ID", 5]
BAD_MIDDLEWARE_OPTIONS = [
    *({"request_id_header": h} for h in BAD_HEADERS),
    {"access_log": "no"},
    {"access_log": {"skip": ["/x"]}},
    {"trust_request_id": "no"},
    {"trust_request_id": None},
]


@pytest.mark.parametrize("options", BAD_MIDDLEWARE_OPTIONS)
def test_install_refuses_bad_options(options: dict[str, Any]) -> None:
    app = FastAPI()
    [(option, value)] = options.items()
    with pytest.raises(ConfigError) as info:
        servicelog.fastapi.install(app, **options)
    assert f"option {option!r} got {value!r}; expected" in str(info.value)
    assert not getattr(app.state, "_servicelog_installed", False)


@pytest.mark.parametrize(
    "options",
    [
        {"expose_server_errors": "no"},  # truthy: would show internals to clients
        {"expose_server_errors": 0},
        {"problem_base": 123},
        {"openapi": "yes"},
        {"openapi": None},
        {"gc_freeze": 1},
    ],
)
def test_install_refuses_bad_install_options(options: dict[str, Any]) -> None:
    [(option, value)] = options.items()
    with pytest.raises(ConfigError, match=f"option {option!r} got {value!r}; expected"):
        servicelog.fastapi.install(FastAPI(), **options)


@pytest.mark.parametrize("options", BAD_MIDDLEWARE_OPTIONS)
def test_the_middleware_alone_refuses_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        RequestContextMiddleware(_app, **options)


@pytest.mark.parametrize(
    "header", ["X-Request-ID", "x-correlation-id", "Req_ID", "a!#$%&'*+.^`|~9"]
)
def test_any_http_token_is_a_header_name(header: str) -> None:
    assert (
        RequestContextMiddleware(_app, request_id_header=header, access_log=False).header == header
    )


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"skip": "/health"}, "skip"),  # a str would skip its characters
        ({"skip": None}, "skip"),
        ({"skip": [1]}, "skip"),
        ({"sample": 0.1}, "sample"),
        ({"sample": [("/h", 0.1)]}, "sample"),
        ({"sample": {"/h": "0.5"}}, "sample['/h']"),
        ({"sample": {"/h": True}}, "sample['/h']"),
        ({"sample": {"/h": None}}, "sample['/h']"),
        ({"sample": {"/h": math.nan}}, "sample['/h']"),
        ({"sample": {"/h": 1.5}}, "sample['/h']"),
        ({"trusted_proxies": "1"}, "trusted_proxies"),
        ({"trusted_proxies": None}, "trusted_proxies"),
        ({"trusted_proxies": True}, "trusted_proxies"),
        ({"trusted_proxies": 1.5}, "trusted_proxies"),
        ({"trusted_proxies": -1}, "trusted_proxies"),
        ({"enabled": "no"}, "enabled"),
        ({"logger": ""}, "logger"),
        ({"logger": None}, "logger"),
    ],
)
def test_access_log_refuses_bad_options(options: dict[str, Any], option: str) -> None:
    with pytest.raises(ConfigError) as info:
        AccessLog(**options)
    assert f"option {option!r}" in str(info.value)


def test_access_log_accepts_any_iterable_of_paths_and_stores_rates_as_floats() -> None:
    from decimal import Decimal
    from fractions import Fraction

    log = AccessLog(
        skip=(p for p in ["/ping", "/ready"]),
        sample={"/h": 0, "/m": 1, "/d": Decimal("0.5"), "/f": Fraction(1, 4)},
    )
    assert log.skip == frozenset({"/ping", "/ready"})
    assert log.sample == {"/h": 0.0, "/m": 1.0, "/d": 0.5, "/f": 0.25}
    assert all(type(rate) is float for rate in log.sample.values())


def test_access_log_none_means_no_access_log() -> None:
    """``access_log=None`` was taken as off before the options were checked: it still is."""
    assert RequestContextMiddleware(_app, access_log=None).access_log is None


def test_uvicorns_line_after_a_denial_is_dropped_without_the_access_record_too() -> None:
    import contextvars
    import logging

    from servicelog.asgi.request_context import _DENIAL_SENT

    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    RequestContextMiddleware(app, access_log=False)
    errors = logging.getLogger("uvicorn.error")
    line = "ASGI callable returned without completing handshake."
    record = errors.makeRecord("uvicorn.error", logging.ERROR, __file__, 1, line, (), None)
    assert errors.filter(record)  # no denial response sent in this context: kept
    connection = contextvars.copy_context()
    connection.run(_DENIAL_SENT.set, True)
    assert not connection.run(errors.filter, record)


def test_the_uvicorn_filter_passes_any_message_object_untouched() -> None:
    import logging

    from servicelog.asgi.request_context import filter_uvicorn_after_app

    class Hostile:
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("no comparing me")

        __hash__ = object.__hash__

    filter_uvicorn_after_app()
    errors = logging.getLogger("uvicorn.error")
    record = errors.makeRecord("uvicorn.error", logging.ERROR, __file__, 1, Hostile(), (), None)
    assert errors.filter(record)
