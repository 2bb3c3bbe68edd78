"""Eager mode: run tasks inline, without Redis or workers, in tests and local development.

Turn it on for a whole app with `WakaQ(..., eager=True)`, or for a block::

    from wakaq.testing import eager

    with eager(app):
        mytask.delay(1, 1)          # runs now, in this process

    @eager(app)                     # also works as a decorator
    def test_something(): ...

What an eager `.delay()` does, so tests see what a worker would see:

- arguments are round-tripped through the real codec first (`encode_task` / `decode_task`): unsupported types
  raise `TypeError` exactly as a real `.delay()` would, tuples arrive as lists, aware datetimes as naive UTC;
- `wrap_tasks_with` wrappers and the `before_task_started` / `after_task_finished` callbacks run, and
  `app.current_task` is set while the task runs;
- `queue=` is validated (an unknown queue raises `WakaQError`), `eta=` is validated and then ignored: the task runs
  now;
- the task's exception propagates to the caller (a worker would log it and record it as failed); a task that
  retries (`retry_on`, `raise Retry`) runs again at once, no backoff sleep, until it succeeds or its `max_retries`
  are used up; then the last exception propagates with the earlier attempts' reasons in a note (`add_note`);
- it returns what the task returned. An async task (or an async wrapper/callback) runs with `asyncio.run` when no
  event loop is running; inside a running loop it is scheduled on that loop and the `asyncio.Task` is returned;
- `.broadcast()` runs the task once and returns 1; `.delay_many()` runs each call and returns the count.

This replaces the hand-written `WakaQMock` of WakaQ's README: your app code stays unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from wakaq.invoke import needs_event_loop, run_async, run_sync
from wakaq.retries import attempts_inline, attempts_inline_async

if TYPE_CHECKING:
    from wakaq.protocols import TaskHost
    from wakaq.queue import Queue

__all__ = ["eager", "run_eager"]

H = TypeVar("H", bound="TaskHost")


class EagerTask(Protocol):
    """A task as eager running needs it: its body and its app."""

    @property
    def name(self) -> str: ...

    @property
    def fn(self) -> Callable[..., Any]: ...

    @property
    def app(self) -> TaskHost: ...


@contextmanager
def eager(app: H) -> Iterator[H]:
    """Run `app`'s tasks inline while the block runs; restores the previous mode afterwards."""
    previous = app.eager
    app.eager = True
    try:
        yield app
    finally:
        app.eager = previous


def run_eager(task: EagerTask, args: Sequence[Any], kwargs: Mapping[str, Any], queue: Queue | None = None) -> Any:
    """Run one `.delay()` call inline, as a worker would (see the module docstring). `queue`: where it was sent
    (its `max_retries`; None: the app's default queue)."""
    from wakaq._wakaq import decode_task, encode_task

    payload = encode_task(task.name, args, kwargs)
    _, args, kwargs, _ = decode_task(payload)
    app = task.app
    policy = app.retry_policy_for(task, queue or app.default_queue)
    if not needs_event_loop(app, task):
        if not policy.max_retries:
            return run_sync(app, task, args, dict(kwargs))
        # NOTE: every attempt gets fresh arguments, as a retry on a worker does (the task may have changed them)
        return attempts_inline(policy, lambda: run_sync(app, task, *decode_task(payload)[1:3]))

    def attempt() -> Awaitable[Any]:
        return run_async(app, task, *decode_task(payload)[1:3])

    import asyncio  # NOTE: only for async tasks: `import wakaq` stays free of asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(attempts_inline_async(policy, attempt))
    return loop.create_task(attempts_inline_async(policy, attempt))
