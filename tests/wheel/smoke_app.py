"""App for the wheel smoke (tests/wheel/smoke.py): a sync task, an async task and an every-second cron task.

Each task appends a JSON event to the Redis list `events`; WAKAQ_TEST_URL is the Redis, WAKAQ_TEST_LOG the log file.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime
from decimal import Decimal

import redis

from wakaq import CronTask, WakaQ

wakaq = WakaQ(
    url=os.environ["WAKAQ_TEST_URL"],
    queues=[(0, "high"), "default"],
    concurrency=2,
    wait_timeout=0.2,
    worker_log_file=os.environ.get("WAKAQ_TEST_LOG") or None,
    worker_log_level="DEBUG",
    schedules=[CronTask("* * * * * *", "tick", args=["cron"])],  # croniter's sixth field is seconds
)

_client: redis.Redis | None = None


def record(task: str, value: object) -> None:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(wakaq.url)
    _client.rpush("events", json.dumps({"task": task, "value": value}))


@wakaq.task(queue="high")
def add(x: int, y: int, when: datetime, amount: Decimal) -> None:
    # NOTE: a datetime and a Decimal cross the codec: its date/time fields are read differently under abi3.
    record("add", [x + y, when.isoformat(), str(amount)])


@wakaq.task
async def async_add(x: int, y: int) -> None:
    await asyncio.sleep(0.01)
    record("async_add", x + y)


@wakaq.task
def tick(label: str) -> None:
    record("tick", label)
