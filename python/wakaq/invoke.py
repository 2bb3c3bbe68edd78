"""The one place that runs a task body: wrappers, callbacks and `app.current_task`, sync or async.

Used by eager mode (`wakaq.eager`) and by the worker child. A wrapper is `wrapper(fn, args, kwargs)`, sync or
async; `app.wrap_tasks_with` may register several, the first registered is the outermost. An async wrapper turns
the call async even around a sync task (it is awaited); a sync wrapper cannot wait for an async task or an async
wrapper inside it, which is a WakaQError. Callbacks (`before_task_started`, `after_task_finished`) may be sync or
async; async ones are awaited. `after_task_finished` runs also when the task raised.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from wakaq import tracing
from wakaq.context import running_task
from wakaq.exceptions import WakaQError

if TYPE_CHECKING:
    from wakaq.protocols import TaskBody, TaskHost, Wrapper


def compose(app: TaskHost, task: TaskBody) -> Callable[..., Any]:
    """The task function inside every wrapper, outermost = first registered."""
    fn: Callable[..., Any] = task.fn
    for wrapper in reversed(app.task_wrappers):
        fn = _bind(wrapper, fn, task)
    return fn


def _bind(wrapper: Wrapper, inner: Callable[..., Any], task: TaskBody) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(wrapper):

        async def bound_async(*args: Any, **kwargs: Any) -> Any:
            return await wrapper(inner, args, kwargs)

        return functools.update_wrapper(bound_async, inner)
    if inspect.iscoroutinefunction(inner):
        name = getattr(wrapper, "__qualname__", repr(wrapper))
        raise WakaQError(
            f"sync wrapper {name!r} cannot wrap async task {task.name!r} (or an async wrapper): make it `async def`"
        )

    def bound(*args: Any, **kwargs: Any) -> Any:
        return wrapper(inner, args, kwargs)

    return functools.update_wrapper(bound, inner)


def needs_event_loop(app: TaskHost, task: TaskBody) -> bool:
    """True when running this task awaits something: the task, a wrapper or a callback is async."""
    parts = [task.fn, *app.task_wrappers, app.before_task_started_callback, app.after_task_finished_callback]
    return any(inspect.iscoroutinefunction(part) for part in parts if part is not None)


def run_sync(app: TaskHost, task: TaskBody, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """Run a task from synchronous code (no running event loop); async parts go through `asyncio.run`."""
    if needs_event_loop(app, task):
        import asyncio  # NOTE: only for async parts: `import wakaq` stays free of asyncio

        return asyncio.run(run_async(app, task, args, kwargs))
    return run_prepared(app, task, compose(app, task), args, kwargs)


def run_prepared(
    app: TaskHost, task: TaskBody, chain: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]
) -> Any:
    """`run_sync` for a caller that composed the chain once (the worker child) and knows nothing is async."""
    # NOTE: tracing off costs this one check per task (wakaq.tracing); on, the task runs inside its consumer span
    if tracing.active() and (span := tracing.processing(app.tracing, task.name)) is not None:
        with span:
            return run_untraced(app, task, chain, args, kwargs)
    return run_untraced(app, task, chain, args, kwargs)


def run_untraced(
    app: TaskHost, task: TaskBody, chain: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]
) -> Any:
    """`run_prepared` for a caller that checked `tracing.active()` already (the worker child, once per batch)."""
    token = running_task.set(task)
    try:
        _call_sync(app.before_task_started_callback)
        try:
            return chain(*args, **kwargs)
        finally:
            _call_sync(app.after_task_finished_callback)
    finally:
        running_task.reset(token)


async def run_async(app: TaskHost, task: TaskBody, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """Run a task inside an event loop; sync parts are called directly (they block the loop, as in WakaQ)."""
    if tracing.active() and (span := tracing.processing(app.tracing, task.name)) is not None:
        with span:
            return await _run_async(app, task, args, kwargs)
    return await _run_async(app, task, args, kwargs)


async def _run_async(app: TaskHost, task: TaskBody, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    chain = compose(app, task)
    token = running_task.set(task)
    try:
        await _call_async(app.before_task_started_callback)
        try:
            result = chain(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result
        finally:
            await _call_async(app.after_task_finished_callback)
    finally:
        running_task.reset(token)


def _call_sync(callback: Callable[[], Any] | None) -> None:
    if callback is not None:
        callback()


async def _call_async(callback: Callable[[], Any] | None) -> None:
    if callback is None:
        return
    result = callback()
    if inspect.isawaitable(result):
        await result
