"""The README's quick start, runnable: ``python examples/quickstart.py``.

Set ``SERVICELOG_ENV=production`` to see the JSON shape instead of the console one.
"""

from __future__ import annotations

import logging

import servicelog

servicelog.configure(service="shop")
log = servicelog.get_logger("shop.orders")

with servicelog.bound_context(request_id="r-1", user_id=42):
    log.info("order placed", order_id=7, total=12.5)
    logging.getLogger("some.library").warning("a library line, same shape", extra={"retry": 2})
    try:
        {}["missing"]
    except KeyError:
        log.exception("lookup failed")
