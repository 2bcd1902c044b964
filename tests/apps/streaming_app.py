"""A FastAPI app whose streamed body fails midway (catalog F14), for a real uvicorn server."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

import servicelog
import servicelog.fastapi
from fastapi import FastAPI

servicelog.configure(profile="production", service="stream-test")
app = servicelog.fastapi.install(FastAPI())


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"items": ['
        yield b"1,"
        raise RuntimeError("the source went away")

    return StreamingResponse(body(), media_type="application/json")


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
