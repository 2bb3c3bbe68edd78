"""The demo's app: a visible mix of tasks. Each task counts itself in Redis so the producer can show progress.

Its Redis comes from the environment: `WAKAQ_DEMO_URL` (default `redis://localhost:6379/0`) and the key prefix
from `WAKAQ_DEMO_PREFIX` (default `wakaq`). `make demo` prints the commands to point the tools at it, e.g.
`WAKAQ_DEMO_URL=redis://127.0.0.1:PORT/0 .venv/bin/wakaq-info --app=demo.app.wakaq` (run from the repository root,
so `demo.app` imports).
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta

import redis

from wakaq import CronTask, Queue, WakaQ

URL = os.environ.get("WAKAQ_DEMO_URL", "redis://localhost:6379/0")
COUNTERS = "demo:count"

wakaq = WakaQ(
    url=URL,
    queues=[(0, "high"), Queue("slow", priority=5, soft_timeout=1, hard_timeout=3, max_retries=1), "default"],
    concurrency=2,
    async_concurrency=50,
    soft_timeout=10,
    hard_timeout=20,
    worker_log_level="INFO",
    key_prefix=os.environ.get("WAKAQ_DEMO_PREFIX", "wakaq"),
    schedules=[CronTask("* * * * * */5", "tick")],
)

_client: redis.Redis | None = None


def count(kind: str) -> None:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(URL)
    _client.hincrby(COUNTERS, kind, 1)


@wakaq.task(queue="high")
def fast(i: int) -> None:
    count("fast")


@wakaq.task(queue="slow")
def slow(i: int) -> None:
    time.sleep(0.2)
    count("slow")


@wakaq.task
async def io_bound(i: int) -> None:
    await asyncio.sleep(0.3)
    count("async")


@wakaq.task
def later(due: float) -> None:
    count("eta")
    if time.time() < due:
        count("eta-early")


@wakaq.task(queue="slow")
def too_slow() -> None:
    """Sleeps past its queue's soft timeout: SoftTimeout, one retry, then recorded failed."""
    count("too_slow-attempt")
    time.sleep(2)


@wakaq.task
def broken() -> None:
    count("broken-attempt")
    raise ValueError("this task always fails (on purpose)")


@wakaq.task
def tick() -> None:
    count("tick")


ETA = timedelta(seconds=2)


# ---- the opt-in task features (README "Task features"): shown after the drain -----------------------------------


@wakaq.task(store_results=True)
def square(x: int) -> int:
    return x * x


@wakaq.task(store_results=True, retry_on=TimeoutError, max_retries=3, retry_backoff=0.2, retry_jitter=False)
def flaky(key: str) -> str:
    """Times out on its first two attempts, then succeeds: retried through the eta set with backoff."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(URL)
    attempt = int(_client.hincrby(COUNTERS, f"flaky:{key}", 1))
    if attempt < 3:
        raise TimeoutError(f"backend slow (attempt {attempt})")
    return f"ok on attempt {attempt}"


@wakaq.task(unique_for=timedelta(minutes=1))
def rebuild(account: str) -> None:
    time.sleep(0.5)
