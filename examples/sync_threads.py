"""Context in threads and executors: ``python examples/sync_threads.py``."""

from __future__ import annotations

import asyncio
import time

import servicelog

servicelog.configure(service="workers")
log = servicelog.get_logger("workers")


def blocking_io(n: int) -> int:
    time.sleep(0.01)
    log.info("blocking work done", n=n)  # carries the caller's request_id
    return n


async def main() -> None:
    with servicelog.bound_context(request_id="r-7"):
        await servicelog.run_in_executor(None, blocking_io, 1)
        with servicelog.ContextThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(blocking_io, [2, 3]))


asyncio.run(main())
