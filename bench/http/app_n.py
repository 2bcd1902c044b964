"""N: servicelog's full stack as S, with the per-message rate limit turned off.

The production profile rate-limits WARNING and above per message (1,000 per 10 s). Under a flood
of ``/boom`` both the error line and the access line (ERROR for a 5xx) hit that limit, so S logs
only part of the errors; N logs every one, which is what the error path costs without shedding.
"""

from __future__ import annotations

import inspect

from bench.http.common import LOG_FILE, add_routes

import servicelog
import servicelog.fastapi
from fastapi import FastAPI

options = {"rate_limit": False}
if "rate_limit" not in inspect.signature(servicelog.configure).parameters:
    options = {}  # an older servicelog without the rate limit: the same as S
servicelog.configure(service="bench", profile="production", stream="none", file=LOG_FILE, **options)
app = servicelog.fastapi.install(add_routes(FastAPI()))
