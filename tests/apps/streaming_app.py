"""A FastAPI app with streamed bodies (catalog F14), for a real uvicorn server: `/stream` fails
midway, `/slow` takes a second for a client to leave in the middle."""

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


@app.get("/slow")
async def slow() -> StreamingResponse:
    import asyncio

    async def body() -> AsyncIterator[bytes]:
        for i in range(50):
            yield b"chunk %d\n" % i
            await asyncio.sleep(0.02)

    return StreamingResponse(body(), media_type="text/plain")
