"""A FastAPI app with WebSocket routes, for a real uvicorn server: `/ws/echo` echoes,
`/ws/crash` fails after accepting, `/ws/early` fails before accepting."""

from __future__ import annotations

import servicelog
import servicelog.fastapi
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

servicelog.configure(profile="production", service="ws-test")
app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.websocket("/ws/echo")
async def echo(ws: WebSocket) -> None:
    await ws.accept()
    try:
        while True:
            await ws.send_text(await ws.receive_text())
    except WebSocketDisconnect:
        pass


@app.websocket("/ws/crash")
async def crash(ws: WebSocket) -> None:
    await ws.accept()
    raise RuntimeError("the feed went away")


@app.websocket("/ws/early")
async def early(ws: WebSocket) -> None:
    raise RuntimeError("no session store")


servicelog.fastapi.install(app)
