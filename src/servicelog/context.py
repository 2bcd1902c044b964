"""Request-scoped context: fields that every log line of a request (or task) carries.

Two layers, both built on :mod:`contextvars` and reset with their tokens:

* ``bound_context(**fields)`` binds for the extent of a ``with`` block (the guide's
  ``log_context``). Blocks nest; leaving one restores exactly what was there before. One
  instance may be entered again while open (nested, or by concurrent tasks sharing a
  module-level one, or as a decorator).
* ``bind(**fields)`` binds for the rest of the current context. Inside a *request scope*
  (opened by servicelog's ASGI middleware with :func:`request_scope`), ``bind`` writes into one
  mutable mapping shared by the whole request, so a value bound in a sync dependency, which
  Starlette runs in a worker thread with a *copy* of the context, is still seen by the
  endpoint and by the access-log line (the bug reported in structlog issue #491).

Context follows ``await``, tasks created inside it (asyncio copies the context), and Starlette's
threadpool (anyio copies it). ``loop.run_in_executor`` and ``ThreadPoolExecutor.submit`` do *not*
copy it: use :func:`run_in_executor`, :func:`wrap` or :class:`ContextThreadPoolExecutor`.

The hot path reads one or two context variables per log call and merges two small dicts; the
local layer is an immutable mapping replaced on every bind, never mutated in place, so a task
that inherited it cannot see a sibling's later binds.
"""

from __future__ import annotations

import contextvars
import dis
import functools
from collections.abc import Callable, Mapping
from types import MappingProxyType, TracebackType

from .record import safe_keys

TYPE_CHECKING = False  # typing is imported only by type checkers: it costs ~8 ms at import

if TYPE_CHECKING:
    import asyncio
    from concurrent.futures import Executor
    from typing import Any, ParamSpec, TypeVar

    P = ParamSpec("P")
    R = TypeVar("R")
    _Entered = tuple["bound_context", Mapping[str, Any], Any]

__all__ = [
    "Binding",
    "bind",
    "bound_context",
    "get_context",
    "request_scope",
    "reset",
    "run_in_executor",
    "unbind",
    "wrap",
]


_EMPTY: Mapping[str, Any] = MappingProxyType({})

# The local layer: an immutable dict, replaced on each bind.
_local: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "servicelog_context", default=_EMPTY
)
# The request layer: one mutable dict per request scope, shared by every copy of the context
# made inside the request (tasks, threadpool hops), or None outside any request.
_scope: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "servicelog_scope", default=None
)

# The bound_context blocks open in this context, innermost first, as a linked list of
# (instance, the local mapping below it, the blocks outside it). An instance may be entered again
# before it exits (nested, or by concurrent tasks sharing a module-level one), so this state
# cannot live on the instance; here each context has its own.
_entered: contextvars.ContextVar[_Entered | None] = contextvars.ContextVar(
    "servicelog_bound_contexts", default=None
)

# Bound methods for the hot path (saves an attribute lookup per log call).
_local_get = _local.get
_scope_get = _scope.get


def current() -> Mapping[str, Any]:
    """Return the merged context without copying when possible (internal, hot path)."""
    scope = _scope_get()
    local = _local_get()
    if scope:
        if local:
            return {**scope, **local}
        return scope
    return local


#: Set on an exception that leaves a ``bound_context`` block, a request scope or a function run
#: by :func:`wrap`: the fields bound where it was raised. The interpreter's hooks log an
#: uncaught exception after it left them all (a thread's crash, the main program's), and an
#: error handler after it left the blocks of the endpoint; their records carry them from here.
_RAISED_IN = "__servicelog_context__"
#: Never taken from a note: the logger's own arguments, and the exception's fields (its own).
_NOT_FIELDS = frozenset({"exc_info", "stack_info", "stacklevel"})


class _Note:
    """What :func:`note_context` keeps on an exception: the fields, the request scope they were
    bound in, and the head of the exception's traceback when they were noted (how far its
    way out they hold; see :func:`_on_its_way`).

    Travels with the exception's ``__dict__``, shared by its copies, but never across a process
    (a pickled exception, from a process pool, arrives with an empty dict in its place, which
    is no note): a traceback cannot be pickled, and the fields belong to this process's
    context."""

    __slots__ = ("fields", "scope", "tb")

    def __init__(self, fields: dict[str, Any], scope: object, tb: TracebackType | None) -> None:
        self.fields = fields
        self.scope = scope
        self.tb = tb

    def __reduce__(self) -> tuple[type[dict[str, Any]], tuple[()]]:
        # An empty dict: loads where servicelog is not installed too (and is no note).
        return (dict, ())

    def __copy__(self) -> _Note:
        return self

    def __deepcopy__(self, memo: Any) -> _Note:
        return self


