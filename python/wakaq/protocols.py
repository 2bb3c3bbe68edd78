"""What the lower layers need from the app, as Protocols, so they never import `wakaq.app`.

`WakaQ` satisfies all of them. The package reads bottom-up:

1. values: `exceptions`, `constants`, `config`, `keys`, `expr`, `durable`, `formats`, `ratelimit`, `ids`, `context`,
   this module, `queue`, `schedule`;
2. `connection` (redis-py clients from an app's settings), `cancel` (cancelling tasks, on such a client);
3. running a task's body: `invoke`, and `eager` beside the worker (inline, no Redis); `results` (task handles,
   result records) and `unique` (the unique enqueue) beside them;
4. `task`: a registered function and how it is called (`.delay()` and friends);
5. `app`: `WakaQ`, which wires queues, schedules and tasks together;
6. what runs an app: `worker`, `daemon`, `scheduler`, `admin`, `stats`, `metrics`, `watch`, `cli`, `web`.

No module imports one above it, not even for type checking (tests/test_imports.py checks it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from wakaq._wakaq import Broker
    from wakaq.keys import Keys
    from wakaq.queue import Queue
    from wakaq.retries import RetryPolicy

# NOTE: `wrapper(fn, args, kwargs)`, sync or async (see `WakaQ.wrap_tasks_with`)
Wrapper = Callable[[Callable[..., Any], Sequence[Any], dict[str, Any]], Any]


class Named(Protocol):
    """Anything with a task name: a Task, for the values that refer to one (schedules, the running task)."""

    @property
    def name(self) -> str: ...


class TaskBody(Protocol):
    """A task as running its body needs it: its name and its function."""

    @property
    def name(self) -> str: ...

    @property
    def fn(self) -> Callable[..., Any]: ...


class RedisSettings(Protocol):
    """An app's connection settings, as `wakaq.connection` reads them."""

    url: str
    socket_timeout: float | None
    socket_connect_timeout: float | None
    health_check_interval: float | None
    tls_options: dict[str, Any]


class TaskHost(RedisSettings, Protocol):
    """The app as a Task sees it: where to send it, how to run it inline, what wraps its body; its keys and
    connection settings (results and unique tasks use a redis-py client)."""

    keys: Keys
    eager: bool
    durable_replicas: int
    durable_timeout: float
    task_wrappers: list[Wrapper]
    tracing: str  # "child", "link" or "off" (wakaq.tracing)
    payload_format: str  # "msgpack" or "json" (wakaq.formats)
    before_task_started_callback: Callable[[], Any] | None
    after_task_finished_callback: Callable[[], Any] | None

    @property
    def default_queue(self) -> Queue: ...

    @property
    def broker(self) -> Broker: ...

    def get_queue(self, queue: str | Queue, where: str) -> Queue: ...

    def max_retries_for(self, task: Any, queue: Queue | None) -> int: ...

    def retry_policy_for(self, task: Any, queue: Queue) -> RetryPolicy: ...

    def timeouts_for(self, task: Any, queue: Queue) -> tuple[timedelta | None, timedelta | None]: ...
