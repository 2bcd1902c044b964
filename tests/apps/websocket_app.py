"""A FastAPI app with WebSocket routes (``websocket_routes.py`` under ``/ws``), for a real
uvicorn server."""

from __future__ import annotations

import servicelog
import servicelog.fastapi
from fastapi import FastAPI

from .websocket_routes import add_websocket_routes

servicelog.configure(profile="production", service="ws-test")
app = add_websocket_routes(FastAPI(), "/ws")


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


servicelog.fastapi.install(app)
