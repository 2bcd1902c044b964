"""A FastAPI app that configures servicelog at import, as `uvicorn module:app` users do."""

from __future__ import annotations

import logging

import servicelog
from fastapi import FastAPI

servicelog.configure(profile="production", service="uvicorn-test")
log = servicelog.get_logger(__name__)
app = FastAPI()


@app.get("/hello")
async def hello() -> dict[str, str]:
    log.info("said hello", who="test")
    logging.getLogger("some.library").info("library line")
    return {"hello": "world"}
