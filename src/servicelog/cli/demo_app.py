"""The example shop: a FastAPI service using servicelog (``uvicorn servicelog.cli.demo_app:app``).

Served by ``servicelog demo``, and used by the tests and the HTTP benchmark. Needs
``pip install 'servicelog[fastapi]'``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from pydantic import BaseModel, Field

import servicelog
import servicelog.fastapi
from fastapi import APIRouter, Depends, FastAPI
from servicelog.errors import InsufficientBalanceException, NotFoundException, RateLimitException

if servicelog.settings() is None:  # the tests configure servicelog themselves first
    servicelog.configure(service="shop", version="1.0.0")
log = servicelog.get_logger("shop.api")
ITEMS = {1: "keyboard", 2: "mouse", 42: "towel"}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    log.info("shop starting", items=len(ITEMS))  # the app's own lifespan keeps working
    yield
    log.info("shop stopping")


router = APIRouter()


class Order(BaseModel):
    item_id: int = Field(ge=1)
    quantity: int = Field(ge=1, le=100)
    card_number: str = Field(min_length=12, max_length=19)


def current_user() -> int:
    """A sync dependency (run in Starlette's threadpool) that binds the user for the request."""
    servicelog.bind(user_id=7)
    return 7


@router.get("/items/{item_id}", responses=servicelog.fastapi.error_responses(404))
async def get_item(item_id: int) -> dict[str, object]:
    if item_id not in ITEMS:
        raise NotFoundException("Item", item_id)
    return {"id": item_id, "name": ITEMS[item_id]}


@router.post("/orders", status_code=201, responses=servicelog.fastapi.error_responses(422))
def place_order(order: Order, user: Annotated[int, Depends(current_user)]) -> dict[str, object]:
    if order.quantity > 10:
        raise InsufficientBalanceException(required=order.quantity * 10.0, available=50.0)
    log.info("order placed", item_id=order.item_id, quantity=order.quantity)
    return {"status": "placed", "item_id": order.item_id}


@router.get("/limited", responses=servicelog.fastapi.error_responses(429))
async def limited() -> dict[str, str]:
    raise RateLimitException(retry_after=30)


@router.get("/boom")
async def boom() -> dict[str, str]:
    raise RuntimeError("the database password is hunter2")  # not shown in production


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


def create_app(**options: Any) -> FastAPI:
    """The shop, with servicelog installed (``options`` go to ``servicelog.fastapi.install``)."""
    app = FastAPI(title="servicelog example shop", lifespan=lifespan)
    app.include_router(router)
    return servicelog.fastapi.install(app, **options)


app = create_app()