def note_context(exc: object) -> None:
    """Keep on *exc* the fields bound now, unless a context it left before on this same way
    out (an inner one, with as many fields or more) did. Never raises: an exception that
    refuses attributes keeps nothing."""
    try:
        if not isinstance(exc, BaseException):
            return
        head = exc.__traceback__
        note = vars(exc).get(_RAISED_IN)
        fields = current()
        if type(note) is _Note and _on_its_way(exc, note) and not _contradicts(note.fields, fields):
            note.tb = head  # still this way out: later checks walk only what comes after
            return
        if fields:
            setattr(exc, _RAISED_IN, _Note(dict(fields), _scope_get(), head))
        elif note is not None:  # a note of an earlier raise of this instance
            delattr(exc, _RAISED_IN)
    except Exception:  # a read-only or frozen exception class
        pass


def raised_in(exc: object) -> dict[str, Any] | None:
    """The fields bound where *exc* was raised (see :func:`note_context`) that are not bound
    here, or bound to another value: what a record of *exc* made here would lack. An exception
    raised from another (``raise ... from``, or in an ``except`` block) after that one left
    its blocks has the other's. ``None`` for a note of another raise of the same instance, or
    of another request's."""
    try:
        fields = None
        seen = 0
        while fields is None and isinstance(exc, BaseException) and seen < 4:
            note = vars(exc).get(_RAISED_IN)
            if type(note) is _Note and _on_its_way(exc, note):
                fields = note.fields
            exc = exc.__cause__ or exc.__context__
            seen += 1
        if fields is None:
            return None
        here = current()
        missing = {
            k: v
            for k, v in fields.items()
            if (k not in here or here[k] is not v)
            and k not in _NOT_FIELDS
            and not k.startswith("error.")
        }
    except Exception:  # an odd exception or traceback
        return None
    return missing or None


def _contradicts(noted: Mapping[str, Any], here: Mapping[str, Any]) -> bool:
    """Whether a field bound here has another value in *noted*: then *noted* is not from an
    inner block of this way out (which would have the same value), but from an earlier raise
    of the same instance (in a request, where the scope alone cannot tell)."""
    return any(k in noted and noted[k] is not v for k, v in here.items())


def forget_context(exc: object) -> None:
    """Drop what :func:`note_context` kept on *exc* (an instance that may be raised again)."""
    try:
        vars(exc).pop(_RAISED_IN, None)
    except Exception:  # no __dict__
        pass


def _on_its_way(exc: BaseException, note: _Note) -> bool:
    """Whether *note* was made on the way out *exc* is on now.

    In a request: if it was made in this request (its scope). Helpers between the endpoint and
    the handlers raise the exception again (Starlette's ``call_next`` and task groups,
    ``contextlib``, thread pools), which the traceback cannot tell from a new raise; the
    scope can. (An instance raised again in the same request is told by the fields instead:
    see :func:`_contradicts`.)

    Outside a request (a thread's crash, the main program's): if the traceback noted is below
    the exception's by propagation only.

    An exception instance raised again keeps its old traceback, below the new one (Python adds
    to it). Each entry of the traceback says where its frame was when the exception passed:
    at a call (or an ``await``) that the exception came out of, or at a ``raise``. Above an
    entry that the exception came out of, a ``raise`` is a new raise of the instance: the old
    note is stale. Two entries of one frame, a ``raise exc`` in the ``except`` of a call that
    raised it, are one way out."""
    here = _scope_get()
    if here is not None:
        return note.scope is here
    target = note.tb
    tb = exc.__traceback__
    while tb is not None and tb is not target:
        below = tb.tb_next
        if below is None:
            return False
        if _at_raise(tb) and (below.tb_frame is not tb.tb_frame or _at_raise(below)):
            return False
        tb = below
    return tb is not None


_RAISE_VARARGS = dis.opmap["RAISE_VARARGS"]


def _at_raise(tb: TracebackType) -> bool:
    """Whether the frame of *tb* was at a ``raise`` statement (not at a call)."""
    code = tb.tb_frame.f_code.co_code
    offset = tb.tb_lasti
    return 0 <= offset < len(code) and code[offset] == _RAISE_VARARGS


class Binding:
    """What :func:`bind` returns: pass it to :func:`reset` to undo exactly that bind."""

    __slots__ = ("_previous", "_scope", "_token")

    def __init__(
        self,
        token: contextvars.Token[Mapping[str, Any]] | None,
        scope: dict[str, Any] | None,
        previous: dict[str, Any] | None,
    ) -> None:
        self._token = token
        self._scope = scope
        self._previous = previous


_MISSING = object()


def bind(**fields: Any) -> Binding:
    """Bind *fields* for the rest of the current context (or request, inside a request scope).

    Returns:
        A :class:`Binding` that :func:`reset` accepts to restore the previous values.
    """
    fields = safe_keys(fields)
    scope = _scope_get()
    if scope is not None:
        previous = {k: scope.get(k, _MISSING) for k in fields}
        scope.update(fields)
        return Binding(None, scope, previous)
    token = _local.set({**_local_get(), **fields})
    return Binding(token, None, None)


