"""The app of the fault campaign (`--app tests.campaign.app.wakaq`), for its worker daemons and its producer.

Every task takes a unique integer id `tid` as its first argument. A run that reaches the end of a task body records
itself with `HSET campaign:runs <tid>:<pid>:<token> <returned value>` (one fresh token per run, the write retried with
the same token while Redis is away: a retried write never counts twice), so the fields of one tid count its runs and
their values are what the task returned. Attempts that raise are recorded in `campaign:attempts` the same way.
The campaign's own keys start with `campaign:`, outside the app's namespace; the oracle ignores them.

Rate limits come from WAKAQ_CAMPAIGN_QUEUE_RATE / WAKAQ_CAMPAIGN_TASK_RATE ("" = none), so a daemon can be started
without them (a deploy that removed a limit). Other options from WAKAQ_TEST_* variables, as `tests.workers.Worker`
sets them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from typing import Any

import redis

from wakaq import Queue, WakaQ, current_task

env = os.environ.get

RUNS = "campaign:runs"
ATTEMPTS = "campaign:attempts"
#: `<tid>.<attempt>:<pid>:<token>` -> Redis's clock (s) when a flaky attempt (attempt 1, 2, ...) or an eta task
#: (attempt 0) started
TIMES = "campaign:times"
#: flaky's backoff (no jitter, so each gap has a floor the oracle can check)
BACKOFF = 0.2
BACKOFF_MAX = 1.0
#: queues, highest priority first; "limited" carries the queue rate limit. WARN: the lowest queue is the default
#: one (WakaQ's rule): a limited queue there would take every task without a queue of its own and back up
QUEUES = ["high", "limited", "default"]
#: how long a task keeps retrying its own bookkeeping write while Redis is away
WRITE_PATIENCE = 60.0
#: low enough that the generator's bursts of 3 exceed the burst allowance (tasks park, queues starve), high enough
#: that the average load (about 3.3/s at most) drains
QUEUE_RATE = "10/s"
TASK_RATE = "5/s"
BURST = 3
RESULT_TTL = 3600


class Flaky(Exception):
    """What `flaky` raises on its first attempts (it is in the task's `retry_on`)."""


class Recorder:
    """A redis-py client per process (children are forked: never share the parent's sockets)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._pid = 0
        self._client: redis.Redis | None = None

    def get(self) -> redis.Redis:
        if self._client is None or self._pid != os.getpid():
            self._client = redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
            self._pid = os.getpid()
        return self._client

    def mark(self, key: str, tid: int | str, value: str | None = None) -> None:
        """HSET `key` `<tid>:<pid>:<token>` `value` (None: Redis's clock now, in seconds)."""
        field = f"{tid}:{os.getpid()}:{secrets.token_hex(4)}"
        deadline = time.monotonic() + WRITE_PATIENCE
        while True:
            try:
                if value is None:
                    sec, usec = self.get().time()
                    value = f"{sec + usec / 1e6:.6f}"
                self.get().hset(key, field, value)
                return
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def build(url: str, queue_rate: str | None = QUEUE_RATE, task_rate: str | None = TASK_RATE, **options: Any) -> WakaQ:
    """The campaign app; daemons and the producer build the same one (same task names)."""
    app = WakaQ(
        url=url,
        queues=["high", Queue("limited", rate_limit=queue_rate or None), "default"],
        soft_timeout=20,
        hard_timeout=30,
        result_ttl=RESULT_TTL,
        **options,
    )
    rec = Recorder(env("WAKAQ_CAMPAIGN_RECORD_URL") or url)

    def done(tid: int) -> str:
        value = f"v{tid}"
        rec.mark(RUNS, tid, value)
        return value

    @app.task(queue="high")
    def plain(tid: int, tag: str = "") -> str:
        if tag == "eta":
            rec.mark(TIMES, f"{tid}.0")
        return done(tid)

    @app.task
    async def aplain(tid: int) -> str:
        await asyncio.sleep(0)
        return done(tid)

    @app.task
    def slow(tid: int, seconds: float) -> str:
        time.sleep(seconds)
        return done(tid)

    @app.task
    async def aslow(tid: int, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return done(tid)

    @app.task(retry_on=Flaky, max_retries=3, retry_backoff=BACKOFF, retry_backoff_max=BACKOFF_MAX, retry_jitter=False)
    def flaky(tid: int, fails: int) -> str:
        rec.mark(TIMES, f"{tid}.{current_task.attempt}")
        if current_task.attempt <= fails:
            rec.mark(ATTEMPTS, tid, str(current_task.attempt))
            raise Flaky(f"attempt {current_task.attempt} of {tid}")
        return done(tid)

    @app.task(store_results=True)
    def stored(tid: int, seconds: float = 0.0) -> str:
        time.sleep(seconds)
        return done(tid)

    @app.task(store_results=True)
    async def astored(tid: int) -> str:
        await asyncio.sleep(0)
        return done(tid)

    @app.task(unique_for=60)
    def uniq(tid: int) -> str:
        return done(tid)

    @app.task(rate_limit=task_rate or None)
    def throttled(tid: int) -> str:
        return done(tid)

    @app.task
    def bcast(tid: int) -> str:
        # NOTE: the run names its daemon (the parent's pid), so the oracle can tell each receiver's run apart
        value = f"v{tid}@{os.getppid()}"
        rec.mark(RUNS, tid, value)
        return value

    del plain, aplain, slow, aslow, flaky, stored, astored, uniq, throttled, bcast
    return app


def _num(name: str, default: float) -> float:
    value = env(f"WAKAQ_TEST_{name}")
    return float(value) if value else default


wakaq = build(
    env("WAKAQ_TEST_URL", "redis://127.0.0.1:1/0"),
    queue_rate=env("WAKAQ_CAMPAIGN_QUEUE_RATE", QUEUE_RATE),
    task_rate=env("WAKAQ_CAMPAIGN_TASK_RATE", TASK_RATE),
    concurrency=int(_num("CONCURRENCY", 2)),
    wait_timeout=_num("WAIT", 0.5),
    heartbeat_timeout=_num("HEARTBEAT", 4.0),
    socket_timeout=_num("SOCKET_TIMEOUT", 2.0),
    socket_connect_timeout=_num("SOCKET_TIMEOUT", 2.0),
    worker_log_file=env("WAKAQ_TEST_LOG") or None,
    worker_log_level=env("WAKAQ_TEST_LOG_LEVEL", "INFO"),
)
