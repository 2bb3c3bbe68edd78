"""`wakaq.current_task`: what the running task may ask about itself (its name, id, attempt, earlier errors).

A module-level proxy reading `wakaq.context` on every access, so concurrent async tasks in one worker each see
their own values. `app.current_task` (WakaQ's API) still returns the running `Task`; this is `.task` here.
"""

from __future__ import annotations

from typing import Any

from wakaq.context import running_meta, running_retry, running_task

__all__ = ["CurrentTask", "current_task"]


class CurrentTask:
    """The task running in this thread / asyncio task; outside a task: falsy, name and id None, attempt 0."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return running_task.get() is not None

    @property
    def task(self) -> Any:
        """The running `Task`, or None."""
        return running_task.get()

    @property
    def name(self) -> str | None:
        task = running_task.get()
        return None if task is None else str(task.name)

    @property
    def id(self) -> str | None:
        """The task id from the payload meta (tasks using results, uniqueness or retried ones), or None."""
        meta = running_meta.get()
        value = meta.get("id") if meta is not None else None
        return value if isinstance(value, str) else None

    @property
    def workflow_id(self) -> str | None:
        """The id of the workflow this task is a step of (meta `wf`, wakaq.workflow), or None."""
        meta = running_meta.get()
        value = meta.get("wf") if meta is not None else None
        return value if isinstance(value, str) else None

    @property
    def attempt(self) -> int:
        """1 on the first run, then one more per retry (exception or soft timeout): payload `retry` + 1."""
        return running_retry.get() + 1 if running_task.get() is not None else 0

    @property
    def errors(self) -> list[str]:
        """The reasons earlier attempts failed ("<ExcType>: <msg>", oldest first); [] on a first run."""
        meta = running_meta.get()
        errors = meta.get("errors") if meta is not None else None
        return [str(e) for e in errors] if isinstance(errors, list) else []

    def __repr__(self) -> str:
        if not self:
            return "<current_task: none>"
        return f"<current_task {self.name} attempt={self.attempt} id={self.id}>"


current_task = CurrentTask()
