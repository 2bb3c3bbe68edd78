"""App for the results and unique-task tests (tests/test_results.py, tests/test_unique.py): WAKAQ_TEST_* options as
in worker_app. Each task appends a JSON event to the Redis list `events`."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from tests.apps.common import Events, worker_options
from wakaq import WakaQ

wakaq = WakaQ(queues=["high", "low"], max_retries=0, wait_timeout=0.5, **worker_options())

record = Events(wakaq).record


@wakaq.task(store_results=True, result_ttl=timedelta(minutes=10))
def add(a: int, b: int) -> int:
    record("add")
    return a + b


@wakaq.task(store_results=True)
async def async_pair(tag: str) -> dict[str, Any]:
    await asyncio.sleep(0.01)
    record("async_pair")
    return {"tag": tag, "items": [1, 2.5, None], "when": timedelta(seconds=3)}


@wakaq.task(store_results=True)
def broken(message: str) -> None:
    record("broken")
    raise KeyError(message)


@wakaq.task(store_results=True)
async def async_broken() -> None:
    raise RuntimeError("async boom")


@wakaq.task(store_results=True)
def unencodable() -> object:
    return object()


@wakaq.task(store_results=True)
def slow(seconds: float, tag: str) -> str:
    """Sleeps (killed mid-sleep by some tests), then returns."""
    record("slow-start", tag=tag)
    time.sleep(seconds)
    record("slow-end", tag=tag)
    return f"slept {tag}"


@wakaq.task
def plain(i: int) -> int:
    record("plain", i=i)
    return i


@wakaq.task
def keyed(unique_key: str, queue_name: str = "") -> None:
    """A plain task whose parameter is named like a `delay_with_options` option (WakaQ reserves only queue, eta)."""
    record("keyed", unique_key=unique_key, queue_name=queue_name)


@wakaq.task(unique_for=timedelta(seconds=30))
def unique_slow(seconds: float, tag: str = "") -> None:
    record("unique-start", tag=tag)
    time.sleep(seconds)
    record("unique-end", tag=tag)


@wakaq.task(unique_for=timedelta(seconds=30), store_results=True)
def unique_result(seconds: float) -> float:
    record("unique-result")
    time.sleep(seconds)
    return seconds


@wakaq.task(unique_for=1.5)
def unique_short() -> None:
    record("unique-short")
