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
- the task's exception propagates to the caller (a worker would log it and record it as failed), for tasks with
  results or uniqueness too; a task that retries (`retry_on`, `raise Retry`) runs again at once, no backoff sleep,
  until it succeeds or its `max_retries` are used up; then the last exception propagates with the earlier attempts'
  reasons in a note (`add_note`);
- it returns what the task returned. An async task (or an async wrapper/callback) runs with `asyncio.run` when no
  event loop is running; inside a running loop it is scheduled on that loop and the `asyncio.Task` is returned;
- a task with results or uniqueness returns an `EagerHandle` (it ran already): `current_task.id` is the handle's id
  while it runs, and a stored result goes through the codec as on a worker (a tuple comes back a list; a value the
  codec refuses raises the `TypeError` a worker would record). Inside a running loop the handle's `aresult()`
  gives the value or raises the task's exception;
- `.broadcast()` runs the task once and returns 1; `.delay_many()` runs each call and returns the count.

This replaces the hand-written `WakaQMock` of WakaQ's README: your app code stays unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from wakaq.context import running_meta
from wakaq.formats import encode_element
from wakaq.invoke import needs_event_loop, run_async, run_sync
from wakaq.retries import attempts_inline, attempts_inline_async

if TYPE_CHECKING:
    from wakaq.protocols import TaskHost
    from wakaq.queue import Queue

__all__ = ["eager", "run_eager", "stored_value"]

#: what a worker records when a results task's return value cannot be encoded (python/wakaq/worker.py `_finish_meta`)
UNENCODABLE_RESULT = "cannot encode the task's return value"

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


def run_eager(
    task: EagerTask,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    queue: Queue | None = None,
    task_id: str | None = None,
    returned: Callable[[Any], Any] | None = None,
) -> Any:
    """Run one `.delay()` call inline, as a worker would (see the module docstring). `queue`: where it was sent
    (its `max_retries`; None: the app's default queue); `task_id`: what `current_task.id` gives (tasks with results
    or uniqueness); `returned`: applied to the task's return value (`stored_value` for a results task)."""
    from wakaq._wakaq import decode_task

    app = task.app
    # NOTE: through the app's own format, so what a worker would refuse (JSON mode's limits) fails here too
    payload = encode_element(app, task.name, args, kwargs)
    policy = app.retry_policy_for(task, queue or app.default_queue)
    finish = returned or _same

    # NOTE: every attempt decodes fresh arguments, as a retry on a worker does (the task may have changed them)
    def attempt() -> Any:
        with _task_id(task_id):
            return run_sync(app, task, *decode_task(payload)[1:3])

    async def attempt_async() -> Any:
        with _task_id(task_id):
            return await run_async(app, task, *decode_task(payload)[1:3])

    if not needs_event_loop(app, task):
        if not policy.max_retries:
            return finish(attempt())
        return finish(attempts_inline(policy, attempt))

    async def attempts() -> Any:
        return finish(await attempts_inline_async(policy, attempt_async))

    import asyncio  # NOTE: only for async tasks: `import wakaq` stays free of asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(attempts())
    return loop.create_task(attempts())


def stored_value(value: Any) -> Any:
    """`value` as a results task's handle reads it back from a worker's record: through the codec; a value the codec
    refuses raises the TypeError the worker records."""
    from wakaq._wakaq import packb, unpackb

    try:
        packed = packb(value)
    except TypeError as e:
        raise TypeError(f"{UNENCODABLE_RESULT}: {e}") from e
    return unpackb(packed)


def _same(value: Any) -> Any:
    return value


@contextmanager
def _task_id(task_id: str | None) -> Iterator[None]:
    """With a `task_id`, `current_task.id` gives it inside the block.

    NOTE: joined with the meta a retry attempt set (its earlier errors, `retries._attempt`), as a worker's meta
    holds both."""
    if task_id is None:
        yield
        return
    token = running_meta.set({**(running_meta.get() or {}), "id": task_id})
    try:
        yield
    finally:
        running_meta.reset(token)
