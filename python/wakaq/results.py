"""Task results (opt-in): a record per task id in Redis, written by the worker, read through a `TaskHandle`.

`@app.task(store_results=True)` (or `WakaQ(store_results=True)`) makes `.delay()` return a `TaskHandle`; the payload
meta carries `id` and `results` (the record's TTL in seconds). The worker child writes "running" when it starts the
task and "done" (with the msgpack-encoded return value) or "failed" (the exception's type name and message) before
the task is acked. Writes go through `lua/result_mark.lua`: once a final status is stored nothing overwrites it, so a
child that crashes after the write and before the ack is redelivered, runs again, and its second write is refused.

Keys (`wakaq.keys.Keys`): `<ns>:result:<id>` (hash: status, value, error_type, error, at) and `<ns>:result:<id>:ready`
(list: one token per final write; waiters rotate it with BLMOVE, so every waiter sees it). No record means "pending":
also for an unknown id or an expired record.

Other features call `mark` / `mark_meta` (a retries feature writes "retrying", a cancel feature "cancelled").
Producers and handles use a redis-py client (`client`); the worker child passes `via=Consumer.meta_script` and runs
the same scripts on its Rust connection.
"""

from __future__ import annotations

import os
import sys
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from wakaq.connection import describe_redis_error, redis_py_client
from wakaq.exceptions import BrokerError, TaskFailed

if TYPE_CHECKING:
    import redis

    from wakaq.keys import Keys

# NOTE: the statuses, in one place; `lua/result_mark.lua` spells FINAL out (a test checks they agree)
PENDING = "pending"
RUNNING = "running"
RETRYING = "retrying"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
STATUSES = (PENDING, RUNNING, RETRYING, DONE, FAILED, CANCELLED)
FINAL = frozenset({DONE, FAILED, CANCELLED})

#: longest single blocking wait of a waiter (seconds): bounds how long a cancelled `aresult` keeps its thread, and
#: stays under any sane socket timeout
WAIT_SLICE = 1.0


#: runs a script of python/wakaq/lua/ by name ("result_mark", "unique_release"): (name, keys, args) -> reply. The
#: worker child passes its Rust `Consumer.meta_script` (its own connection, no redis-py); anything else uses the app's
#: redis-py client.
ScriptRunner = Callable[[str, Sequence[str], Sequence[bytes]], int]


class ResultsHost(Protocol):
    """The app as results need it: its key layout and its connection settings (`WakaQ` satisfies it)."""

    url: str
    socket_timeout: float | None
    socket_connect_timeout: float | None
    health_check_interval: float | None
    tls_options: dict[str, Any]
    keys: Keys


class _Client:
    """An app's redis-py client for results, made on first use and again after a fork, with its scripts."""

    def __init__(self, app: ResultsHost) -> None:
        self.pid = os.getpid()
        self.redis: redis.Redis = redis_py_client(app)
        self.scripts = {
            name: self.redis.register_script(_lua(f"{name}.lua"))
            for name in ("result_mark", "unique_release", "unique_enqueue")
        }


_clients: weakref.WeakKeyDictionary[Any, _Client] = weakref.WeakKeyDictionary()


def client(app: ResultsHost) -> _Client:
    """The results client of `app` in this process (redis-py is loaded only here, on first use)."""
    found = _clients.get(app)
    if found is None or found.pid != os.getpid():
        found = _clients[app] = _Client(app)
    return found


def _run(app: ResultsHost, via: ScriptRunner | None, name: str, keys: list[str], args: list[Any]) -> Any:
    if via is not None:
        return via(name, keys, [a if isinstance(a, bytes) else str(a).encode() for a in args])
    with redis_errors(app):
        return client(app).scripts[name](keys=keys, args=args)


def _lua(name: str) -> str:
    from importlib import resources  # NOTE: here, not at the top: `import wakaq` stays free of it

    return resources.files("wakaq").joinpath(f"lua/{name}").read_text(encoding="utf8")


@contextmanager
def redis_errors(app: ResultsHost) -> Iterator[None]:
    """redis-py's errors as `BrokerError` (one line, as the Rust broker words them)."""
    try:
        yield
    except Exception as e:
        redis_module: Any = sys.modules.get("redis")
        if isinstance(e, OSError) or (redis_module is not None and isinstance(e, redis_module.RedisError)):
            raise BrokerError(describe_redis_error(e, app.url)) from e
        raise


