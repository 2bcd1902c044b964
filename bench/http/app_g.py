"""G: the guide's stack: two ``BaseHTTPMiddleware`` and loguru ``serialize=True, enqueue=True``.

As app B of the research note ``perf-http-baseline.md``, without Sentry:

* ``RequestIDMiddleware`` reads or generates ``X-Request-ID`` (``str(uuid4())``), stores it in
  a ContextVar and ``request.state``, wraps the call in ``logger.contextualize`` and sets the
  response header;
* ``AccessLogMiddleware`` times the request and logs one "request completed" line;
* loguru's other options stay at their defaults (``backtrace=True, diagnose=True``);
* JSON handlers for ``HTTPException``, ``RequestValidationError`` and ``Exception``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from bench.http.common import LOG_FILE, add_routes, install_json_handlers
from loguru import logger
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from fastapi import FastAPI, Request

logger.remove()
logger.add(LOG_FILE, serialize=True, enqueue=True)

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


class RequestIDMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Any:
        request_id = request.headers.get("X-Request-ID") or str(uuid.uuid4())
        request.state.request_id = request_id
        request_id_var.set(request_id)
        with logger.contextualize(request_id=request_id):
            response = await call_next(request)
        response.headers["X-Request-ID"] = request_id
        return response


class AccessLogMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Any:
        start = time.perf_counter()
        status = 500  # unless a response comes back
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            logger.info(
                "request completed",
                method=request.method,
                path=request.url.path,
                status_code=status,
                duration_ms=round((time.perf_counter() - start) * 1000, 3),
            )


def request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def log_unhandled(request: Request, exc: Exception, rid: str | None) -> None:
    logger.bind(request_id=rid).exception(
        "Unhandled exception", path=request.url.path, method=request.method
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await logger.complete()  # drain loguru's queue


app = add_routes(FastAPI(lifespan=lifespan))
app.add_middleware(AccessLogMiddleware)
app.add_middleware(RequestIDMiddleware)  # added last: outermost
install_json_handlers(app, request_id, log_unhandled)
