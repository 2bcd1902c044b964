"""C: asgi-correlation-id + a pure ASGI access-log middleware + structlog (orjson, BytesLogger).

As app D of the research note ``perf-http-baseline.md`` (no Sentry): structlog with
``merge_contextvars``, ``add_log_level``, ``TimeStamper(iso)``, ``dict_tracebacks``,
``JSONRenderer(orjson.dumps)``, a ``BytesLogger`` on the file, a filtering bound logger at INFO
and ``cache_logger_on_first_use``; the same JSON handlers as G.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
import structlog
from asgi_correlation_id import CorrelationIdMiddleware, correlation_id
from bench.http.common import LOG_FILE, add_routes, install_json_handlers

from fastapi import FastAPI, Request

structlog.configure(
    processors=[
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.processors.dict_tracebacks,
        structlog.processors.JSONRenderer(serializer=orjson.dumps),
    ],
    wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    logger_factory=structlog.BytesLoggerFactory(file=open(LOG_FILE, "ab")),  # noqa: SIM115
    cache_logger_on_first_use=True,
)
log = structlog.get_logger()


class AccessLogMiddleware:
    """Pure ASGI: binds the request ID for the request, logs one line when it ends."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # unless a response starts

        async def send_wrapper(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=correlation_id.get()):
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                log.info(
                    "request completed",
                    method=scope["method"],
                    path=scope["path"],
                    status_code=status,
                    duration_ms=round((time.perf_counter() - start) * 1000, 3),
                )


def request_id(request: Request) -> str | None:
    return correlation_id.get()


def log_unhandled(request: Request, exc: Exception, rid: str | None) -> None:
    log.exception(
        "unhandled exception", request_id=rid, path=request.url.path, method=request.method
    )


app = add_routes(FastAPI())
app.add_middleware(AccessLogMiddleware)
app.add_middleware(CorrelationIdMiddleware)  # added last: outermost
install_json_handlers(app, request_id, log_unhandled)
