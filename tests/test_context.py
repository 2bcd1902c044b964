from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

import servicelog
from fastapi import Depends, FastAPI
from servicelog import context
from servicelog.sinks import MemorySink


def test_bound_context_nests_and_restores() -> None:
    with servicelog.bound_context(a=1):
        with servicelog.bound_context(b=2, a=3):
            assert servicelog.get_context() == {"a": 3, "b": 2}
        assert servicelog.get_context() == {"a": 1}
    assert servicelog.get_context() == {}


def test_bind_reset_and_unbind() -> None:
    token = servicelog.bind(user_id=7)
    servicelog.bind(tenant="t")
    assert servicelog.get_context() == {"user_id": 7, "tenant": "t"}
    servicelog.unbind("tenant", "missing-key")
    assert servicelog.get_context() == {"user_id": 7}
    context.reset(token)
    assert servicelog.get_context() == {}


def test_bound_context_as_decorator() -> None:
    @servicelog.bound_context(job="nightly")
    def run() -> dict[str, Any]:
        return servicelog.get_context()

    assert run() == {"job": "nightly"}
    assert servicelog.get_context() == {}


AUDIT = servicelog.bound_context(component="audit")  # a module-level, reusable binding


def test_one_instance_entered_again_while_open_restores_each_level() -> None:
    with AUDIT:
        with servicelog.bound_context(step=1), AUDIT:
            assert servicelog.get_context() == {"component": "audit", "step": 1}
        assert servicelog.get_context() == {"component": "audit"}
    assert servicelog.get_context() == {}


async def test_one_instance_shared_by_concurrent_tasks() -> None:
    """Tasks entering and leaving the same instance in any order neither raise nor leak."""

    async def task(delay: float) -> dict[str, Any]:
        async with AUDIT:
            await asyncio.sleep(delay)
            return servicelog.get_context()

    for delays in ((0.01, 0.02), (0.02, 0.01)):  # first in, first or last out
        assert await asyncio.gather(*map(task, delays)) == [{"component": "audit"}] * 2
    assert servicelog.get_context() == {}


async def test_a_decorator_on_a_recursive_and_a_concurrent_function() -> None:
    @servicelog.bound_context(job="nightly")
    def depth(n: int) -> int:
        return 0 if n == 0 else 1 + depth(n - 1)

    @servicelog.bound_context(job="async")
    async def step(delay: float) -> dict[str, Any]:
        await asyncio.sleep(delay)
        return servicelog.get_context()

    assert depth(3) == 3
    assert await asyncio.gather(step(0.01), step(0.02)) == [{"job": "async"}] * 2
    assert servicelog.get_context() == {}


def test_leaving_an_outer_block_first_does_not_raise() -> None:
    """Blocks left out of order (an async generator closed late) unlink cleanly; an instance
    never entered in this context exits quietly."""
    first, second = servicelog.bound_context(a=1), servicelog.bound_context(b=2)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    first.__exit__(None, None, None)
    assert context._entered.get() is None


def test_reserved_keys_are_renamed_at_bind_time() -> None:
    """A bound key cannot overwrite the record's own fields (message, log.level, ...)."""
    with servicelog.bound_context(message="forged", ok=1):
        assert servicelog.get_context() == {"fields.message": "forged", "ok": 1}


def test_context_is_on_every_line(configure_memory: Any) -> None:
    sink: MemorySink = configure_memory()
    log = servicelog.get_logger("shop")
    with servicelog.bound_context(request_id="r-1", user_id=42):
        log.info("order placed", order_id=7, total=12.5)
    log.info("outside")
    first, second = sink.records
    assert (first["request_id"], first["user_id"], first["order_id"]) == ("r-1", 42, 7)
    assert "request_id" not in second


async def test_context_survives_await_and_reaches_child_tasks() -> None:
    async def child() -> dict[str, Any]:
        await asyncio.sleep(0)
        return servicelog.get_context()

    with servicelog.bound_context(request_id="r-2"):
        await asyncio.sleep(0)
        assert servicelog.get_context() == {"request_id": "r-2"}
        task = asyncio.create_task(child())
        group_results = await asyncio.gather(child(), child())
    assert await task == {"request_id": "r-2"}
    assert group_results == [{"request_id": "r-2"}] * 2


