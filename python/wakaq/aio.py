"""The async producer's machinery: a blocking producer call run off the event loop, and eager values settled.

`Task.adelay` and friends (wakaq.task) call the same code as `.delay()`, in a small thread pool of this process:
the Rust broker releases the GIL for its round trip (`lock_run`), so the loop runs on while Redis answers.

NOTE: why a thread pool and not an async Redis client: every push is a Lua script of the Rust broker (DESIGN.md 1),
so an asyncio client would mean a second protocol layer; a Rust future would need a Tokio runtime in every producer
and a second connection type. The figures (benches/async_producer.py, README "Async producer") show the pool keeps
the loop's stalls well under a millisecond. The broker has one connection behind a mutex, so pushes from the pool
are sent one at a time: more threads only overlap one call's Python work with another's round trip.

WARN: cancelling the awaiting coroutine does not recall a push already handed to the pool: the task may still be
enqueued (or was). A push not yet started when the caller is cancelled is dropped. Nothing is corrupted either way:
each push is one script, all or nothing.
"""

from __future__ import annotations

import contextvars
import functools
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from wakaq.results import EagerHandle

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = ["POOL_THREADS", "executor", "off_loop", "settled"]

T = TypeVar("T")

#: threads of the async producer's pool (per process). NOTE: 2 is enough: the connection is shared, one round trip
#: at a time; the second thread encodes the next task while the first waits (benches/async_producer.py)
POOL_THREADS = 2

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0


def executor() -> ThreadPoolExecutor:
    """This process's pool, made on first use and again after a fork (a forked child has none of its threads)."""
    global _pool, _pool_pid
    from concurrent.futures import ThreadPoolExecutor  # NOTE: here: `import wakaq` does not load it

    pid = os.getpid()
    with _lock:
        if _pool is None or _pool_pid != pid:
            _pool = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="wakaq-aio")
            _pool_pid = pid
        return _pool


async def off_loop(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` in the pool, awaited; its exception is raised here. The caller's context variables go
    with it (as `asyncio.to_thread` does), so what `fn` reads from them is the caller's."""
    import asyncio  # NOTE: here, not at the top: `import wakaq` stays free of asyncio

    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(executor(), call)


async def settled(value: Any) -> Any:
    """An eager call's value once it ran: an async task that eager mode only scheduled on this loop (an asyncio
    future, also inside an `EagerHandle`) is awaited, so its exception is raised here as a sync task's is."""
    if _is_future(value):
        return await value
    if isinstance(value, EagerHandle):
        await value.aresult()  # NOTE: at once unless its task is still running on this loop
    return value


def _is_future(value: Any) -> bool:
    aio = sys.modules.get("asyncio")
    return aio is not None and isinstance(value, aio.Future)
