"""S: servicelog's full stack: request ID, traceparent, access log, handlers, redaction.

``configure`` with the production profile writes ECS JSON lines to the file only; ``install``
adds the pure-ASGI request-context middleware (outside ``ServerErrorMiddleware``), the exception
handlers and the lifespan that flushes the sinks at shutdown.
"""

from __future__ import annotations

from bench.http.common import LOG_FILE, add_routes

import servicelog
import servicelog.fastapi
from fastapi import FastAPI

servicelog.configure(service="bench", profile="production", stream="none", file=LOG_FILE)
app = servicelog.fastapi.install(add_routes(FastAPI()))
