"""Task results (opt-in): a record per task id in Redis, written by the worker, read through a `TaskHandle`.

`@app.task(store_results=True)` (or `WakaQ(store_results=True)`) makes `.delay()` return a `TaskHandle`; the payload
meta carries `id` and `results` (the record's TTL in seconds). Records are written only by the Rust broker's scripts,
in the script that moves the task (lib.lua `settle`): "running" when a child starts it (start.lua), "retrying" with
the retry, "done" (with the msgpack-encoded return value) or "failed"/"cancelled" (the error's type name and message)
with the ack, the failure record, the dead-listing or the admin's cancel. Once a final status is stored nothing
overwrites it, so a child that crashes after its write and before its ack is redelivered, runs again, and its second
write is refused.

Keys (`wakaq.keys.Keys`): `<ns>:result:<id>` (hash: status, value, error_type, error, at) and `<ns>:result:<id>:ready`
(list: one token per final write; waiters rotate it with BLMOVE, so every waiter sees it). No record means "pending":
also for an unknown id or an expired record. This module only reads (a redis-py client, `client`).
"""

from __future__ import annotations

import os
import sys
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from wakaq.connection import describe_redis_error, redis_py_client
from wakaq.exceptions import BrokerError, TaskFailed

if TYPE_CHECKING:
    import redis

    from wakaq.keys import Keys

# NOTE: the statuses, in one place; lib.lua's `settle` spells FINAL out (a test checks they agree)
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


class ResultsHost(Protocol):
    """The app as results need it: its key layout and its connection settings (`WakaQ` satisfies it)."""

    url: str
    socket_timeout: float | None
    socket_connect_timeout: float | None
    health_check_interval: float | None
    tls_options: dict[str, Any]
    keys: Keys


class _Client:
    """An app's redis-py client for reading results, made on first use and again after a fork."""

    def __init__(self, app: ResultsHost) -> None:
        self.pid = os.getpid()
        self.redis: redis.Redis = redis_py_client(app)


_clients: weakref.WeakKeyDictionary[Any, _Client] = weakref.WeakKeyDictionary()


def client(app: ResultsHost) -> _Client:
    """The results client of `app` in this process (redis-py is loaded only here, on first use)."""
    found = _clients.get(app)
    if found is None or found.pid != os.getpid():
        found = _clients[app] = _Client(app)
    return found


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

    def progress(self) -> dict[str, Any] | None:
        """The task's last `current_task.set_progress` report: {"done", "total", "info", "at"} ("at": unix time on
        Redis's clock), or None before its first report and once it expired (with its result record, else a day)."""
        with redis_errors(self.app):
            raw: dict[bytes, bytes] = client(self.app).redis.hgetall(self.app.keys.progress(self.id))  # type: ignore[assignment]
        return read_progress(raw)

    async def aprogress(self) -> dict[str, Any] | None:
        """`progress()` for async code (the read runs in a thread)."""
        import asyncio

        return await asyncio.to_thread(self.progress)

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


def read_progress(raw: dict[bytes, bytes]) -> dict[str, Any] | None:
    """A progress hash (field `v`: msgpack {done, total, info}; `at`) as a dict; None when empty or unreadable."""
    from wakaq._wakaq import unpackb

    try:
        value = unpackb(raw[b"v"])
        at = float(raw[b"at"])
    except (KeyError, ValueError):
        return None
    if not isinstance(value, dict):
        return None
    return {"done": value.get("done"), "total": value.get("total"), "info": value.get("info") or {}, "at": at}


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

    def progress(self) -> dict[str, Any] | None:
        """None: an eager task ran inline, nothing recorded its progress."""
        return None

    async def aprogress(self) -> dict[str, Any] | None:
        return None

    async def aresult(self, timeout: float | None = None) -> Any:
        if _is_future(self._value):
            import asyncio

            await asyncio.wait([self._value], timeout=timeout)
        return self.result(timeout)
