"""What is running now, in this process: the task and its payload meta, read through context variables.

The bottom of the package: it imports nothing from wakaq at run time, so every other module can read it.
`app.current_task` (WakaQ's API) and the features that need a running task's id or attempt read from here.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any

# NOTE: the running `Task` (typed loosely: this module sits below `wakaq.task`); set by `invoke.run_*` around each
# task call, also in eager mode
running_task: ContextVar[Any] = ContextVar("wakaq_task", default=None)

# NOTE: set only for tasks whose payload carries meta (an opt-in feature is used): plain tasks pay nothing
running_meta: ContextVar[dict[str, Any] | None] = ContextVar("wakaq_task_meta", default=None)

# NOTE: the running task's payload `retry` (attempt - 1); set only when it is not 0 or the task has meta, so a plain
# first run pays nothing (the default, 0, is right for it)
running_retry: ContextVar[int] = ContextVar("wakaq_task_retry", default=0)

# NOTE: the queue the running task was claimed from; set by the worker alongside meta, and for every task while a
# tracer is on (wakaq.tracing), so a plain task pays nothing. Unset (None) in eager mode: nothing is traced there.
running_queue: ContextVar[str | None] = ContextVar("wakaq_task_queue", default=None)

# NOTE: how the running task reports progress (`current_task.set_progress`): the child's writer for this task, set
# only for tasks whose meta carries an id (a plain task has nothing to read its progress by), so plain tasks pay nothing
running_progress: ContextVar[Callable[[dict[str, Any]], bool] | None] = ContextVar("wakaq_task_progress", default=None)


def current_meta() -> dict[str, Any] | None:
    """The payload meta of the task running in this context (None for plain tasks and outside a task)."""
    return running_meta.get()


def set_meta(meta: dict[str, Any] | None) -> Token[dict[str, Any] | None]:
    """Make `meta` the running task's meta; pass the token to `running_meta.reset` when the task is over."""
    return running_meta.set(meta)
