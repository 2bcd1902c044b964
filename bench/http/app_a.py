"""A: bare FastAPI, no middleware and no logging (the reference)."""

from __future__ import annotations

from bench.http.common import add_routes

from fastapi import FastAPI

app = add_routes(FastAPI())