# ---- writing ------------------------------------------------------------------------------------------------


def mark(
    app: ResultsHost,
    task_id: str,
    status: str,
    ttl: float,
    *,
    value: bytes | None = None,
    error: tuple[str, str] | None = None,
    unique: str | None = None,
    via: ScriptRunner | None = None,
) -> bool:
    """Write `status` for `task_id` (TTL `ttl` seconds); False when refused because a final status is stored.

    `value`: the packed return value (done); `error`: (type name, message) (failed, cancelled, retrying: the last
    attempt's error). `unique`: the task's lock key, released (if it still holds this task's id) on a final status,
    in the same script. `via`: see `ScriptRunner`. BrokerError when Redis is unreachable (the call is idempotent:
    send it again)."""
    if status not in STATUSES or status == PENDING:
        raise ValueError(f"cannot mark a task {status!r}; one of {', '.join(STATUSES[1:])}")
    keys = app.keys
    fields: list[Any] = ["at", repr(time.time())]
    if value is not None:
        fields += ["value", value]
    if error is not None:
        fields += ["error_type", error[0], "error", error[1]]
    names = [keys.result(task_id), keys.result_ready(task_id)]
    if unique:
        names.append(unique)
    args = [status, max(1, int(ttl * 1000)), "1" if status in FINAL else "0", task_id, *fields]
    return bool(_run(app, via, "result_mark", names, args))


def mark_meta(
    app: ResultsHost,
    meta: Mapping[str, Any] | None,
    status: str,
    value: bytes | None = None,
    error: tuple[str, str] | None = None,
    via: ScriptRunner | None = None,
) -> bool:
    """`mark` for a running task's payload meta: a no-op (False) unless the task stores results. A final status
    also releases the task's uniqueness lock (meta `unique`)."""
    if not meta or not meta.get("results"):
        return False
    return mark(app, meta["id"], status, meta["results"], value=value, error=error, unique=meta.get("unique"), via=via)


def release_unique(app: ResultsHost, lock: str, task_id: str, via: ScriptRunner | None = None) -> bool:
    """Delete the uniqueness lock `lock` if `task_id` still holds it (compare-and-delete)."""
    return bool(_run(app, via, "unique_release", [lock], [task_id]))


def finish_meta(
    app: ResultsHost,
    meta: Mapping[str, Any],
    status: str,
    value: bytes | None = None,
    error: tuple[str, str] | None = None,
    via: ScriptRunner | None = None,
) -> None:
    """The worker's final step for a task with meta, before its ack: write the result (and release the lock in the
    same script), or only release the lock of a unique task that stores no results."""
    if meta.get("results"):
        mark_meta(app, meta, status, value, error, via)
    elif lock := meta.get("unique"):
        release_unique(app, lock, meta["id"], via)


def reopen(app: ResultsHost, r: Any, payload: bytes) -> bool:
    """Before an operator requeues a failed task (`wakaq-failed requeue`): drop its result record, so the new run
    can write one (first writer wins would refuse it) and its handle reads "pending" again. `r`: a redis-py client
    of the app. True when the payload stores results. Its uniqueness lock is not taken again."""
    from wakaq._wakaq import decode_task_meta

    try:
        meta = decode_task_meta(payload)[4]
    except ValueError:
        return False
    if not meta or not meta.get("results") or not isinstance(meta.get("id"), str):
        return False
    r.delete(app.keys.result(meta["id"]), app.keys.result_ready(meta["id"]))
    return True


# ---- reading ------------------------------------------------------------------------------------------------


