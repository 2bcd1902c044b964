"""A ThreadPoolExecutor that carries the submitter's context into each call."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["ContextThreadPoolExecutor"]

P = ParamSpec("P")
R = TypeVar("R")


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose ``submit`` (and so ``map``) runs each call in a copy of
    the submitter's context, so log lines from the worker carry the submitter's fields."""

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        ctx = contextvars.copy_context()
        return super().submit(ctx.run, fn, *args, **kwargs)  # type: ignore[arg-type]
