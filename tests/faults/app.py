"""The app of the fault-injection suite, for worker daemons (`--app tests.faults.app.wakaq`) and producers.

Every task run is recorded in Redis idempotently and countably: `HSET <key> <id>:<pid>:<token> 1`, one fresh
token per run, retried (same token) while Redis is away. So a retried write never counts twice, the number of
fields of one id is the number of times it ran, and the pid says which child ran it (the driver allows a second
run of a task only where the first was in a child that died). Options come from WAKAQ_TEST_* variables, as in
`tests/apps/worker_app.py`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import secrets
import signal
import sys
import time
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterError

from wakaq import CronTask, WakaQ
from wakaq.config import cluster_nodes, is_cluster_url

env = os.environ.get

#: the queues of the suite, highest priority first
QUEUES = ["faults", "spare"]
#: how long a task keeps retrying its own bookkeeping write while Redis is away
WRITE_PATIENCE = 60.0


def _num(name: str, default: float | None = None) -> float | None:
    value = env(f"WAKAQ_TEST_{name}")
    return float(value) if value else default


def build(url: str, **options: Any) -> WakaQ:
    """A WakaQ app with the suite's tasks; workers and producers build the same one (same task names)."""
    cron = env("WAKAQ_TEST_CRON")
    app = WakaQ(
        url=url,
        queues=QUEUES,
        schedules=[CronTask(cron, "tick")] if cron else [],
        **options,
    )
    # NOTE: WAKAQ_TEST_RECORD_URL lets tasks record their runs through another way into the same Redis (the
    # network-namespace scenarios: a Unix socket the partition does not cut, like a database still reachable).
    client = _Client(env("WAKAQ_TEST_RECORD_URL") or url)

    @app.task
    def work(i: int, ms: float = 0.0) -> None:
        """A short task: optionally sleeps `ms` milliseconds, then records its run."""
        if ms:
            time.sleep(ms / 1000)
        client.mark("runs", i)

    @app.task
    def hold(i: int, seconds: float) -> None:
        """A longer task: records its start, sleeps, records its run (the memory-pressure scenario)."""
        client.mark("started", i)
        time.sleep(seconds)
        client.mark("runs", i)

    @app.task
    def poison(i: int) -> None:
        """Kills its own process every time it runs (a poison pill)."""
        client.mark("poison", i)
        os.kill(os.getpid(), signal.SIGKILL)

    @app.task
    def exit0(i: int) -> None:
        """Ends its own process with status 0 mid-task (`os._exit(0)`: a poison pill that looks clean)."""
        client.mark("poison", i)
        os._exit(0)

    @app.task(soft_timeout=300)
    async def awork(i: int) -> None:
        """An async task with a long soft timeout that finishes at once (the child-memory scenario)."""
        await asyncio.sleep(0)
        client.mark("runs", i)

    @app.task(soft_timeout=1, hard_timeout=20, max_retries=1)
    def soft_sync(i: int) -> None:
        """A short sync task; the suite's async wrapper (WAKAQ_TEST_ASYNC_WRAPPER) pauses 3 s before this one runs,
        so its soft timeout fires while the event loop waits or runs another task."""
        client.mark("runs", i)

    @app.task(soft_timeout=1, hard_timeout=20, max_retries=1)
    def soft_body(i: int) -> None:
        """A sync task whose own body outlasts its soft timeout (under the async wrapper: inside its loop task)."""
        time.sleep(3.0)
        client.mark("runs", i)

    @app.task
    async def aspin(i: int, seconds: float) -> None:
        """An async task that keeps the CPU busy, yielding to the event loop every millisecond."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            spin = time.monotonic() + 0.001
            while time.monotonic() < spin:
                pass
            await asyncio.sleep(0)
        client.mark("runs", i)

    @app.task
    def chatter(i: int, seconds: float) -> None:
        """Writes a line to stderr (relayed into the log by the parent loop) every 50 ms, without Redis."""
        for k in range(int(seconds * 20)):
            print(f"chatter {i} {k}", file=sys.stderr, flush=True)
            time.sleep(0.05)
        client.mark("runs", i)

    if env("WAKAQ_TEST_ASYNC_WRAPPER"):

        @app.wrap_tasks_with
        async def pause_sync_tasks(fn: Any, args: Any, kwargs: Any) -> Any:
            if inspect.iscoroutinefunction(fn):
                return await fn(*args, **kwargs)
            if fn.__name__ == "soft_sync":
                await asyncio.sleep(3.0)
            return fn(*args, **kwargs)

    @app.task
    def wstep(i: int, ms: float = 0.0) -> int:
        """A workflow member: sleeps `ms`, records its run, returns its id (tests/faults/test_workflow_kills.py)."""
        time.sleep(ms / 1000)
        client.mark("runs", i)
        return i

    @app.task
    def wcallback(results: list[int]) -> int:
        """A group's callback: records each run with what it got (`wf-callback`: pid -> the results)."""
        client.get().hset("wf-callback", f"{os.getpid()}:{secrets.token_hex(4)}", json.dumps(results))
        return len(results)

    @app.task
    def tick() -> None:
        """Fired by the scheduler every second in the Redis-restart scenario."""
        client.mark("ticks", int(time.time()))

    del work, hold, poison, exit0, awork, soft_sync, soft_body, aspin, chatter, wstep, wcallback, tick
    return app


class _Client:
    """A redis-py client per process (children are forked: never share the parent's sockets)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._pid = 0
        self._client: redis.Redis | None = None

    def get(self) -> redis.Redis:
        if self._client is None or self._pid != os.getpid():
            if is_cluster_url(self.url):
                nodes = [ClusterNode(h, p) for h, p in cluster_nodes(self.url)]
                self._client = RedisCluster(startup_nodes=nodes, socket_timeout=2, socket_connect_timeout=2)  # type: ignore[assignment]
            else:
                self._client = redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
            self._pid = os.getpid()
        assert self._client is not None
        return self._client

    def mark(self, key: str, i: int) -> None:
        field = f"{i}:{os.getpid()}:{secrets.token_hex(4)}"
        deadline = time.monotonic() + WRITE_PATIENCE
        while True:
            try:
                self.get().hset(key, field, 1)
                return
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, ClusterError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


wakaq = build(
    env("WAKAQ_TEST_URL", "redis://127.0.0.1:1/0"),
    concurrency=int(_num("CONCURRENCY", 1) or 1),
    wait_timeout=_num("WAIT", 0.5) or 0.5,
    heartbeat_timeout=_num("HEARTBEAT", 15.0) or 15.0,
    socket_timeout=_num("SOCKET_TIMEOUT", 2.0),
    socket_connect_timeout=_num("SOCKET_TIMEOUT", 2.0),
    max_mem_percent=_num("MAX_MEM"),
    worker_log_file=env("WAKAQ_TEST_LOG") or None,
    scheduler_log_file=env("WAKAQ_TEST_LOG") or None,
    worker_log_level=env("WAKAQ_TEST_LOG_LEVEL", "INFO"),
    scheduler_log_level=env("WAKAQ_TEST_LOG_LEVEL", "INFO"),
)
