"""App for the progress and debounce tests (tests/test_progress.py, tests/test_debounce.py): WAKAQ_TEST_* options as
in worker_app. Tasks append JSON events to the Redis list `events`; the reporting ones wait for a signal key."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from tests.apps.common import Events, worker_options
from wakaq import WakaQ, current_task

wakaq = WakaQ(queues=["default"], max_retries=0, wait_timeout=0.5, **worker_options())

events = Events(wakaq)
record = events.record
client = events.client

#: longest a task waits for its signal key (seconds)
WAIT_MAX = 30


def _wait_for(key: str) -> None:
    deadline = time.monotonic() + WAIT_MAX
    while not client().exists(key) and time.monotonic() < deadline:
        time.sleep(0.01)


@wakaq.task(store_results=True, result_ttl=timedelta(minutes=10))
def report(steps: int, tag: str) -> str:
    """Reports steps 1..steps of `steps`, then waits for the key `go:<tag>`, reports once more and returns."""
    wrote = [current_task.set_progress(i, steps, stage=tag) for i in range(1, steps + 1)]
    record("report", tag=tag, wrote=wrote)
    _wait_for(f"go:{tag}")
    current_task.set_progress(steps, steps, stage="finishing")
    return tag


@wakaq.task(store_results=True)
async def async_report(tag: str) -> str:
    wrote = current_task.set_progress(0.5, info_tag=tag)
    record("async_report", tag=tag, wrote=wrote)
    deadline = time.monotonic() + WAIT_MAX
    while not client().exists(f"go:{tag}") and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return tag


@wakaq.task(unique_for=timedelta(seconds=30))
def unique_report(tag: str) -> None:
    """A unique task without results: it has an id, so its progress is written (kept a day)."""
    current_task.set_progress(1, 3, tag=tag)
    record("unique_report", tag=tag)
    _wait_for(f"go:{tag}")


@wakaq.task
def plain_report(tag: str) -> None:
    """A plain task has no id: set_progress writes nothing and says so."""
    record("plain_report", tag=tag, wrote=current_task.set_progress(1, 2))


@wakaq.task
def debounced(i: int) -> None:
    record("debounced", i=i)


@wakaq.task(store_results=True)
def debounced_result(i: int) -> int:
    record("debounced_result", i=i)
    return i
