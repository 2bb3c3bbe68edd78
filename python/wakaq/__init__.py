"""wakaq: a Redis-backed background task queue with WakaQ's API and a Rust core."""

from wakaq._wakaq import __version__
from wakaq.app import WakaQ
from wakaq.current import current_task
from wakaq.exceptions import SoftTimeout, TaskCancelled, TaskFailed, WakaQError
from wakaq.queue import Queue
from wakaq.results import TaskHandle
from wakaq.retries import Retry
from wakaq.schedule import CronTask
from wakaq.task import Task
from wakaq.workflow import WorkflowHandle, chain, group

__all__ = [
    "CronTask",
    "Queue",
    "Retry",
    "SoftTimeout",
    "Task",
    "TaskCancelled",
    "TaskFailed",
    "TaskHandle",
    "WakaQ",
    "WakaQError",
    "WorkflowHandle",
    "__version__",
    "chain",
    "current_task",
    "group",
]
