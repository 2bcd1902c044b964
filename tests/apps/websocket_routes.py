"""WebSocket routes shared by the in-process tests and the real-server app
(``websocket_app.py``): echo, deny (closed before accept), crash (after accept), early (raises
before accept), left (the client's leaving raises, uncaught), peer (another connection's
leaving raises) and silent (returns without
accepting or denying)."""

from __future__ import annotations

from fastapi import FastAPI, WebSocket, WebSocketDisconnect


def add_websocket_routes(app: FastAPI, prefix: str = "") -> FastAPI:
    @app.websocket(prefix + "/echo")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                await ws.send_text(await ws.receive_text())
        except WebSocketDisconnect:
            pass

    @app.websocket(prefix + "/deny")
    async def deny(ws: WebSocket) -> None:
        await ws.close(code=1008)

    @app.websocket(prefix + "/crash")
    async def crash(ws: WebSocket) -> None:
        await ws.accept()
        raise RuntimeError("ws boom")

    @app.websocket(prefix + "/early")
    async def early(ws: WebSocket) -> None:
        raise RuntimeError("no session store")

    @app.websocket(prefix + "/left")
    async def left(ws: WebSocket) -> None:
        await ws.accept()
        await ws.receive_text()  # the client's leaving raises WebSocketDisconnect, uncaught
        await ws.receive_text()

    @app.websocket(prefix + "/peer")
    async def peer(ws: WebSocket) -> None:
        await ws.accept()
        # a peer's connection went away (a chat relaying to it): not this client's leaving
        raise WebSocketDisconnect(1006)

    @app.websocket(prefix + "/silent")
    async def silent(ws: WebSocket) -> None:
        return None

    return app
