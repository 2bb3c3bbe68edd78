"""Coalescing of concurrent plain `adelay` calls: what an event loop's coroutines send while a push is on its way
goes together in the next `push_many`, one script per queue (the same `enqueue.lua` as `.delay()`).

One `Batcher` per app serves one event loop at a time; it lives on that loop's thread. At most one batch is in
flight: calls made meanwhile wait for it and form the next batch (Nagle's rule), so the batch size follows the load
(one task when the loop is quiet, up to `MAX_BATCH` under load) with no timer. A batch's round trip runs in the
async producer's pool (wakaq.aio) with the GIL released.

Each caller learns its own queue's outcome: a batch is pushed queue by queue, and a queue's failed push raises in
the callers of that queue only. At most `MAX_BATCH` tasks per batch: one queue's share is one script (the broker's
chunk), all or nothing, like a single push.

WARN: a caller cancelled before its batch leaves is dropped from it (never pushed); one cancelled after may still
have been pushed.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wakaq.aio import executor

if TYPE_CHECKING:
    from asyncio import AbstractEventLoop, Future

    from wakaq.protocols import TaskHost

__all__ = ["ENABLED", "MAX_BATCH", "push"]

#: coalesce plain `adelay` calls (False: each is its own `.delay()` in the pool; benches/async_producer.py compares)
ENABLED = True
#: most tasks in one batch (the Rust broker's BULK_CHUNK: one EVALSHA)
MAX_BATCH = 1000

Item = tuple[str, str, Any, Any]  # (queue, task name, args, kwargs), as `Broker.push_many` takes them
Outcomes = dict[str, BaseException | None]


class Batcher:
    """The calls of one app on one event loop, waiting for the next batch."""

    def __init__(self, app: TaskHost, loop: AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop
        self.pending: list[tuple[Item, Future[None]]] = []
        self.busy = False

    def add(self, item: Item) -> Future[None]:
        future: Future[None] = self.loop.create_future()
        self.pending.append((item, future))
        if not self.busy:
            self.busy = True
            self.loop.call_soon(self._send)  # NOTE: after this loop step, so the step's other calls join the batch
        return future

    def _send(self) -> None:
        batch = [(item, f) for item, f in self.pending[:MAX_BATCH] if not f.cancelled()]
        del self.pending[:MAX_BATCH]
        if not batch:
            self._next()
            return
        sent = self.loop.run_in_executor(executor(), _push_by_queue, self.app, [item for item, _ in batch])
        sent.add_done_callback(lambda done: self._settle(batch, done))

    def _settle(self, batch: list[tuple[Item, Future[None]]], sent: Future[Outcomes]) -> None:
        failure = _failure(sent)
        outcomes: Outcomes = {} if failure else sent.result()
        for (queue, *_), future in batch:
            if future.done():
                continue
            error = failure or outcomes.get(queue)
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
        self._next()

    def _next(self) -> None:
        if self.pending:
            self._send()
        else:
            self.busy = False


def _failure(sent: Future[Outcomes]) -> BaseException | None:
    """What stopped the whole batch (e.g. the pool shut down), else None: a push's own error is in its outcome."""
    if sent.cancelled():
        return RuntimeError("the async producer's batch was cancelled (its pool or event loop shut down)")
    return sent.exception()


def _push_by_queue(app: TaskHost, items: list[Item]) -> Outcomes:
    """In the pool: `push_many` per queue; each queue's exception or None."""
    by_queue: dict[str, list[Item]] = {}
    for item in items:
        by_queue.setdefault(item[0], []).append(item)
    outcomes: Outcomes = {}
    for queue, queued in by_queue.items():
        try:
            app.broker.push_many(queued)
            outcomes[queue] = None
        except Exception as e:
            outcomes[queue] = e
    return outcomes


_lock = threading.Lock()
_batchers: weakref.WeakKeyDictionary[Any, Batcher] = weakref.WeakKeyDictionary()


def batcher(app: TaskHost, loop: AbstractEventLoop) -> Batcher | None:
    """`app`'s batcher on `loop`, made when it has none or its last loop is done with it; None while another loop
    uses it (that loop's calls are not coalesced)."""
    with _lock:
        found = _batchers.get(app)
        if found is None or (found.loop is not loop and (found.loop.is_closed() or not found.busy)):
            found = _batchers[app] = Batcher(app, loop)
        return found if found.loop is loop else None


async def push(app: TaskHost, queue: str, name: str, args: Any, kwargs: Any, fallback: Callable[[], Any]) -> None:
    """Send one plain task with the next batch of `app` on this loop; `fallback` (the single push, run in the
    pool) when the app's batcher serves another loop."""
    import asyncio

    from wakaq.aio import off_loop

    found = batcher(app, asyncio.get_running_loop())
    if found is None:
        await off_loop(fallback)
        return
    await found.add((queue, name, args, kwargs))
