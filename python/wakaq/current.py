"""`wakaq.current_task`: what the running task may ask about itself (its name, id, attempt, earlier errors).

A module-level proxy reading `wakaq.context` on every access, so concurrent async tasks in one worker each see
their own values. `app.current_task` (WakaQ's API) still returns the running `Task`; this is `.task` here.
"""

from __future__ import annotations

import logging
from typing import Any

from wakaq.context import running_meta, running_progress, running_retry, running_task
from wakaq.exceptions import BrokerError

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

    def set_progress(self, done: float, total: float | None = None, **info: Any) -> bool:
        """Report how far the running task is: `handle.progress()` and the dashboard read it while it runs, and after
        it ended until its record expires. One Redis round trip; call it as often as is useful (every second, not
        every item). `info`: a few values of your own (codec types, 64 KiB packed at most).

        Returns True when written. A task without an id (one that neither stores results nor is unique or debounced:
        nothing could read its progress) writes nothing, logs at DEBUG and returns False; so does a call outside a
        task, in eager mode, or from a thread the task started (context variables do not follow threads). A Redis
        error is logged as a WARNING and gives False: progress never fails the task."""
        _check_number(done, "done")
        if total is not None:
            _check_number(total, "total")
        write = running_progress.get()
        if write is None:
            log.debug("set_progress: %s has no task id to report progress by; nothing written", self.name or "no task")
            return False
        try:
            return write({"done": done, "total": total, "info": info})
        except BrokerError as e:
            log.warning("set_progress: not written: %s", e)
            return False

    def __repr__(self) -> str:
        if not self:
            return "<current_task: none>"
        return f"<current_task {self.name} attempt={self.attempt} id={self.id}>"


def _check_number(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"set_progress: {what} must be a number, got {type(value).__name__}")


log = logging.getLogger("wakaq")
current_task = CurrentTask()
