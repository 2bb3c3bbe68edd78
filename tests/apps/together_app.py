"""App for tests/test_features_together.py: tasks that use several opt-in features at once (results, retries,
uniqueness, cancel). Runs are counted in Redis (`runs:<key>`) and each run appends a JSON event to `events`."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import redis

from wakaq import WakaQ, current_task
from wakaq.connection import redis_py_client

env = os.environ.get

wakaq = WakaQ(
    url=os.environ["WAKAQ_TEST_URL"],
    queues=["default"],
    concurrency=int(env("WAKAQ_TEST_CONCURRENCY", "1")),
    wait_timeout=0.5,
    worker_log_file=env("WAKAQ_TEST_LOG") or None,
    worker_log_level="DEBUG",
    retry_jitter=False,
)

_client: redis.Redis | None = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis_py_client(wakaq)
    return _client


def run_of(key: str, task: str, **fields: Any) -> int:
    run = int(client().incr(f"runs:{key}"))
    event = {"task": task, "key": key, "run": run, "attempt": current_task.attempt, "t": time.time(), **fields}
    client().rpush("events", json.dumps(event))
    return run


@wakaq.task(store_results=True, retry_on=TimeoutError, max_retries=3, retry_backoff=1.0)
def flaky_result(key: str, fails: int) -> str:
    """Raises TimeoutError on its first `fails` runs, then returns."""
    run = run_of(key, "flaky_result")
    if run <= fails:
        raise TimeoutError(f"run {run}")
    return f"ok after {run}"


@wakaq.task(unique_for=60, retry_on=TimeoutError, max_retries=1, retry_backoff=1.5)
def unique_flaky(key: str) -> None:
    """Fails its first run (retried 1.5 s later), holding its uniqueness lock throughout."""
    if run_of(key, "unique_flaky") == 1:
        raise TimeoutError("first run")


@wakaq.task(store_results=True, unique_for=60)
def slow_unique(key: str, seconds: float) -> str:
    run_of(key, "slow_unique")
    time.sleep(seconds)
    return "finished"


@wakaq.task(store_results=True, unique_for=60)
def poison(key: str) -> None:
    """SIGKILLs its own child on every run: dead-listed after 3 deliveries."""
    run_of(key, "poison")
    os.kill(os.getpid(), signal.SIGKILL)


@wakaq.task(store_results=True, unique_for=60, hard_timeout=1)
def past_hard_timeout(key: str) -> None:
    run_of(key, "past_hard_timeout")
    time.sleep(30)
