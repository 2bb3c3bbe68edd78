"""App for the dashboard's tests: tasks that block until released, fail until fixed, always fail, run async,
and one schedule.

Each task appends a JSON event to the Redis list `events` (as tests/apps/worker_app.py does).
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import redis

from wakaq import CronTask, WakaQ
from wakaq.connection import redis_py_client

URL = os.environ["WAKAQ_TEST_URL"]

wakaq = WakaQ(
    url=URL,
    queues=[(0, "high"), "default"],
    concurrency=int(os.environ.get("WAKAQ_TEST_CONCURRENCY", "2")),
    wait_timeout=0.5,
    heartbeat_timeout=float(os.environ.get("WAKAQ_TEST_HEARTBEAT", "15")),
    worker_log_file=os.environ.get("WAKAQ_TEST_LOG") or None,
    worker_log_level="DEBUG",
    schedules=[CronTask("* * * * * */2", "tick")],
)

_client: redis.Redis | None = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis_py_client(wakaq)  # a RedisCluster on a cluster url
    return _client


def record(task: str, **fields: object) -> None:
    client().rpush("events", json.dumps({"task": task, "pid": os.getpid(), "t": time.time(), **fields}))


@wakaq.task
def blocker(tag: str) -> None:
    """Runs until the key `release` exists (at most 30 s)."""
    record("blocker-start", tag=tag)
    deadline = time.monotonic() + 30
    while not client().exists("release") and time.monotonic() < deadline:
        time.sleep(0.02)
    record("blocker-end", tag=tag)


@wakaq.task
def flaky(*args: str) -> None:
    """Fails (its args in the error) until the key `fixed` exists."""
    if not client().exists("fixed"):
        raise ValueError(f"flaky failed with {args!r}")
    record("flaky", args=list(args))


@wakaq.task(queue="high")
def quick(i: int) -> None:
    record("quick", i=i)


@wakaq.task(queue="high")
async def quick_async(i: int) -> None:
    await asyncio.sleep(0.01)
    record("quick_async", i=i)


@wakaq.task
def broken(i: int) -> None:
    raise ValueError(f"broken {i} always fails")


@wakaq.task
def tick() -> None:
    record("tick")
