"""A type-checked sample of the public API (checked by mypy, never run)."""

from __future__ import annotations

import servicelog
from servicelog import Logger, LogLevel, Settings
from servicelog.render.json import JsonRenderer
from servicelog.sinks import FileSink, MemorySink
from servicelog.testing import CapturedLogs, capture_logs

settings: Settings = servicelog.configure(
    service="shop",
    profile="production",
    level=LogLevel.INFO,
    levels={"sqlalchemy.engine": "WARNING"},
    sinks=[MemorySink(), servicelog.Route(FileSink("app.jsonl", JsonRenderer()), level=40)],
)
log: Logger = servicelog.get_logger(__name__)
log.info("order placed", order_id=7, total=12.5)
log.exception("failed", exc_info=ValueError("x"))
bound: Logger = log.bind(tenant="acme")
with servicelog.bound_context(request_id="r-1"):
    bound.warning("low stock %s", "A-1", sku="A-1")
token = servicelog.bind(user_id=42)
servicelog.context.reset(token)
with capture_logs() as logs:
    log.info("captured")
captured: CapturedLogs = logs
stats: dict[str, object] = servicelog.stats()


@servicelog.log_execution_time("charge")
async def charge(amount: float) -> bool:
    return amount > 0
