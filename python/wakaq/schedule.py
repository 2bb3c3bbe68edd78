"""`CronTask`: a task enqueued on a cron schedule (UTC) by `wakaq-scheduler`.

Cron strings are checked when the WakaQ app is built; task names only when the scheduler starts
(`WakaQ.validate_schedules`), because tasks register with `@app.task` after the app exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from wakaq.exceptions import WakaQError
from wakaq.queue import Queue

if TYPE_CHECKING:
    from wakaq.protocols import Named


class CronTask:
    """Run `task_name` with `args`/`kwargs` on `queue` (default: the task's queue, else the app's default)."""

    __slots__ = ("args", "kwargs", "queue", "schedule", "task_name")

    schedule: str
    task_name: str
    queue: str | None
    args: list[Any]
    kwargs: dict[str, Any]

    def __init__(
        self,
        schedule: str,
        task_name: str | Named,
        queue: str | Queue | None = None,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.schedule = _check_str(schedule, "cron schedule")
        self.task_name = _check_str(getattr(task_name, "name", task_name), f"task name of schedule {schedule!r}")
        self.queue = queue.name if isinstance(queue, Queue) else queue
        self.args = _check_args(args, self.task_name)
        self.kwargs = _check_kwargs(kwargs, self.task_name)
        self.validate_cron()  # NOTE: at construction, as WakaQ's CronTask: a bad cron fails where it is written

    @classmethod
    def create(cls, obj: CronTask | Sequence[Any]) -> CronTask:
        """A CronTask from a CronTask or `(cron, task)`, `(cron, task, args)`, `(cron, task, args, kwargs)`."""
        if isinstance(obj, CronTask):
            return obj
        if isinstance(obj, tuple | list) and 2 <= len(obj) <= 4:
            return cls(obj[0], obj[1], args=obj[2] if len(obj) > 2 else None, kwargs=obj[3] if len(obj) > 3 else None)
        raise WakaQError(f"invalid schedule {obj!r}: use a CronTask or (cron, task[, args[, kwargs]])")

    @property
    def queue_name(self) -> str | None:
        """WakaQ's attribute name for `queue`."""
        return self.queue

    def validate_cron(self) -> None:
        """Raise WakaQError naming the cron string and the task when croniter refuses the schedule."""
        from croniter import croniter  # type: ignore[import-untyped]  # NOTE: lazy: only apps with schedules pay

        try:
            croniter(self.schedule)
        except (ValueError, KeyError, TypeError) as e:
            raise WakaQError(f"invalid cron {self.schedule!r} for task {self.task_name!r}: {e}") from None

    def __repr__(self) -> str:
        return f"CronTask({self.schedule!r}, {self.task_name!r}, queue={self.queue!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CronTask):
            return NotImplemented
        return all(getattr(self, slot) == getattr(other, slot) for slot in self.__slots__)

    __hash__ = None  # type: ignore[assignment]


def _check_str(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise WakaQError(f"invalid {what}: {value!r}")
    return value


def _check_args(args: object, task_name: str) -> list[Any]:
    if args is None:
        return []
    if isinstance(args, str | bytes) or not isinstance(args, Sequence):
        raise WakaQError(f"args of scheduled task {task_name!r} must be a list or tuple, got {args!r}")
    return list(args)


def _check_kwargs(kwargs: object, task_name: str) -> dict[str, Any]:
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise WakaQError(f"kwargs of scheduled task {task_name!r} must be a dict with str keys, got {kwargs!r}")
    return dict(kwargs)
