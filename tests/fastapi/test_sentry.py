"""An app that initialised the real sentry-sdk still reports what servicelog answers.

In a child process: ``sentry_sdk.init`` patches Starlette and ``logging`` for the whole process,
which the other tests must not inherit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

pytest.importorskip("sentry_sdk")

SCRIPT = textwrap.dedent(
    """
    import asyncio, json
    import httpx, sentry_sdk
    from sentry_sdk.transport import Transport
    from fastapi import FastAPI
    import servicelog, servicelog.fastapi

    events = []

    class Capture(Transport):  # the envelope as it would be sent; no network here
        def capture_envelope(self, envelope):
            events.extend(i.payload.json for i in envelope.items if i.type == "event")

    sentry_sdk.init(dsn="http://key@127.0.0.1:9/1", transport=Capture, traces_sample_rate=0)
    servicelog.configure(service="shop", profile="production", stream="none")
    app = FastAPI()

    @app.get("/boom")
    async def boom():
        raise RuntimeError("db exploded")

    @app.get("/ok")
    async def ok():
        return {}

    servicelog.fastapi.install(app)

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answers = [await client.get(path) for path in ("/boom", "/ok")]
        sentry_sdk.flush()
        layer, kinds = app.middleware_stack, []
        while layer is not None:
            kinds.append(type(layer).__name__)
            layer = getattr(layer, "app", None)
        print(json.dumps({
            "layers": kinds,
            "statuses": [r.status_code for r in answers],
            "request_id": answers[0].headers["x-request-id"],
            "events": [
                {
                    "exception": e["exception"]["values"][-1]["value"],
                    "tags": e.get("tags", {}),
                    "url": e.get("request", {}).get("url"),
                }
                for e in events
            ],
        }))

    asyncio.run(main())
    """
)


@pytest.fixture(scope="module")
def out() -> Any:
    """What the script printed (run once for the module)."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_unhandled_exception_reaches_sentry_once_tagged_with_the_request_id(out: Any) -> None:
    assert out["statuses"] == [500, 200]
    (event,) = out["events"]
    assert event["exception"] == "db exploded"
    assert event["tags"]["request_id"] == out["request_id"]
    assert event["url"] == "http://t/boom"


def test_sentrys_patched_exception_middleware_is_kept(out: Any) -> None:
    # sentry-sdk patches ExceptionMiddleware.__call__ (the user on events, a span): install()
    # must not put its lighter layer in that one's place.
    layers = out["layers"]
    assert "ExceptionMiddleware" in layers
    assert "ExceptionLayer" not in layers
