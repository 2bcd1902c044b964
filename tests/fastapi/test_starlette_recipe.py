"""docs/fastapi.md's recipe for a Starlette application: the handlers on the application, then
the middleware around it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from servicelog.asgi import RequestContextMiddleware
from servicelog.asgi.handlers import ErrorHandlers
from servicelog.errors import NotFoundException
from servicelog.exceptions import ConfigError
from servicelog.sinks import MemorySink


async def order(request: Request) -> Any:
    if request.path_params["id"] == "7":
        return JSONResponse({"id": 7})
    raise NotFoundException("order", request.path_params["id"])


async def crash(request: Request) -> Any:
    raise RuntimeError("database password is hunter2")


def _recipe() -> Any:
    app = Starlette(routes=[Route("/orders/{id}", order), Route("/crash", crash)])
    ErrorHandlers().install(app)  # on the Starlette app, not on the wrapper
    return RequestContextMiddleware(app)


async def test_the_starlette_recipe_answers_every_error_in_the_envelope(sink: MemorySink) -> None:
    transport = httpx.ASGITransport(app=_recipe(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        ok = await client.get("/orders/7")
        missing = await client.get("/orders/8")
        unknown = await client.get("/nowhere")
        crashed = await client.get("/crash")
    assert ok.status_code == 200 and ok.headers["x-request-id"]
    for response, status in ((missing, 404), (unknown, 404), (crashed, 500)):
        assert response.status_code == status
        body = response.json()["error"]
        assert body["request_id"] == response.headers["x-request-id"]
    assert missing.json()["error"]["type"] == "NotFoundException"
    assert "hunter2" not in crashed.text
    access = [r for r in sink.records if r["log.logger"] == "servicelog.access"]
    assert [r["http.response.status_code"] for r in access] == [200, 404, 404, 500]
    (unhandled,) = [r for r in sink.records if r.get("error.type") == "RuntimeError"]
    assert unhandled["request_id"] == crashed.headers["x-request-id"]


def test_handlers_installed_on_the_wrapper_say_where_they_go(sink: MemorySink) -> None:
    wrapped = RequestContextMiddleware(Starlette())
    with pytest.raises(ConfigError, match="install the handlers on it, then wrap it"):
        ErrorHandlers().install(wrapped)
