"""What every benchmark app shares: the two routes, the JSON error handlers, the log location.

The harness (``bench/http_bench.py``) sets ``BENCH_LOG_DIR`` to a fresh temporary directory for
each server; an app that logs writes its JSON lines there (``app.jsonl``, or fapilog's own file
names).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from fastapi import FastAPI, Request

LOG_DIR = Path(os.environ.get("BENCH_LOG_DIR", "."))
LOG_FILE = LOG_DIR / "app.jsonl"


def add_routes(app: FastAPI) -> FastAPI:
    """``GET /items/{item_id}`` (a small JSON) and ``GET /boom`` (an unhandled exception)."""

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, object]:
        return {"id": item_id, "name": "towel"}

    @app.get("/boom")
    async def boom() -> dict[str, object]:
        raise RuntimeError("boom")

    return app


RequestId = Callable[[Request], str | None]
LogUnhandled = Callable[[Request, Exception, str | None], None]


def install_json_handlers(app: FastAPI, request_id: RequestId, log_unhandled: LogUnhandled) -> None:
    """The guide's JSON handlers: ``{"error": {"message", "type", "details", "request_id"}}``.

    The ``Exception`` handler runs in Starlette's ``ServerErrorMiddleware``, outside the user
    middlewares, so it logs the traceback and sets ``X-Request-ID`` itself.
    """

    def envelope(status: int, message: str, kind: str, rid: str | None, **details: Any) -> Any:
        body = {"error": {"message": message, "type": kind, "details": details, "request_id": rid}}
        headers = {"X-Request-ID": rid} if rid else None
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Any:
        return envelope(exc.status_code, str(exc.detail), "HTTPException", request_id(request))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Any:
        errors = [{"loc": e["loc"], "type": e["type"], "msg": e["msg"]} for e in exc.errors()]
        rid = request_id(request)
        return envelope(422, "Validation failed", "ValidationError", rid, errors=errors)

    @app.exception_handler(Exception)
    async def unhandled(request: Request, exc: Exception) -> Any:
        rid = request_id(request)
        log_unhandled(request, exc, rid)
        return envelope(500, "Internal server error", "InternalServerError", rid)
