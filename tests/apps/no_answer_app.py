"""An app with routes that return without an answer: at once (``/now``), a long poll that
returns a while later without reading the request (``/poll``), whose client may be gone, or one
that returns once it received the client's disconnect (``/wait``)."""

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


async def wait(scope: Any, receive: Any, send: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


app.mount("/now", now)
app.mount("/wait", wait)
app.mount("/poll", poll)
servicelog.fastapi.install(app)