class TaskHandle:
    """A task sent with results on (or unique): its id, status and result. `app.result_handle(id)` rebuilds one."""

    def __init__(self, app: ResultsHost, task_id: str) -> None:
        self.app = app
        self.id = task_id

    def __repr__(self) -> str:
        return f"<TaskHandle {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskHandle) and other.id == self.id and other.app is self.app

    def __hash__(self) -> int:
        return hash(self.id)

    def record(self) -> dict[str, bytes]:
        """The raw record (field -> bytes); empty while pending or once expired."""
        with redis_errors(self.app):
            raw: dict[bytes, bytes] = client(self.app).redis.hgetall(self.app.keys.result(self.id))  # type: ignore[assignment]
        return {k.decode(): v for k, v in raw.items()}

    def status(self) -> str:
        """ "pending" (not started, or no record: unknown id, expired), "running", "retrying", "done", "failed",
        "cancelled"."""
        with redis_errors(self.app):
            raw: bytes | None = client(self.app).redis.hget(self.app.keys.result(self.id), "status")  # type: ignore[assignment]
        return PENDING if raw is None else raw.decode()

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the task to finish (at most `timeout` seconds; None: forever) and return its value. Raises
        TaskFailed when it failed or was cancelled, TimeoutError when it has not finished in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = self._final()
            if found is not None:
                return _outcome(self.id, found)
            left = WAIT_SLICE if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"task {self.id} has not finished after {timeout}s (status {self.status()!r})")
            self._wait(min(left, WAIT_SLICE))

    async def aresult(self, timeout: float | None = None) -> Any:
        """`result()` for async code: the blocking waits run in a thread, one slice (at most 1 s) at a time, so the
        event loop never blocks and a cancelled wait frees its thread within a second."""
        import asyncio  # NOTE: here, not at the top (as in EagerHandle): `import wakaq` stays free of asyncio

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = await asyncio.to_thread(self._final)
            if found is not None:
                return _outcome(self.id, found)
            left = WAIT_SLICE if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"task {self.id} has not finished after {timeout}s")
            await asyncio.to_thread(self._wait, min(left, WAIT_SLICE))

    def _final(self) -> dict[str, bytes] | None:
        found = self.record()
        status = found.get("status", b"").decode()
        return found if status in FINAL else None

    def _wait(self, seconds: float) -> None:
        """Block until a final write's token (or `seconds`). NOTE: BLMOVE from the list to itself rotates the token
        instead of taking it: every waiter wakes, and the list keeps its TTL (it never becomes empty)."""
        ready = self.app.keys.result_ready(self.id)
        if self.app.socket_timeout:
            seconds = min(seconds, self.app.socket_timeout / 2)  # NOTE: a block past it would read as a timeout
        with redis_errors(self.app):
            # NOTE: Redis takes a float timeout (6.0+); redis-py's annotation says int
            client(self.app).redis.blmove(ready, ready, max(0.01, seconds), "LEFT", "RIGHT")  # type: ignore[arg-type]


def _outcome(task_id: str, record: dict[str, bytes]) -> Any:
    from wakaq._wakaq import unpackb

    status = record["status"].decode()
    if status == DONE:
        return unpackb(record["value"]) if "value" in record else None
    error_type = record.get("error_type", status.encode()).decode()
    raise TaskFailed(task_id, error_type, record.get("error", b"").decode(), status)


def _is_future(value: Any) -> bool:
    """An asyncio future (an eager async task scheduled on a running loop). NOTE: no asyncio import for it: a
    process that never loaded asyncio has no futures."""
    aio = sys.modules.get("asyncio")
    return aio is not None and isinstance(value, aio.Future)


class EagerHandle:
    """What `.delay()` of a results task returns in eager mode: it ran already, so the result is here (a failed task
    raised at `.delay()`, as every eager task does). Inside a running event loop an async task was only scheduled
    (as eager `.delay()` does): `await handle.aresult()` gives its value or raises its exception."""

    def __init__(self, task_id: str, value: Any = None) -> None:
        self.id = task_id
        self._value = value

    def __repr__(self) -> str:
        return f"<EagerHandle {self.id} {self.status()}>"

    def status(self) -> str:
        if _is_future(self._value):
            if not self._value.done():
                return RUNNING
            return FAILED if self._value.exception() is not None else DONE
        return DONE

    def result(self, timeout: float | None = None) -> Any:
        value = self._value
        if _is_future(value):
            if not value.done():
                raise TimeoutError(f"task {self.id} is still running in this event loop: await handle.aresult()")
            return value.result()  # NOTE: raises the task's own exception, as the eager `.delay()` of a sync one
        return value

    async def aresult(self, timeout: float | None = None) -> Any:
        if _is_future(self._value):
            import asyncio

            await asyncio.wait([self._value], timeout=timeout)
        return self.result(timeout)