async def test_sibling_tasks_do_not_see_each_others_binds() -> None:
    async def worker(n: int) -> dict[str, Any]:
        servicelog.bind(worker=n)
        await asyncio.sleep(0)
        return servicelog.get_context()

    results = await asyncio.gather(*(worker(n) for n in range(5)))
    assert results == [{"worker": n} for n in range(5)]


async def test_run_in_executor_helper_carries_context() -> None:
    with servicelog.bound_context(request_id="r-3"):
        loop = asyncio.get_running_loop()
        plain = await loop.run_in_executor(None, servicelog.get_context)
        helped = await servicelog.run_in_executor(None, servicelog.get_context)
    assert plain == {}  # the stdlib does not copy the context: that is why the helper exists
    assert helped == {"request_id": "r-3"}


def test_context_thread_pool_executor_and_wrap() -> None:
    with servicelog.bound_context(request_id="r-4"):
        with servicelog.ContextThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(lambda _: servicelog.get_context(), range(4)))
        with ThreadPoolExecutor(max_workers=1) as plain_pool:
            wrapped = plain_pool.submit(context.wrap(servicelog.get_context)).result()
            plain = plain_pool.submit(servicelog.get_context).result()
    assert results == [{"request_id": "r-4"}] * 4
    assert wrapped == {"request_id": "r-4"}
    assert plain == {}


def test_request_scope_shares_binds_across_threads() -> None:
    """A bind made in a worker thread inside a request scope is seen by the request."""
    with context.request_scope(request_id="r-5"):
        worker = threading.Thread(target=context.wrap(lambda: servicelog.bind(user_id=9)))
        worker.start()
        worker.join()
        assert servicelog.get_context() == {"request_id": "r-5", "user_id": 9}
    assert servicelog.get_context() == {}


def _scoped(app: Any) -> Any:
    """The smallest pure-ASGI middleware that opens a request scope (the FastAPI integration's
    middleware does this and more)."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        with context.request_scope(request_id="req-1"):
            await app(scope, receive, send)

    return asgi


async def test_fastapi_sync_endpoint_and_sync_dependencies_see_the_context(
    configure_memory: Any,
) -> None:
    """structlog issue #491: values bound in a sync dependency (run in a worker thread) are lost
    to the endpoint. Inside a request scope they are not."""
    sink: MemorySink = configure_memory()
    log = servicelog.get_logger("api")
    app = FastAPI()

    def sync_user() -> int:
        servicelog.bind(user_id=42)
        return 42

    async def async_tenant() -> str:
        servicelog.bind(tenant="acme")
        return "acme"

    @app.get("/sync")
    def sync_endpoint(
        user: int = Depends(sync_user), tenant: str = Depends(async_tenant)
    ) -> dict[str, Any]:
        log.info("in sync endpoint")
        return servicelog.get_context()

    @app.get("/async")
    async def async_endpoint(user: int = Depends(sync_user)) -> dict[str, Any]:
        log.info("in async endpoint")
        return servicelog.get_context()

    transport = httpx.ASGITransport(app=_scoped(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        sync_ctx = (await client.get("/sync")).json()
        async_ctx = (await client.get("/async")).json()
    expected = {"request_id": "req-1", "user_id": 42, "tenant": "acme"}
    assert sync_ctx == expected
    assert async_ctx == {"request_id": "req-1", "user_id": 42}
    assert [(r["message"], r["user_id"], r["request_id"]) for r in sink.records] == [
        ("in sync endpoint", 42, "req-1"),
        ("in async endpoint", 42, "req-1"),
    ]


def test_blocks_closed_out_of_order_keep_the_open_ones_and_drop_the_closed() -> None:
    """An outer block closed before an inner one (an async generator finished late): the inner
    block's fields stay while it is open, and nothing of either stays after both."""
    outer = servicelog.bound_context(a=1)
    inner = servicelog.bound_context(b=2)
    outer.__enter__()
    inner.__enter__()
    outer.__exit__(None, None, None)
    assert servicelog.get_context() == {"b": 2}
    inner.__exit__(None, None, None)
    assert servicelog.get_context() == {}


