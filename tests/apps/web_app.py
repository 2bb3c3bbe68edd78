"""App for the dashboard's tests: tasks that block until released, fail until fixed, always fail, run async,
and one schedule.

Each task appends a JSON event to the Redis list `events` (as tests/apps/worker_app.py does).
"""

from __future__ import annotations

import asyncio
import time

from tests.apps.common import Events, env, worker_options
from wakaq import CronTask, WakaQ, current_task

wakaq = WakaQ(
    queues=[(0, "high"), "default"],
    wait_timeout=0.5,
    heartbeat_timeout=float(env("WAKAQ_TEST_HEARTBEAT", "15")),
    schedules=[CronTask("* * * * * */2", "tick")],
    **worker_options(concurrency=2),
)

events = Events(wakaq)
record = events.record
client = events.client


@wakaq.task
def blocker(tag: str) -> None:
    """Runs until the key `release` exists (at most 30 s)."""
    record("blocker-start", tag=tag)
    deadline = time.monotonic() + 30
    while not client().exists("release") and time.monotonic() < deadline:
        time.sleep(0.02)
    record("blocker-end", tag=tag)


@wakaq.task(store_results=True)
def reporter(done: int, total: int, note: str) -> None:
    """Reports `done` of `total` with `note`, then runs until the key `release` exists (at most 30 s)."""
    current_task.set_progress(done, total, note=note)
    record("reporter-start", note=note)
    deadline = time.monotonic() + 30
    while not client().exists("release") and time.monotonic() < deadline:
        time.sleep(0.02)


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


# ---- workflow steps (the Workflows page) --------------------------------------------------------------------------


@wakaq.task
def wf_add(x: int, y: int) -> int:
    record("wf_add", x=x, y=y)
    return x + y


@wakaq.task
def wf_fail(text: str) -> None:
    """Fails with `text` in its error (the page must show it as text)."""
    raise ValueError(f"wf_fail got {text}")


@wakaq.task
def wf_collect(results: list[object]) -> list[object]:
    record("wf_collect", results=results)
    return results
