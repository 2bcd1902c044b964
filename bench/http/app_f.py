"""F: fapilog's FastAPI integration, as its docs set it up, writing JSON lines to a file.

``FastAPIBuilder().with_preset("production")`` is the documented setup (the lifespan builds the
async logger and adds fapilog's two middlewares, request context and access log). ``add_file``
adds its rotating file sink; the preset's stdout sink is dropped so that the file is the only
output, and ``max_bytes`` is raised so that no rotation happens during a run. fapilog installs
no exception handlers: an unhandled error gets Starlette's plain-text 500.
"""

from __future__ import annotations

from bench.http.common import LOG_DIR, add_routes
from fapilog.fastapi import FastAPIBuilder

from fastapi import FastAPI

builder = FastAPIBuilder().with_preset("production").add_file(str(LOG_DIR), max_bytes="1 GB")
builder._config.setdefault("core", {})["sinks"] = ["rotating_file"]  # no stdout copy

app = add_routes(FastAPI(lifespan=builder.build()))
