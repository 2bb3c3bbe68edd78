"""The app `benches/soak.py` runs: sync and async tasks, some raising, some past their soft timeout.

Every task records its id (and its enqueue-to-start latency) through the e2e benchmark's progress counter on the
bookkeeping Redis, before it raises or sleeps, so the soak can count what ran, twice or never.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta

from progress import progress

from wakaq import WakaQ

URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0")
QUEUE = "soak"
SOFT_TIMEOUT = 0.05  # seconds; the `slow` task sleeps past it (a task-level timeout: the app has none)

app = WakaQ(
    url=URL,
    queues=[QUEUE],
    concurrency=int(os.environ.get("BENCH_CONCURRENCY", "2")),
    async_concurrency=int(os.environ.get("BENCH_ASYNC_CONCURRENCY", "20")),
    worker_log_level="ERROR",
)


class SoakError(Exception):
    """The 1% of tasks that fail on purpose."""


@app.after_worker_started
def _started() -> None:
    progress.start(URL)


def _ran(i: int, sent: float) -> None:
    progress.samples.append(time.time() - sent)
    progress.done(i)


@app.task(queue=QUEUE)
def sync_task(i: int, sent: float) -> None:
    _ran(i, sent)


@app.task(queue=QUEUE)
async def async_task(i: int, sent: float) -> None:
    _ran(i, sent)
    await asyncio.sleep(0)


@app.task(queue=QUEUE)
def failing(i: int, sent: float) -> None:
    _ran(i, sent)
    raise SoakError(f"task {i} fails on purpose")


@app.task(queue=QUEUE, soft_timeout=timedelta(seconds=SOFT_TIMEOUT), hard_timeout=timedelta(seconds=2))
def slow(i: int, sent: float) -> None:
    _ran(i, sent)
    time.sleep(SOFT_TIMEOUT * 4)
