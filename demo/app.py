"""The demo's app: a visible mix of tasks. Each task counts itself in Redis so the producer can show progress."""

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