def reset(binding: Binding) -> None:
    """Undo one :func:`bind`, restoring the values it replaced."""
    if binding._token is not None:
        _local.reset(binding._token)
        return
    scope, previous = binding._scope, binding._previous
    if scope is None or previous is None:
        return
    for key, old in previous.items():
        if old is _MISSING:
            scope.pop(key, None)
        else:
            scope[key] = old


def unbind(*keys: str) -> None:
    """Remove *keys* from the context, in both layers. Unknown keys are ignored."""
    scope = _scope_get()
    if scope is not None:
        for key in keys:
            scope.pop(key, None)
    local = _local_get()
    if any(k in local for k in keys):
        _local.set({k: v for k, v in local.items() if k not in keys})


def get_context() -> dict[str, Any]:
    """Return a copy of every field currently bound (request layer, then local layer)."""
    return dict(current())


class bound_context:
    """Bind *fields* for the extent of a ``with`` block (sync or async code alike).

    >>> with bound_context(request_id="r-1", user_id=42):
    ...     log.info("order placed")   # carries request_id and user_id
    """

    __slots__ = ("_fields",)

    def __init__(self, **fields: Any) -> None:
        self._fields = safe_keys(fields)

    def __enter__(self) -> dict[str, Any]:
        # Each open block is a node (instance, the mapping below it, the node below) in this
        # context: one instance may be open in several contexts, or twice in one.
        base = _local_get()
        _local.set({**base, **self._fields})
        _entered.set((self, base, _entered.get()))
        return self._fields

    def __exit__(self, *exc: object) -> None:
        if exc and exc[1] is not None:  # raised inside: it keeps what was bound here
            note_context(exc[1])
        top = _entered.get()
        if top is not None and top[0] is self:  # blocks close innermost first
            _entered.set(top[2])
            _local.set(top[1])
            return
        # Exited out of order (an async generator closed late, say): unlink this instance's
        # innermost block, and rebuild the blocks still open above it on what was below it,
        # so that neither this block's fields stay nor theirs go.
        skipped = []
        while top is not None and top[0] is not self:
            skipped.append(top)
            top = top[2]
        if top is None:
            return  # not entered in this context: nothing to undo
        mapping, below = top[1], top[2]
        for node in reversed(skipped):
            below = (node[0], mapping, below)
            mapping = {**mapping, **node[0]._fields}
        _entered.set(below)
        _local.set(mapping)

    async def __aenter__(self) -> dict[str, Any]:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Use as a decorator: the fields are bound during each call."""
        import inspect

        # The same instance for every call: entering it again (recursion, concurrent tasks)
        # is safe, each context keeps its own tokens.
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                with self:
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with self:
                return func(*args, **kwargs)

        return wrapper


class request_scope:
    """Open a request scope: :func:`bind` inside it lasts until the scope closes, in every
    task and thread of the request. servicelog's ASGI middleware opens one per request.
    """

    __slots__ = ("_scope", "_token")

    def __init__(self, **fields: Any) -> None:
        self._scope: dict[str, Any] = safe_keys(fields)
        self._token: contextvars.Token[dict[str, Any] | None] | None = None

    def __enter__(self) -> dict[str, Any]:
        self._token = _scope.set(self._scope)
        return self._scope

    def __exit__(self, *exc: object) -> None:
        if exc and exc[1] is not None:  # raised inside: it keeps what was bound here
            note_context(exc[1])
        if self._token is not None:
            _scope.reset(self._token)
            self._token = None


def wrap(func: Callable[P, R]) -> Callable[P, R]:
    """Return *func* bound to a copy of the current context, to run it in another thread."""
    ctx = contextvars.copy_context()

    @functools.wraps(func)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        # A copy per call: what one call binds does not reach the next, and calls may overlap
        # (a context can be entered by one thread at a time).
        called = ctx.copy()
        try:
            return called.run(func, *args, **kwargs)
        except BaseException as exc:
            # What the function bound, for the record of a thread's crash: the thread's hook
            # runs after this context is left.
            called.run(note_context, exc)
            raise

    return run


def run_in_executor(
    executor: Executor | None, func: Callable[..., R], *args: Any
) -> asyncio.Future[R]:
    """Like ``loop.run_in_executor``, but the function sees the caller's context.

    A ``ProcessPoolExecutor`` gets *func* as it is: context variables do not cross processes,
    and the wrapper could not be pickled. Any other executor (thread pools, custom ones) runs
    it in the caller's context.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    if executor is not None:
        from concurrent.futures import ProcessPoolExecutor

        if isinstance(executor, ProcessPoolExecutor):
            return loop.run_in_executor(executor, func, *args)
    return loop.run_in_executor(executor, wrap(func), *args)


def __getattr__(name: str) -> Any:
    # ContextThreadPoolExecutor is built on first use: concurrent.futures costs ~6 ms to import.
    if name == "ContextThreadPoolExecutor":
        from ._executor import ContextThreadPoolExecutor

        return ContextThreadPoolExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
