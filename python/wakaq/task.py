"""`Task`: a registered function plus `.delay()` / `.broadcast()` to run it on a worker.

Made by `@app.task`; calling the Task calls the function directly, in this process. `delay` is typed from the
function with ParamSpec: a call without `queue=`/`eta=` is checked against the function's signature. (PEP 612 allows
no extra keyword parameters next to `P.kwargs`, so calls that pass `queue=` or `eta=` match a looser overload.)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, ParamSpec, TypeVar, overload

from wakaq import tracing
from wakaq.aio import off_loop, settled
from wakaq.conclimit import ConcurrencyLimit
from wakaq.config import TimeoutValue, to_max_retries, to_seconds, to_timeout
from wakaq.durable import DurableArg, replicas_of
from wakaq.eager import run_eager, stored_value
from wakaq.exceptions import WakaQError
from wakaq.formats import JSON, check_unique_key, needs_msgpack
from wakaq.ids import new_id
from wakaq.queue import Queue, check_timeout_order
from wakaq.ratelimit import Rate
from wakaq.results import EagerHandle, TaskHandle
from wakaq.retries import RetryOptions
from wakaq.unique import DEFAULT_UNIQUE_FOR, default_key
from wakaq.unique import enqueue as enqueue_unique
from wakaq.workflow import Signature

if TYPE_CHECKING:
    from wakaq.protocols import TaskHost

P = ParamSpec("P")
R = TypeVar("R")

EtaValue = timedelta | datetime | int | float
QueueArg = str | Queue


class Task(Generic[P, R]):
    """A task function registered on a WakaQ app."""

    name: str
    fn: Callable[P, R]
    app: TaskHost
    queue: Queue | None
    max_retries: int | None
    soft_timeout: timedelta | None
    hard_timeout: timedelta | None
    is_async: bool
    #: a global limit on its starts (`@app.task(rate_limit=...)`, wakaq.ratelimit); None: unlimited
    rate_limit: Rate | None = None
    #: `@app.task(retry_on=..., retry_backoff=...)` (wakaq.retries); None: the app's retry settings
    retry_options: RetryOptions | None = None
    #: results (wakaq.results): the record's TTL in seconds when this task stores results, else None
    result_ttl: float | None = None
    #: uniqueness (wakaq.unique): the lock's TTL in seconds, else None
    unique_for: float | None = None
    #: per-key concurrency (`@app.task(concurrency_key=..., concurrency_limit=...)`, wakaq.conclimit); None: off
    concurrency: ConcurrencyLimit | None = None
    #: results, uniqueness or a per-key concurrency limit is on: `.delay()` takes the tracked path (the first two
    #: return a handle)
    tracked: bool = False

    def __init__(
        self,
        fn: Callable[P, R],
        app: TaskHost,
        queue: QueueArg | None = None,
        max_retries: int | None = None,
        soft_timeout: TimeoutValue = None,
        hard_timeout: TimeoutValue = None,
    ) -> None:
        if not callable(fn):
            raise WakaQError(f"@task needs a function, got {fn!r}")
        self.name = fn.__name__
        self.fn = fn
        self.app = app
        self.queue = None if queue is None else app.get_queue(queue, f"task {self.name!r}")
        self.max_retries = to_max_retries(max_retries, f"max_retries of task {self.name!r}")
        self.soft_timeout = to_timeout(soft_timeout, f"soft_timeout of task {self.name!r}")
        self.hard_timeout = to_timeout(hard_timeout, f"hard_timeout of task {self.name!r}")
        self.is_async = inspect.iscoroutinefunction(fn)
        check_timeout_order(self.soft_timeout, self.hard_timeout, f"task {self.name!r}")
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    @property
    def wakaq(self) -> TaskHost:
        """The app (WakaQ's attribute name)."""
        return self.app

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.name}>"

    @overload
    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Any: ...
    @overload
    def delay(self, *args: Any, queue: QueueArg | None, eta: EtaValue | None = None, **kwargs: Any) -> Any: ...
    @overload
    def delay(self, *args: Any, eta: EtaValue | None, **kwargs: Any) -> Any: ...
    def delay(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task on a worker: `queue=` overrides its queue, `eta=` delays it (timedelta, datetime, seconds).
        Every other keyword is the task's own (WakaQ reserves only these two); other options: `delay_with_options`.

        Returns None; in eager mode it runs inline and returns what the task returned (see `wakaq.testing`). A task
        that stores results or is unique (`unique_for`) returns a `TaskHandle` instead (None for a duplicate of a
        unique task without results, see `_delay_tracked`).
        """
        queue = self.app.get_queue(kwargs.pop("queue", None) or self.queue or self.app.default_queue, "delay")
        eta = kwargs.pop("eta", None)
        due = None if eta is None else due_time(eta)
        # NOTE: tracing off costs one check here (wakaq.tracing)
        if tracing.active() and self.app.tracing != "off" and self.app.payload_format != "json" and not self.app.eager:
            return self._delay_traced(queue, args, kwargs, due, None, self.app.durable_replicas)
        # NOTE: a plain task pays one attribute test for results and uniqueness
        if self.tracked:
            return self._delay_tracked(queue, args, kwargs, due, None, self.app.durable_replicas)
        if self.app.eager:
            return run_eager(self, args, kwargs, queue)
        # NOTE: durable enqueue off costs one attribute test here: the calls below are the ones without it.
        if self.app.durable_replicas:
            self._push_durably(queue, args, kwargs, due, self.app.durable_replicas)
        elif due is None:
            self.app.broker.push(queue.name, self.name, args, kwargs)
        else:
            self.app.broker.push_eta(queue.name, self.name, args, kwargs, due.seconds, relative=due.relative)
        return None

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A frozen call of this task, a workflow step (`wakaq.chain`, `wakaq.group`); in a chain it gets the
        previous step's result as its first argument, before these."""
        return Signature(self, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """`s()` that ignores the previous step's result (immutable)."""
        return Signature(self, args, kwargs, immutable=True)

    def delay_with_options(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        queue: QueueArg | None = None,
        eta: EtaValue | None = None,
        durable: DurableArg = None,
        unique_key: str | None = None,
        debounce: float | timedelta | None = None,
    ) -> Any:
        """`.delay()` with the options apart from the task's own arguments, so none can collide with them:
        `durable` = None (the app's `durable_enqueue`), False, True (1 replica) or a number of replicas (raises
        `DurabilityError` when fewer confirm within `durable_timeout`); `unique_key`: a lock key of your own, so a
        second enqueue with the same key while the first task is pending or running is a no-op (any task; the lock
        TTL is the task's `unique_for`, else 1 hour), see `_delay_tracked`. `debounce`: seconds (or a timedelta) of
        a debounce window keyed by `unique_key` (default: the task's name), see `_delay_debounced`."""
        target = self.app.get_queue(queue or self.queue or self.app.default_queue, "delay_with_options")
        args, kwargs = tuple(args), dict(kwargs or {})
        if debounce is not None:
            return self._delay_debounced(target, args, kwargs, unique_key, debounce, eta, durable)
        due = None if eta is None else due_time(eta)
        replicas = replicas_of(durable, self.app.durable_replicas)
        check_unique_key(self.app, unique_key)
        if tracing.active() and self.app.tracing != "off" and self.app.payload_format != "json" and not self.app.eager:
            return self._delay_traced(target, args, kwargs, due, unique_key, replicas)
        if self.tracked or unique_key is not None:
            return self._delay_tracked(target, args, kwargs, due, unique_key, replicas)
        if self.app.eager:
            return run_eager(self, args, kwargs, target)
        self._push(target, args, kwargs, due, replicas)
        return None

    def _push(self, queue: Queue, args: Any, kwargs: Any, due: Due | None, replicas: int, meta: Any = None) -> None:
        """Push now or at `due`, durably when `replicas` (every path but plain `.delay()`, which inlines this)."""
        if replicas:
            self._push_durably(queue, args, kwargs, due, replicas, meta)
        elif due is None:
            self.app.broker.push(queue.name, self.name, args, kwargs, 0, meta)
        else:
            self.app.broker.push_eta(queue.name, self.name, args, kwargs, due.seconds, meta, relative=due.relative)

    def _push_durably(
        self, queue: Queue, args: Any, kwargs: Any, due: Due | None, replicas: int, meta: Any = None
    ) -> None:
        wait = self.app.durable_timeout
        broker = self.app.broker
        if due is None:
            broker.push(queue.name, self.name, args, kwargs, 0, meta, replicas=replicas, replica_timeout=wait)
        else:
            broker.push_eta(
                queue.name,
                self.name,
                args,
                kwargs,
                due.seconds,
                meta,
                replicas=replicas,
                replica_timeout=wait,
                relative=due.relative,
            )

    def _delay_tracked(
        self,
        queue: Queue,
        args: Any,
        kwargs: Any,
        due: Due | None,
        unique_key: str | None,
        replicas: int,
        headers: dict[str, str] | None = None,
    ) -> TaskHandle | EagerHandle | None:
        """`.delay()` with results and/or uniqueness: the payload carries meta `id` (and `results`, `unique`).

        Returns the new task's handle; for a duplicate of a unique task (its key is held by a pending or running
        task), the holder's handle when results are stored, else None. Eager mode runs the task at once and returns
        an `EagerHandle` (uniqueness is not checked there). A task with only a per-key concurrency limit carries its
        key (meta `ck`) and returns None, as a plain task does."""
        conc = self.concurrency
        if conc is not None and self.result_ttl is None and self.unique_for is None and unique_key is None:
            self._delay_keyed(conc, queue, args, kwargs, due, replicas, headers)
            return None
        task_id = new_id()
        if self.app.eager:
            return _eager_handle(task_id, self, args, kwargs, queue)
        meta: dict[str, Any] = {"id": task_id}
        if conc is not None:
            meta = conc.meta(args, kwargs, meta) or meta
        if headers:
            meta["headers"] = headers
        ttl = self.result_ttl
        if ttl:
            meta["results"] = int(ttl)
        lock_for = self.unique_for if unique_key is None else (self.unique_for or DEFAULT_UNIQUE_FOR)
        if lock_for is None:
            self._push(queue, args, kwargs, due, replicas, meta)
            return TaskHandle(self.app, task_id)
        keys = self.app.keys
        meta["unique"] = keys.unique(unique_key if unique_key is not None else default_key(self.name, args, kwargs))
        # NOTE: an eta task holds its lock while it waits too (the script adds the wait, on Redis's clock)
        delay, at = (None, None) if due is None else (due.seconds, None) if due.relative else (None, due.seconds)
        holder = enqueue_unique(self.app, queue.name, self.name, args, kwargs, meta, lock_for, delay, at)
        if holder is None:
            return TaskHandle(self.app, task_id)
        return TaskHandle(self.app, holder) if ttl else None

    def _delay_debounced(
        self,
        queue: Queue,
        args: Any,
        kwargs: Any,
        unique_key: str | None,
        debounce: float | timedelta,
        eta: EtaValue | None,
        durable: DurableArg,
    ) -> TaskHandle | EagerHandle:
        """A debounced call: the first call under `unique_key` (default: the task's name) opens a window of
        `debounce` seconds on Redis's clock; calls within it replace the pending call's arguments; the task runs once,
        with the last call's arguments, when the window closes (enqueue_debounce.lua). A call after the window closed
        (or after its task was promoted or cancelled) opens a new one. No uniqueness lock is taken: the debounce key
        replaces it, so a new window may run while the last one's task still runs.

        Returns the call's handle. A replaced call never runs: with results on its record reads "cancelled"
        (`TaskFailed` with error_type "Debounced"). Eager mode runs every call at once (there is no window)."""
        window = to_seconds(debounce, f"debounce of task {self.name!r}", allow_none=False) or 0.0
        if eta is not None:
            raise WakaQError("debounce sets when the task runs (the window's end): pass eta or debounce, not both")
        if durable:
            raise WakaQError("durable enqueue does not cover debounced calls (as it does not cover unique ones)")
        if self.app.payload_format == JSON:
            raise needs_msgpack("debounce")
        task_id = new_id()
        if self.app.eager:
            return _eager_handle(task_id, self, args, kwargs, queue)
        meta: dict[str, Any] = {"id": task_id}
        if self.result_ttl:
            meta["results"] = int(self.result_ttl)
        key = unique_key if unique_key is not None else self.name
        self.app.broker.push_debounced(queue.name, self.name, args, kwargs, meta, key, window)
        return TaskHandle(self.app, task_id)

    def _delay_keyed(
        self,
        conc: ConcurrencyLimit,
        queue: Queue,
        args: Any,
        kwargs: Any,
        due: Due | None,
        replicas: int,
        headers: dict[str, str] | None,
    ) -> None:
        """`.delay()` of a task whose only option is a per-key concurrency limit: its key in meta `ck` (checked in
        eager mode too, which runs the task inline without a limit)."""
        meta = conc.meta(args, kwargs, {"headers": headers} if headers else None)
        if self.app.eager:
            run_eager(self, args, kwargs, queue)
        else:
            self._push(queue, args, kwargs, due, replicas, meta)

    def delay_many(
        self,
        calls: Iterable[tuple[Sequence[Any], Mapping[str, Any]]],
        queue: QueueArg | None = None,
        durable: DurableArg = None,
    ) -> int:
        """Enqueue many calls `[(args, kwargs), ...]` in one round trip; returns how many were sent. `durable`: as
        for `delay_with_options` (one WAIT after the batch)."""
        target = self.app.get_queue(queue or self.queue or self.app.default_queue, "delay_many").name
        items = [(target, self.name, args, kwargs) for args, kwargs in calls]
        if self.app.eager:
            return len(self._run_eager_many(items))
        if not items:
            return 0
        replicas = replicas_of(durable, self.app.durable_replicas)
        if tracing.active() and self.app.tracing != "off" and self.app.payload_format != "json":
            return self._delay_many_traced(items, replicas)
        sent: Sequence[Any] = items
        if self.concurrency is not None:
            conc = self.concurrency
            sent = [(q, name, args, kwargs, conc.meta(args, kwargs)) for q, name, args, kwargs in items]
        if replicas:
            return self.app.broker.push_many(sent, replicas=replicas, replica_timeout=self.app.durable_timeout)
        return self.app.broker.push_many(sent)

    def broadcast(self, *args: P.args, **kwargs: P.kwargs) -> int:
        """Run the task once on every worker daemon; returns how many daemons received it."""
        if self.app.eager:
            run_eager(self, args, kwargs)
            return 1
        return self.app.broker.broadcast(self.name, args, kwargs)

    def _run_eager_many(self, items: list[tuple[str, str, Any, Any]]) -> list[Any]:
        """Eager `delay_many`: each call run inline; what each returned (an async task's future inside a loop)."""
        return [run_eager(self, args, kwargs, self.app.get_queue(q, "delay_many")) for q, _, args, kwargs in items]

    # ---- tracing on (wakaq.tracing): the push inside a producer span, its trace context in meta `headers` ----

    def _delay_traced(
        self, queue: Queue, args: Any, kwargs: Any, due: Due | None, unique_key: str | None, replicas: int
    ) -> Any:
        """`.delay()` / `delay_with_options` while a tracer is on (not eager)."""
        with tracing.sending(queue.name, self.name) as send:
            if self.tracked or unique_key is not None:
                handle = self._delay_tracked(queue, args, kwargs, due, unique_key, replicas, send.headers)
                send.message_id = handle.id if handle is not None else None
                return handle
            meta = {"headers": send.headers} if send.headers else None
            self._push(queue, args, kwargs, due, replicas, meta)
        return None

    def _delay_many_traced(self, items: list[tuple[str, str, Any, Any]], replicas: int) -> int:
        """`delay_many` while a tracer is on: one producer span for the batch, its context in every task's meta."""
        with tracing.sending(items[0][0], self.name, len(items)) as send:
            meta = {"headers": send.headers} if send.headers else None
            conc = self.concurrency
            traced = [
                (queue, name, args, kwargs, meta if conc is None else conc.meta(args, kwargs, meta))
                for queue, name, args, kwargs in items
            ]
            if replicas:
                return self.app.broker.push_many(traced, replicas=replicas, replica_timeout=self.app.durable_timeout)
            return self.app.broker.push_many(traced)

    # ---- async producer (wakaq.aio): the same calls, awaited; the event loop runs on during the round trip ----

    @overload
    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> Any: ...
    @overload
    async def adelay(self, *args: Any, queue: QueueArg | None, eta: EtaValue | None = None, **kwargs: Any) -> Any: ...
    @overload
    async def adelay(self, *args: Any, eta: EtaValue | None, **kwargs: Any) -> Any: ...
    async def adelay(self, *args: Any, **kwargs: Any) -> Any:
        """`.delay()` for async code: same arguments, same return value (None, or a handle). Redis errors are raised
        here. The arguments are encoded in the pool's thread: do not change them before this returns.

        WARN: a cancelled caller may still have enqueued the task (see wakaq.aio). In eager mode the task runs now,
        on this loop; an async task is awaited, so the value (or the exception) is the task's own."""
        if self.app.eager:
            return await settled(self.delay(*args, **kwargs))
        slow_path = self.tracked or self.app.durable_replicas or kwargs.get("eta") is not None or tracing.active()
        from wakaq import coalesce  # NOTE: here: `import wakaq` does not load the async producer's pool

        if slow_path or not coalesce.ENABLED:
            return await off_loop(self.delay, *args, **kwargs)
        # NOTE: a plain task goes with the loop's next batch (wakaq.coalesce); its queue is checked here, at once
        queue = self.app.get_queue(kwargs.pop("queue", None) or self.queue or self.app.default_queue, "adelay")
        kwargs.pop("eta", None)
        await coalesce.push(
            self.app, queue.name, self.name, args, kwargs, functools.partial(self.delay, *args, **kwargs, queue=queue)
        )
        return None

    async def adelay_with_options(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        queue: QueueArg | None = None,
        eta: EtaValue | None = None,
        durable: DurableArg = None,
        unique_key: str | None = None,
        debounce: float | timedelta | None = None,
    ) -> Any:
        """`delay_with_options` for async code (as `adelay`)."""
        send = functools.partial(
            self.delay_with_options,
            args,
            kwargs,
            queue=queue,
            eta=eta,
            durable=durable,
            unique_key=unique_key,
            debounce=debounce,
        )
        return await settled(send()) if self.app.eager else await off_loop(send)

    async def adelay_many(
        self,
        calls: Iterable[tuple[Sequence[Any], Mapping[str, Any]]],
        queue: QueueArg | None = None,
        durable: DurableArg = None,
    ) -> int:
        """`delay_many` for async code (as `adelay`; `calls` is read in the pool's thread, so a generator runs
        there). Eager: every call runs, async ones are awaited in order."""
        if not self.app.eager:
            return await off_loop(self.delay_many, calls, queue, durable)
        target = self.app.get_queue(queue or self.queue or self.app.default_queue, "adelay_many").name
        ran = self._run_eager_many([(target, self.name, args, kwargs) for args, kwargs in calls])
        for value in ran:
            await settled(value)
        return len(ran)

    async def abroadcast(self, *args: P.args, **kwargs: P.kwargs) -> int:
        """`broadcast` for async code (as `adelay`): how many worker daemons received it."""
        if self.app.eager:
            await settled(run_eager(self, args, kwargs))
            return 1
        return await off_loop(self.broadcast, *args, **kwargs)


def _eager_handle(task_id: str, task: Task[Any, Any], args: Any, kwargs: Any, queue: Queue) -> EagerHandle:
    """Eager `.delay()` of a task with results or uniqueness: it runs now with `current_task.id` set, its exception
    propagates (as any eager task's) and a stored value is what the codec gives back (`eager.stored_value`)."""
    returned = stored_value if task.result_ttl else None
    return EagerHandle(task_id, run_eager(task, args, kwargs, queue, task_id, returned))


class Due(NamedTuple):
    """When an eta task is due: `seconds` from now on Redis's clock (`relative`, for a timedelta or a number), or at
    the unix time `seconds` (a datetime stays absolute)."""

    seconds: float
    relative: bool


def due_time(eta: object) -> Due:
    """When an eta task becomes due. Naive datetimes are UTC, as on the worker.

    NOTE: a relative eta is sent as such and added to Redis's clock by the script, so a producer whose clock is off
    does not move it (one clock for every host)."""
    if isinstance(eta, timedelta):
        return Due(eta.total_seconds(), True)
    if isinstance(eta, datetime):
        aware = eta if eta.tzinfo is not None else eta.replace(tzinfo=timezone.utc)
        return Due(aware.timestamp(), False)
    if isinstance(eta, int | float) and not isinstance(eta, bool):
        return Due(float(eta), True)
    raise WakaQError(f"unknown eta type {type(eta).__name__} ({eta!r}): use a timedelta, datetime or seconds")
