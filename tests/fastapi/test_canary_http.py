"""Issue 5's canary sweep through a real FastAPI app: a unique secret planted in every place of
catalog item I6 reaches no output — log file, console, error responses."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import httpx
import pytest

import servicelog
import servicelog.fastapi
from fastapi import FastAPI, Request

CANARY = f"CANARY-{uuid.uuid4()}"


def build_app() -> FastAPI:
    app = FastAPI()
    log = servicelog.get_logger("canary.app")

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, str]:
        body = await request.json()
        # What careless code logs: headers, the body, a connection URL, odd extras, bytes.
        log.info(
            "request received",
            headers=dict(request.headers),
            body=body,
            dsn=f"postgres://admin:{CANARY}@db.internal:5432/shop",
            **{"X-API-KEY": CANARY, "apiKey": CANARY, "Pass_Word": CANARY, "client-secret": CANARY},
            raw=f"Authorization: Bearer {CANARY}".encode(),
        )
        return {"ok": "yes"}

    @app.post("/form")
    async def form(request: Request) -> dict[str, str]:
        data = await request.form()
        log.info("form received", form=dict(data))
        return {"ok": "yes"}

    @app.get("/fail")
    async def fail() -> None:
        api_key = CANARY  # a local variable, shown by development tracebacks
        raise RuntimeError(f"upstream refused password={api_key}")

    servicelog.fastapi.install(app)
    return app


@pytest.mark.parametrize("profile", ["development", "production"])
async def test_no_canary_reaches_any_output(
    profile: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    console = io.StringIO()
    monkeypatch.setattr("sys.stderr", console)
    monkeypatch.setattr("sys.stdout", console)
    log_file = tmp_path / "app.jsonl"
    servicelog.configure(service="canary", profile=profile, file=log_file, color=False)
    app = build_app()
    responses: list[httpx.Response] = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        responses.append(
            await client.post(
                f"/echo?token={CANARY}&page=2&api_key={CANARY}",
                json={"user": {"name": "ann", "password": CANARY, "cards": [{"cvv": CANARY}]}},
                headers={
                    "Authorization": f"Bearer {CANARY}",
                    "X-Api-Key": CANARY,
                    "Cookie": f"session={CANARY}",
                },
            )
        )
        responses.append(await client.post("/form", data={"password": CANARY, "name": "ann"}))
        responses.append(await client.get(f"/fail?session_token={CANARY}"))
    servicelog.flush()
    outputs: dict[str, str] = {
        "log file": log_file.read_text(),
        "console": console.getvalue(),
        **{f"response {i}": r.text + repr(dict(r.headers)) for i, r in enumerate(responses)},
    }
    assert responses[2].status_code == 500
    assert outputs["log file"], "the sweep logged something"
    leaks = {where: text.count(CANARY) for where, text in outputs.items() if CANARY in text}
    assert leaks == {}
    # and the redacted places are still there, masked (not silently dropped)
    assert "[REDACTED]" in outputs["log file"]
    assert "page=2" in outputs["log file"]
