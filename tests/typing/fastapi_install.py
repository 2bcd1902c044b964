"""install() returns the app it was given, typed as given (checked by mypy, never run)."""

from __future__ import annotations

import servicelog.fastapi
from fastapi import FastAPI


class ShopApp(FastAPI):
    def health(self) -> str:
        return "ok"


app: ShopApp = servicelog.fastapi.install(ShopApp())
status: str = app.health()
plain: FastAPI = servicelog.fastapi.install(FastAPI(), access_log=False)
