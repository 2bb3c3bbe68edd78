"""App for tests/test_cancel.py: tasks that record what happened to them in the Redis list `events`."""

from __future__ import annotations

import asyncio
import time

from tests.apps.common import Events, worker_options
from wakaq import WakaQ
from wakaq.exceptions import TaskCancelled

wakaq = WakaQ(queues=["high", "low"], wait_timeout=0.5, **worker_options())

record = Events(wakaq).record


@wakaq.task(queue="low")
def note(tag: str) -> None:
    record("note", tag=tag)


@wakaq.task(queue="low")
def other(tag: str) -> None:
    record("other", tag=tag)


@wakaq.task(queue="low")
def busy(seconds: float, tag: str) -> None:
    record("busy-start", tag=tag)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.05)
    except TaskCancelled:
        record("busy-cancelled", tag=tag)
        raise
    record("busy-end", tag=tag)


@wakaq.task(queue="low")
async def async_busy(seconds: float, tag: str) -> None:
    record("async-start", tag=tag)
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        record("async-cancelled", tag=tag)
        raise
    record("async-end", tag=tag)


@wakaq.task(queue="low")
def swallower(seconds: float, tag: str) -> str:
    """A task with a broad `except Exception` (common in real code): an admin's cancel must still stop it."""
    record("swallower-start", tag=tag)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except Exception:
            record("swallowed", tag=tag)
            return "swallowed"
    return "ran out"
