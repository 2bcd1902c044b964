"""``servicelog demo``: every front-end, with context and an exception, in both profiles."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import sys
import threading
import warnings

import servicelog

_RULE = "=" * 78
_TITLES = {
    "development": "development profile: readable console lines (SERVICELOG_ENV=development)",
    "production": "production profile: ECS JSON, one object per line (SERVICELOG_ENV=production)",
}


def _section(title: str) -> None:
    servicelog.flush()
    sys.stdout.write(f"\n{_RULE}\n{title}\n{_RULE}\n")
    sys.stdout.flush()


def _scenario() -> None:
    log = servicelog.get_logger("shop.orders")
    with servicelog.bound_context(request_id="9b2f6c1e-demo", user_id=42):
        log.debug("cart loaded", items=3)
        log.info("order placed", order_id=7, total=12.5, currency="EUR")
        logging.getLogger("sqlalchemy.engine").info(
            "stdlib logging: a library's line", extra={"rows": 1}
        )
        if importlib.util.find_spec("structlog"):
            import structlog

            structlog.get_logger("payments").info("structlog: charge accepted", amount=12.5)
        if importlib.util.find_spec("loguru"):
            from loguru import logger

            logger.bind(channel="email").info("loguru: receipt sent", extra={"template": "r1"})
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("warnings: this API is deprecated", DeprecationWarning, stacklevel=1)
        with servicelog.log_execution_time("price lookup", sku="A-1"):
            pass
        try:
            {"EUR": 1.0}["USD"]
        except KeyError:
            log.exception("currency conversion failed", currency="USD")
        log.warning("hostile text is escaped", note="line1\nline2 \x1b[31mred\x1b[0m")

        def worker() -> None:
            raise RuntimeError("a background thread crashed")

        thread = threading.Thread(target=servicelog.context.wrap(worker), name="worker-1")
        thread.start()
        thread.join()

        async def handler() -> None:
            await asyncio.sleep(0)
            log.info("asyncio: context follows await and tasks")

        asyncio.run(handler())
    servicelog.flush()


def run_demo(profile: str = "both", *, color: bool | None = None, http: bool = True) -> int:
    """Run the demo scenario in one or both profiles; returns an exit status (1 when the
    HTTP server did not start)."""
    profiles = ("development", "production") if profile == "both" else (profile,)
    status = 0
    try:
        for name in profiles:
            _section(_TITLES[name])
            servicelog.configure(
                service="demo-shop", version="1.0.0", profile=name, stream="stdout", color=color
            )
            _scenario()
        if http:
            from .demo_http import run_http_demo

            _section("a FastAPI service under uvicorn: request IDs, access log, error responses")
            status = run_http_demo(color)
        _section(
            "The same call sites, two shapes. In production the JSON goes to stdout, ready for\n"
            "Filebeat, Vector, Loki or OpenSearch. Counters: "
            + str({k: v for k, v in servicelog.stats().items() if k != "sinks"})
        )
    finally:
        servicelog.reset()
    return status
