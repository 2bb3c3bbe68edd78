"""App for scheduler tests (tests/test_scheduler.py), as subprocess worker and scheduler.

WAKAQ_TEST_CRON is the one schedule (default every minute); WAKAQ_TEST_LOG the scheduler's log file. The task
appends a JSON event (task, args, kwargs, time) to the Redis list `events`.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis

from wakaq import CronTask, WakaQ
from wakaq.connection import redis_py_client

URL = os.environ["WAKAQ_TEST_URL"]
CRON = os.environ.get("WAKAQ_TEST_CRON", "* * * * *")

app = WakaQ(
    url=URL,
    queues=[(0, "high"), (1, "med"), "default"],
    schedules=[CronTask(CRON, "tick", args=[1], kwargs={"label": "cron"})],
    concurrency=1,
    wait_timeout=0.2,
    socket_timeout=2,
    socket_connect_timeout=2,
    scheduler_log_file=os.environ.get("WAKAQ_TEST_LOG") or None,
    scheduler_log_level="DEBUG",
)

no_schedules = WakaQ(url=URL, queues=["default"])

unknown_task = WakaQ(url=URL, queues=["default"], schedules=[("*/5 * * * *", "no_such_task")])

_client: redis.Redis | None = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis_py_client(app)  # a RedisCluster on a cluster url
    return _client


@app.task(queue="high")
def tick(n: int, label: str = "") -> None:
    event: dict[str, Any] = {"task": "tick", "n": n, "label": label, "t": time.time()}
    client().rpush("events", json.dumps(event))
