"""The example FastAPI shop: ``uvicorn examples.fastapi_app:app``.

Its source lives in the package (``src/servicelog/cli/demo_app.py``) because ``servicelog demo``
serves it; read it there. It shows ``servicelog.fastapi.install(app)`` with the app's own
lifespan, the error hierarchy, ``error_responses`` for OpenAPI, and a sync dependency that binds
context.
"""

from __future__ import annotations

from servicelog.cli.demo_app import app, create_app

__all__ = ["app", "create_app"]
