"""An app with routes that return without an answer: at once (``/now``), or a long poll that
returns a while later without reading the request (``/poll``), whose client may be gone."""

from __future__ import annotations

import asyncio
from typing import Any

import servicelog
import servicelog.fastapi
from fastapi import FastAPI

servicelog.configure(service="no-answer")
app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


async def now(scope: Any, receive: Any, send: Any) -> None:
    return None


async def poll(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(0.5)


app.mount("/now", now)
app.mount("/poll", poll)
servicelog.fastapi.install(app)
