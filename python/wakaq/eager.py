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
- the task's exception propagates to the caller (a worker would log it and record it as failed);
- it returns what the task returned. An async task (or an async wrapper/callback) runs with `asyncio.run` when no
  event loop is running; inside a running loop it is scheduled on that loop and the `asyncio.Task` is returned;
- `.broadcast()` runs the task once and returns 1; `.delay_many()` runs each call and returns the count.

This replaces the hand-written `WakaQMock` of WakaQ's README: your app code stays unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from wakaq.invoke import needs_event_loop, run_async, run_sync

if TYPE_CHECKING:
    from wakaq.protocols import TaskHost

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


def run_eager(task: EagerTask, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """Run one `.delay()` call inline, as a worker would (see the module docstring)."""
    from wakaq._wakaq import decode_task, encode_task

    _, args, kwargs, _ = decode_task(encode_task(task.name, args, kwargs))
    app = task.app
    if not needs_event_loop(app, task):
        return run_sync(app, task, args, dict(kwargs))
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_async(app, task, args, dict(kwargs)))
    return loop.create_task(run_async(app, task, args, dict(kwargs)))
