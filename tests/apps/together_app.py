"""App for tests/test_features_together.py: tasks that use several opt-in features at once (results, retries,
uniqueness, cancel). Runs are counted in Redis (`runs:<key>`) and each run appends a JSON event to `events`."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from tests.apps.common import Events, worker_options
from wakaq import WakaQ, current_task

wakaq = WakaQ(queues=["default"], wait_timeout=0.5, retry_jitter=False, **worker_options())

events = Events(wakaq)


def run_of(key: str, task: str, **fields: Any) -> int:
    run = events.count(f"runs:{key}")
    events.record(task, key=key, run=run, attempt=current_task.attempt, **fields)
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
