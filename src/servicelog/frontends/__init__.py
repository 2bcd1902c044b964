"""Front-ends: each turns one library's call shape into a servicelog record.

``stdlib`` (the ``logging`` module, hence uvicorn, SQLAlchemy, httpx and most libraries),
``structlog``, ``loguru``, and ``hooks`` (``warnings``, ``sys.excepthook``,
``threading.excepthook``, the asyncio exception handler). Nothing after the front-end knows
where a record came from, except its ``log.logger`` name.
"""
