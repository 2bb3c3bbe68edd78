"""`WakaQ`: the app object. Validates its configuration once, holds the queues, the task registry and the hooks.

Every configuration error raises `WakaQError` at construction (or at `@app.task` registration) with a message
naming the offending value, so a typo fails at import time instead of on a worker at 3am.

Resolution rules (WakaQ's): a task's timeouts come from the task, else its queue, else the app, separately for soft
and hard; `max_retries` (soft timeouts, and exceptions in `retry_on` or `raise Retry`) from the task, else the
queue, else the app (default 0: no retry). The other retry settings (`retry_on`, `retry_backoff`, `retry_backoff_max`,
`retry_jitter`) come from the task, else the app (`retry_policy_for`, wakaq.retries).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from wakaq.conclimit import ConcurrencyLimit, KeyFunction
from wakaq.config import (
    TimeoutValue,
    build_url,
    check_key_prefix,
    check_url,
    is_cluster_url,
    to_log_file,
    to_log_level,
    to_max_mem_percent,
    to_max_retries,
    to_positive_int,
    to_seconds,
    to_start_method,
    to_timeout,
)
from wakaq.connection import is_tls_url, tls_options
from wakaq.constants import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DB,
    DEFAULT_HEALTH_CHECK_INTERVAL,
    DEFAULT_HEARTBEAT_TIMEOUT,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_RESULT_TTL,
    DEFAULT_SCHEDULER_LOG_LEVEL,
    DEFAULT_SOCKET_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    DEFAULT_WORKER_LOG_LEVEL,
)
from wakaq.context import running_task
from wakaq.durable import DEFAULT_DURABLE_TIMEOUT, to_durable_timeout, to_replicas
from wakaq.exceptions import WakaQError
from wakaq.expr import cpu_cores, eval_expr
from wakaq.formats import DEFAULT_PAYLOAD_FORMAT, check_app, check_task, to_payload_format
from wakaq.keys import DEFAULT_PREFIX, Keys
from wakaq.protocols import Wrapper
from wakaq.queue import Queue, check_timeout_order, sort_queues
from wakaq.ratelimit import RateValue, to_rate
from wakaq.results import TaskHandle
from wakaq.retries import BackoffValue, RetryOnValue, RetryOptions, RetryPolicy, resolve
from wakaq.schedule import CronTask
from wakaq.task import QueueArg, Task
from wakaq.tracing import to_mode
from wakaq.unique import to_unique_for
from wakaq.workflow import WorkflowHandle

if TYPE_CHECKING:
    import ssl as _ssl

    from wakaq._wakaq import Broker
    from wakaq.cancel import Outcome

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])


# NOTE: a ContextVar, not a plain attribute: concurrent async tasks in one worker each see their own task.


class WakaQ:
    """A task queue app. See the README for every option; defaults match WakaQ's."""

    def __init__(
        self,
        queues: Sequence[Queue | str | tuple[Any, Any]] = (),
        schedules: Sequence[CronTask | Sequence[Any]] = (),
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        username: str | None = None,
        password: str | None = None,
        db: int = DEFAULT_DB,
        url: str | None = None,
        ssl: bool = False,
        ssl_ca_certs: str | os.PathLike[str] | None = None,
        ssl_certfile: str | os.PathLike[str] | None = None,
        ssl_keyfile: str | os.PathLike[str] | None = None,
        ssl_cert_reqs: str | _ssl.VerifyMode | None = None,
        concurrency: int | str = 0,
        async_concurrency: int | str = 0,
        exclude_queues: Sequence[str] = (),
        max_retries: int | None = None,
        soft_timeout: TimeoutValue = None,
        hard_timeout: TimeoutValue = None,
        max_mem_percent: int | float | None = None,
        max_tasks_per_worker: int | None = None,
        worker_log_file: str | os.PathLike[str] | None = None,
        scheduler_log_file: str | os.PathLike[str] | None = None,
        worker_log_level: int | str = DEFAULT_WORKER_LOG_LEVEL,
        scheduler_log_level: int | str = DEFAULT_SCHEDULER_LOG_LEVEL,
        socket_timeout: float | None = DEFAULT_SOCKET_TIMEOUT,
        socket_connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        health_check_interval: float = DEFAULT_HEALTH_CHECK_INTERVAL,
        wait_timeout: float | timedelta = DEFAULT_WAIT_TIMEOUT,
        eager: bool = False,
        key_prefix: str = DEFAULT_PREFIX,
        heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT,
        durable_enqueue: bool | int = False,
        durable_timeout: float | timedelta = DEFAULT_DURABLE_TIMEOUT,
        start_method: str = "fork",
        retry_on: RetryOnValue = (),
        retry_backoff: BackoffValue = None,
        retry_backoff_max: BackoffValue = None,
        retry_jitter: bool | None = None,
        store_results: bool = False,
        result_ttl: float | timedelta = DEFAULT_RESULT_TTL,
        tracing: str | bool = "child",
        payload_format: str = DEFAULT_PAYLOAD_FORMAT,
    ) -> None:
        self.key_prefix = check_key_prefix(key_prefix)
        self._init_connection(
            host, port, username, password, db, url, ssl, ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_cert_reqs
        )
        self.keys = Keys(self.key_prefix, cluster=is_cluster_url(self.url))
        self.socket_timeout = to_seconds(socket_timeout, "socket_timeout")
        self.socket_connect_timeout = to_seconds(socket_connect_timeout, "socket_connect_timeout")
        self.health_check_interval = to_seconds(health_check_interval, "health_check_interval")
        self.wait_timeout: float = to_seconds(wait_timeout, "wait_timeout", allow_none=False)  # type: ignore[assignment]
        self.heartbeat_timeout: float = to_seconds(heartbeat_timeout, "heartbeat_timeout", allow_none=False)  # type: ignore[assignment]
        #: durable enqueue: replicas every push waits for (0 = off), and for how long (wakaq.durable)
        self.durable_replicas = to_replicas(durable_enqueue, "durable_enqueue")
        self.durable_timeout = to_durable_timeout(durable_timeout)
        #: results (wakaq.results): the default for tasks that do not say, and the records' TTL in seconds
        self.store_results = _to_bool(store_results, "store_results")
        self.result_ttl: float = to_seconds(result_ttl, "result_ttl", allow_none=False)  # type: ignore[assignment]
        self._init_limits(concurrency, async_concurrency, max_retries, max_mem_percent, max_tasks_per_worker)
        self._init_timeouts(soft_timeout, hard_timeout)
        #: the app's retry settings (wakaq.retries), defaults of every task's
        self.retry_options = RetryOptions.create(retry_on, retry_backoff, retry_backoff_max, retry_jitter, "the app")
        #: "msgpack" or "json" (WakaQ's payloads, plain tasks only): what this app's producers write (wakaq.formats)
        self.payload_format = to_payload_format(payload_format)
        check_app(self)
        self._init_queues(queues, exclude_queues)
        self._init_logging(worker_log_file, scheduler_log_file, worker_log_level, scheduler_log_level)
        self.schedules = self._init_schedules(schedules)
        self.eager = bool(eager)
        #: trace context from `.delay()` to the worker when a tracer is on (wakaq.tracing): "child", "link" or "off"
        self.tracing = to_mode(tracing)
        self.start_method = to_start_method(start_method)
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.task_wrappers: list[Wrapper] = []
        self.after_worker_started_callback: Callable[[], Any] | None = None
        self.before_task_started_callback: Callable[[], Any] | None = None
        self.after_task_finished_callback: Callable[[], Any] | None = None
        self._broker: Broker | None = None
        self._broker_pid = 0
        self._stale_brokers: list[Broker] = []

    # ---- construction steps ---------------------------------------------------------------------------------

    def _init_connection(
        self,
        host: str,
        port: int,
        username: str | None,
        password: str | None,
        db: int,
        url: str | None,
        ssl: bool,
        ssl_ca_certs: str | os.PathLike[str] | None,
        ssl_certfile: str | os.PathLike[str] | None,
        ssl_keyfile: str | os.PathLike[str] | None,
        ssl_cert_reqs: str | _ssl.VerifyMode | None,
    ) -> None:
        """`self.url` and `self.tls_options` (the non-default `ssl_*` options, for every client of the app)."""
        if not isinstance(ssl, bool):
            raise WakaQError(f"ssl must be True or False, got {ssl!r}")
        if url is None:
            self.url = build_url(host, port, username, password, db, tls=ssl)
        else:
            self.url = check_url(url)
            if ssl and not is_tls_url(self.url):
                raise WakaQError("ssl=True needs a rediss:// url (or leave url out and use host/port)")
        self.tls_options = tls_options(self.url, ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_cert_reqs)

    def _init_limits(
        self,
        concurrency: int | str,
        async_concurrency: int | str,
        max_retries: int | None,
        max_mem_percent: int | float | None,
        max_tasks_per_worker: int | None,
    ) -> None:
        self.concurrency = _eval_concurrency(concurrency)
        self.async_concurrency = eval_expr(async_concurrency)
        if self.async_concurrency < 0:
            raise WakaQError(f"async_concurrency must be >= 0 (0 = no limit), got {async_concurrency!r}")
        self.max_retries: int = to_max_retries(max_retries, "max_retries") or 0
        self.max_mem_percent = to_max_mem_percent(max_mem_percent)
        self.max_tasks_per_worker = to_positive_int(max_tasks_per_worker, "max_tasks_per_worker")

    def _init_timeouts(self, soft_timeout: TimeoutValue, hard_timeout: TimeoutValue) -> None:
        self.soft_timeout = to_timeout(soft_timeout, "soft_timeout")
        self.hard_timeout = to_timeout(hard_timeout, "hard_timeout")
        check_timeout_order(self.soft_timeout, self.hard_timeout, "the app")
        self._check_wait_timeout(self.soft_timeout, self.hard_timeout)

    def _init_queues(self, queues: Sequence[Queue | str | tuple[Any, Any]], exclude_queues: Sequence[str]) -> None:
        if isinstance(queues, str | Queue) or not queues:
            raise WakaQError(f"queues must be a non-empty list of queues, got {queues!r}")
        self.queues = sort_queues([Queue.create(q) for q in queues], self.key_prefix, cluster=self.keys.cluster)
        self.queues_by_name: dict[str, Queue] = {}
        for queue in self.queues:
            if queue.name in self.queues_by_name:
                raise WakaQError(f"duplicate queue name {queue.name!r}")
            self.queues_by_name[queue.name] = queue
            check_timeout_order(*self._queue_timeouts(queue), f"queue {queue.name!r}")
        self.queues_by_key = {q.broker_key: q for q in self.queues}
        if isinstance(exclude_queues, str):
            raise WakaQError(f"exclude_queues must be a list of queue names, got {exclude_queues!r}")
        self.exclude_queues = [self.get_queue(name, "exclude_queues").name for name in exclude_queues]

    def _init_logging(
        self,
        worker_log_file: str | os.PathLike[str] | None,
        scheduler_log_file: str | os.PathLike[str] | None,
        worker_log_level: int | str,
        scheduler_log_level: int | str,
    ) -> None:
        self.worker_log_file = to_log_file(worker_log_file, "worker_log_file")
        self.scheduler_log_file = to_log_file(scheduler_log_file, "scheduler_log_file")
        self.worker_log_level = to_log_level(worker_log_level, "worker_log_level", DEFAULT_WORKER_LOG_LEVEL)
        self.scheduler_log_level = to_log_level(scheduler_log_level, "scheduler_log_level", DEFAULT_SCHEDULER_LOG_LEVEL)

    def _init_schedules(self, schedules: Sequence[CronTask | Sequence[Any]]) -> list[CronTask]:
        result = [CronTask.create(s) for s in schedules]
        for cron in result:
            cron.validate_cron()
            if cron.queue is not None:
                self.get_queue(cron.queue, f"schedule {cron.schedule!r} of task {cron.task_name!r}")
        return result

    def _check_wait_timeout(self, soft: timedelta | None, hard: timedelta | None) -> None:
        """The app's timeouts must exceed wait_timeout (WakaQ's rule, app level only as in WakaQ).

        NOTE: queue and task timeouts are not held to it: the watchdog times running tasks only, never a child
        blocked on the doorbells, so a short per-task limit is meaningful (the worker tests rely on it)."""
        for label, value in (("soft_timeout", soft), ("hard_timeout", hard)):
            if value is not None and value.total_seconds() <= self.wait_timeout:
                raise WakaQError(
                    f"{label} ({value.total_seconds():g}s) of the app must be greater than "
                    f"wait_timeout ({self.wait_timeout:g}s)"
                )

    # ---- queues ---------------------------------------------------------------------------------------------

    @property
    def default_queue(self) -> Queue:
        """The lowest priority queue: where tasks without a queue go."""
        return self.queues[-1]

    @property
    def worker_queues(self) -> list[Queue]:
        """Queues a worker of this app consumes, in priority order (`exclude_queues` left out)."""
        return [q for q in self.queues if q.name not in self.exclude_queues]

    @property
    def broker_keys(self) -> list[str]:
        """Redis keys of the worker's queues (WakaQ's attribute)."""
        return [q.broker_key for q in self.worker_queues]

    def get_queue(self, queue: QueueArg, where: str) -> Queue:
        """This app's Queue for a name or a Queue; WakaQError naming the queue (and `where`) when unknown."""
        name = queue.name if isinstance(queue, Queue) else queue
        found = self.queues_by_name.get(name) if isinstance(name, str) else None
        if found is None:
            raise WakaQError(f"unknown queue {name!r} in {where}; known queues: {', '.join(self.queues_by_name)}")
        return found

    # ---- tasks ----------------------------------------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, R]) -> Task[P, R]: ...
    @overload
    def task(
        self,
        fn: None = None,
        *,
        queue: QueueArg | None = None,
        max_retries: int | None = None,
        soft_timeout: TimeoutValue = None,
        hard_timeout: TimeoutValue = None,
        rate_limit: RateValue = None,
        retry_on: RetryOnValue = None,
        retry_backoff: BackoffValue = None,
        retry_backoff_max: BackoffValue = None,
        retry_jitter: bool | None = None,
        store_results: bool | None = None,
        result_ttl: float | timedelta | None = None,
        unique_for: float | timedelta | None = None,
        concurrency_key: KeyFunction | str | None = None,
        concurrency_limit: int | None = None,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...
    def task(
        self,
        fn: Callable[P, R] | None = None,
        *,
        queue: QueueArg | None = None,
        max_retries: int | None = None,
        soft_timeout: TimeoutValue = None,
        hard_timeout: TimeoutValue = None,
        rate_limit: RateValue = None,
        retry_on: RetryOnValue = None,
        retry_backoff: BackoffValue = None,
        retry_backoff_max: BackoffValue = None,
        retry_jitter: bool | None = None,
        store_results: bool | None = None,
        result_ttl: float | timedelta | None = None,
        unique_for: float | timedelta | None = None,
        concurrency_key: KeyFunction | str | None = None,
        concurrency_limit: int | None = None,
    ) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
        """Register a task: `@app.task` or `@app.task(queue=..., max_retries=..., soft_timeout=..., ...)`.

        The `retry_*` options (None: the app's) are described in wakaq.retries; `store_results` (default: the app's)
        and `result_ttl`: see the README's "Results"; `unique_for`: "Unique tasks"; `concurrency_key` (a callable of
        the task's arguments, or the name of one) with `concurrency_limit`: at most that many running per key
        (wakaq.conclimit, the README's "Per-key concurrency")."""

        def register(f: Callable[P, R]) -> Task[P, R]:
            t = Task(
                f, self, queue=queue, max_retries=max_retries, soft_timeout=soft_timeout, hard_timeout=hard_timeout
            )
            t.rate_limit = to_rate(rate_limit, f"task {t.name!r}")
            if (retry_on, retry_backoff, retry_backoff_max, retry_jitter) != (None, None, None, None):
                options = (retry_on, retry_backoff, retry_backoff_max, retry_jitter)
                t.retry_options = RetryOptions.create(*options, f"task {t.name!r}")
            t.concurrency = ConcurrencyLimit.create(f, t.name, concurrency_key, concurrency_limit)
            self._init_tracking(t, store_results, result_ttl, unique_for)
            check_task(self, t)
            if t.name in self.tasks:
                raise WakaQError(f"duplicate task name {t.name!r}")
            queue_ = t.queue or self.default_queue
            where = f"task {t.name!r} on queue {queue_.name!r} (task, else queue, else app values)"
            check_timeout_order(*self.timeouts_for(t, queue_), where)
            self.tasks[t.name] = t
            return t

        return register(fn) if fn is not None else register

    def _init_tracking(
        self,
        task: Task[Any, Any],
        store_results: bool | None,
        result_ttl: float | timedelta | None,
        unique_for: float | timedelta | None,
    ) -> None:
        where = f"task {task.name!r}"
        stores = self.store_results if store_results is None else _to_bool(store_results, f"store_results of {where}")
        ttl = to_seconds(result_ttl, f"result_ttl of {where}")
        task.result_ttl = max(1.0, ttl or self.result_ttl) if stores else None
        task.unique_for = to_unique_for(unique_for, where)
        # NOTE: a per-key concurrency limit takes the same path at `.delay()`: its payload carries meta `ck`
        task.tracked = task.result_ttl is not None or task.unique_for is not None or task.concurrency is not None

    def result_handle(self, task_id: str) -> TaskHandle:
        """The handle of a task sent with results on, from its id (`handle.id`)."""
        return TaskHandle(self, task_id)

    def workflow_handle(self, workflow_id: str) -> WorkflowHandle:
        """The handle of a workflow (a chain or group's `.delay()`), from its id (`handle.id`)."""
        return WorkflowHandle(self, workflow_id)

    def timeouts_for(self, task: Task[Any, Any], queue: Queue) -> tuple[timedelta | None, timedelta | None]:
        """Effective (soft, hard) timeouts of a task running from `queue`: task, else queue, else app."""
        soft = task.soft_timeout or queue.soft_timeout or self.soft_timeout
        hard = task.hard_timeout or queue.hard_timeout or self.hard_timeout
        return soft, hard

    def max_retries_for(self, task: Task[Any, Any], queue: Queue | None) -> int:
        """Effective retries on soft timeout: task, else queue, else app."""
        if task.max_retries is not None:
            return task.max_retries
        if queue is not None and queue.max_retries is not None:
            return queue.max_retries
        return self.max_retries

    def retry_policy_for(self, task: Task[Any, Any], queue: Queue) -> RetryPolicy:
        """Effective retry settings of a task running from `queue` (the worker works this out once per pair)."""
        return resolve(task.retry_options, self.retry_options, self.max_retries_for(task, queue))

    def _queue_timeouts(self, queue: Queue) -> tuple[timedelta | None, timedelta | None]:
        return queue.soft_timeout or self.soft_timeout, queue.hard_timeout or self.hard_timeout

    def validate_schedules(self) -> None:
        """Check that every schedule names a registered task and a known queue (the scheduler calls this)."""
        for cron in self.schedules:
            where = f"schedule {cron.schedule!r}"
            if cron.task_name not in self.tasks:
                raise WakaQError(f"unknown task {cron.task_name!r} in {where}; registered: {', '.join(self.tasks)}")
            if cron.queue is not None:
                self.get_queue(cron.queue, f"{where} of task {cron.task_name!r}")

    @property
    def current_task(self) -> Task[Any, Any] | None:
        """The task running in this thread / asyncio task, or None."""
        task: Task[Any, Any] | None = running_task.get()
        return task if task is not None and task.app is self else None

    # ---- hooks ----------------------------------------------------------------------------------------------

    def wrap_tasks_with(self, wrapper: F) -> F:
        """Register `wrapper(fn, args, kwargs)` around every task. May be used several times: the first
        registered is the outermost. Async wrappers must `await fn(...)` when fn is a coroutine function."""
        self.task_wrappers.append(wrapper)
        return wrapper

    def after_worker_started(self, callback: F) -> F:
        """Called (no arguments) in each worker child once it started."""
        self.after_worker_started_callback = callback
        return callback

    def before_task_started(self, callback: F) -> F:
        """Called (no arguments) before each task; `app.current_task` is already set."""
        self.before_task_started_callback = callback
        return callback

    def after_task_finished(self, callback: F) -> F:
        """Called (no arguments) after each task, also when it raised."""
        self.after_task_finished_callback = callback
        return callback

    # ---- cancel ---------------------------------------------------------------------------------------------

    def cancel(self, task_id: str, terminate: bool = False) -> Outcome:
        """Cancel a task by id (a results handle's id, or one `wakaq-cancel list` prints): a pending, rate-limit
        parked or eta task is removed and recorded failed "cancelled by admin" (`Outcome.CANCELLED`). A running one
        keeps running (`Outcome.RUNNING`) unless `terminate=True`: then `TaskCancelled` is raised inside it, as a
        soft timeout is, and it is recorded failed, not retried (`Outcome.TERMINATING`). `Outcome.NOT_FOUND`
        otherwise. An `Outcome` is a str ("cancelled", "running", "terminating", "not found")."""
        from wakaq.cancel import Outcome, cancel

        if self.eager:
            return Outcome.NOT_FOUND  # NOTE: eager tasks ran inside their .delay(): nothing is ever pending
        return cancel(self, task_id, terminate)

    def cancel_task(self, name: str, queue: str | None = None) -> int:
        """Cancel every pending, parked and eta task named `name` (of `queue`, or of every queue); returns how
        many were removed (each recorded failed "cancelled by admin"). Running ones are left alone."""
        from wakaq.cancel import cancel_task

        if queue is not None:
            queue = self.get_queue(queue, "cancel_task").name
        if self.eager:
            return 0
        return cancel_task(self, name, queue)

    # ---- pause ----------------------------------------------------------------------------------------------

    def pause(self, queue: QueueArg) -> bool:
        """Pause a queue on every worker daemon of every host: from their next claim, no child takes a task from
        it; running tasks finish. It keeps accepting tasks (`.delay()`) and promoting due eta tasks, so nothing is
        lost while paused. The state lives in Redis until `resume`. True when it was not paused already."""
        name = self.get_queue(queue, "pause").name
        if self.eager:
            return False  # NOTE: eager tasks run inside their .delay(): there is no claim to stop
        return self.broker.pause(name)

    def resume(self, queue: QueueArg) -> bool:
        """Resume a paused queue: idle children are woken and claim from it at once. True when it was paused."""
        name = self.get_queue(queue, "resume").name
        if self.eager:
            return False
        return self.broker.resume(name)

    # ---- broker ---------------------------------------------------------------------------------------------

    @property
    def broker(self) -> Broker:
        """The producer connection, created on first use and again in a forked child."""
        pid = os.getpid()
        if self._broker is None or self._broker_pid != pid:
            if self._broker is not None:
                # WARN: never drop the parent's connection in a forked child: keep it alive, unused.
                self._stale_brokers.append(self._broker)
            from wakaq._wakaq import Broker

            timeout, connect = self.socket_timeout, self.socket_connect_timeout
            self._broker = Broker(
                self.url, self.key_prefix, timeout, connect, payload_format=self.payload_format, **self.tls_options
            )
            self._broker_pid = pid
        return self._broker

    def __repr__(self) -> str:
        return f"<WakaQ queues={[q.name for q in self.queues]} tasks={len(self.tasks)}>"


def _to_bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise WakaQError(f"{what} must be True or False, got {value!r}")
    return value


def _eval_concurrency(concurrency: int | str) -> int:
    """0 (the default, as in WakaQ) means one child per CPU core; otherwise an int or an expression >= 1."""
    if concurrency == 0 and not isinstance(concurrency, bool):
        return cpu_cores()
    value = eval_expr(concurrency)
    if value < 1:
        raise WakaQError(f"concurrency must be >= 1, got {concurrency!r} (= {value})")
    return value