def test_a_wrapped_function_runs_each_call_in_a_fresh_copy() -> None:
    """What one call binds does not reach the next, and calls may overlap in threads."""
    import threading

    from servicelog.context import wrap

    seen: list[object] = []
    gate = threading.Barrier(2)

    def job(n: int) -> None:
        seen.append(servicelog.get_context().get("n"))
        servicelog.bind(n=n)
        gate.wait(5)  # both calls in at once

    run = wrap(job)
    threads = [threading.Thread(target=run, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gate = threading.Barrier(1)
    run(3)
    assert seen == [None, None, None]


async def test_run_in_executor_takes_a_process_pool_too() -> None:
    # Context variables do not cross processes, and the wrapper could not be pickled: a
    # process pool gets the function as it is.
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        pid = await servicelog.run_in_executor(pool, os.getpid)
    assert pid != os.getpid()


async def test_run_in_executor_carries_context_into_any_other_executor() -> None:
    import threading
    from concurrent.futures import Executor, Future

    class ThreadPerTask(Executor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
            future: Future[Any] = Future()
            threading.Thread(target=lambda: future.set_result(fn(*args, **kwargs))).start()
            return future

    with servicelog.bound_context(request_id="r-9"):
        seen = await servicelog.run_in_executor(ThreadPerTask(), servicelog.get_context)
    assert seen == {"request_id": "r-9"}


def _raise(exc: Exception, *blocks: Any) -> None:
    """Raise *exc* inside *blocks* (context managers, outermost first)."""
    if not blocks:
        raise exc
    with blocks[0]:
        _raise(exc, *blocks[1:])


def test_an_exception_keeps_the_fields_of_the_innermost_block_it_left() -> None:
    from servicelog.context import raised_in, request_scope

    exc = ValueError("x")
    blocks = (
        request_scope(request_id="r-1"),
        context.bound_context(user=1),
        context.bound_context(step="pay"),
    )
    with pytest.raises(ValueError):
        _raise(exc, *blocks)
    assert raised_in(exc) == {"request_id": "r-1", "user": 1, "step": "pay"}
    # Where the same fields are bound, only the others are missing.
    with context.bound_context(user=1):
        assert raised_in(exc) == {"request_id": "r-1", "step": "pay"}


def test_a_note_does_not_outlive_its_raise() -> None:
    from servicelog.context import raised_in, request_scope

    shared = LookupError("reused")  # a module-level instance, raised again and again
    for job in (1, 2):
        with pytest.raises(LookupError):
            _raise(shared, context.bound_context(job=job))
        assert raised_in(shared) == {"job": job}  # not the first job's
    with pytest.raises(LookupError):
        _raise(shared, request_scope(request_id="r-1"), context.bound_context(user=1))
    with request_scope(request_id="r-2"):  # another request: not its fields
        assert raised_in(shared) is None
    with request_scope(request_id="r-3"):  # raised twice in one request: the second's fields
        for order in (111, 222):
            with pytest.raises(LookupError):
                _raise(shared, context.bound_context(order=order))
            assert raised_in(shared) == {"order": order}

    def again() -> None:
        raise shared  # a circuit breaker raising the failure it remembers

    with pytest.raises(LookupError):
        again()
    assert raised_in(shared) is None  # raised again elsewhere: the note is stale


def test_an_exception_raised_from_one_that_left_a_block_has_its_fields() -> None:
    from servicelog.context import raised_in

    def convert() -> None:
        try:
            _raise(KeyError("sku"), context.bound_context(sku="A-1"))
        except KeyError as exc:
            raise ValueError("unknown product") from exc

    with pytest.raises(ValueError) as info:
        convert()
    assert raised_in(info.value) == {"sku": "A-1"}


async def test_async_with_notes_the_fields_too() -> None:
    from servicelog.context import raised_in

    with pytest.raises(RuntimeError) as info:
        async with context.bound_context(step="async"):
            raise RuntimeError("x")
    assert raised_in(info.value) == {"step": "async"}


def test_an_exception_with_a_note_still_pickles_and_copies() -> None:
    # A process pool sends a worker's exception back pickled; the note (a traceback, this
    # process's fields) stays behind.
    import copy
    import pickle

    from servicelog import errors
    from servicelog.context import raised_in

    for exc in (ValueError("bad row"), errors.NotFoundException("Order", 7)):
        with pytest.raises(type(exc)):
            _raise(exc, context.bound_context(file="a.csv"))
        assert raised_in(exc) == {"file": "a.csv"}
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is type(exc) and str(back) == str(exc)
        assert raised_in(back) is None
        assert str(copy.deepcopy(exc)) == str(exc)
