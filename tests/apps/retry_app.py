"""App for the retry tests (tests/test_retries.py): tasks that fail on purpose, a given number of times.

Every run appends a JSON event to the Redis list `events` with what `wakaq.current_task` said (attempt, errors, id,
name), so the tests see each attempt. Attempts are counted in Redis (`attempts:<key>`), not in the child, since a
retry may run in another child.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import timedelta
from typing import Any

from tests.apps.common import Events, worker_options
from wakaq import Retry, WakaQ, current_task

wakaq = WakaQ(
    queues=["default"],
    wait_timeout=0.5,
    **worker_options(),
    # the app's defaults: a short backoff without jitter, so the tests wait little and know how long
    retry_backoff=0.2,
    retry_jitter=False,
)

events = Events(wakaq)


def record(task: str, **fields: Any) -> None:
    seen = {"attempt": current_task.attempt, "errors": current_task.errors, "id": current_task.id}
    events.record(task, name=current_task.name, **seen, **fields)


def runs(key: str) -> int:
    return events.count(f"attempts:{key}")


@wakaq.task(retry_on=(TimeoutError, ConnectionError), max_retries=3)
def flaky(key: str, fails: int) -> str:
    """Raises TimeoutError on its first `fails` runs."""
    run = runs(key)
    record("flaky", key=key, run=run)
    if run <= fails:
        raise TimeoutError(f"slow backend, run {run}")
    return "ok"


@wakaq.task(retry_on=TimeoutError, max_retries=2, retry_backoff=timedelta(milliseconds=50))
def always_fails(key: str) -> None:
    run = runs(key)
    record("always_fails", key=key, run=run)
    raise TimeoutError(f"down, run {run}")


@wakaq.task(max_retries=1)
def retry_later(key: str) -> None:
    """Asks for a retry in 1 s on its first run (no retry_on: `Retry` is enough)."""
    run = runs(key)
    record("retry_later", key=key, run=run)
    if run == 1:
        raise Retry(countdown=1)


@wakaq.task
def quick(tag: str) -> None:
    """Also reports how many tasks wait in the eta set while it runs."""
    record("quick", tag=tag, eta_waiting=events.client().zcard(wakaq.keys.eta("default")))


@wakaq.task(retry_on=TimeoutError, max_retries=3)
def wrong_error(key: str) -> None:
    record("wrong_error", key=key, run=runs(key))
    raise ValueError("not a timeout")


@wakaq.task
def plain_fails(key: str) -> None:
    record("plain_fails", key=key, run=runs(key))
    raise TimeoutError("no retry_on here")


@wakaq.task(retry_on=TimeoutError, max_retries=2, retry_backoff=0.05)
def killed_on_second(key: str) -> None:
    """Run 1 raises (a retry); run 2, the second attempt's first delivery, SIGKILLs its child; run 3 succeeds."""
    run = runs(key)
    record("killed_on_second", key=key, run=run)
    if run == 1:
        raise TimeoutError("first run")
    if run == 2:
        os.kill(os.getpid(), signal.SIGKILL)


@wakaq.task(retry_on=(TimeoutError,), max_retries=3)
async def async_flaky(key: str, fails: int) -> None:
    await asyncio.sleep(0.01)
    run = runs(key)
    record("async_flaky", key=key, run=run)
    if run <= fails:
        raise TimeoutError(f"async run {run}")


@wakaq.task(retry_on=TimeoutError, max_retries=2, retry_backoff=0.05, soft_timeout=0.5, hard_timeout=5)
def slow_then_flaky(key: str) -> None:
    """Run 1 passes its soft timeout, the next ones raise TimeoutError: one `retry` counter for both."""
    run = runs(key)
    record("slow_then_flaky", key=key, run=run)
    if run == 1:
        time.sleep(3)
    raise TimeoutError(f"flaky, run {run}")
