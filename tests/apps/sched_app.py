"""App for scheduler tests (tests/test_scheduler.py), as subprocess worker and scheduler.

WAKAQ_TEST_CRON is the one schedule (default every minute); WAKAQ_TEST_LOG the log file (of the scheduler or the
worker). The task appends a JSON event (task, args, kwargs, time) to the Redis list `events`.
"""

from __future__ import annotations

import os

from tests.apps.common import Events
from wakaq import CronTask, WakaQ

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
    worker_log_file=os.environ.get("WAKAQ_TEST_LOG") or None,
    worker_log_level="DEBUG",  # NOTE: start_worker waits for its "forked child" lines
    scheduler_log_file=os.environ.get("WAKAQ_TEST_LOG") or None,
    scheduler_log_level="DEBUG",
)

no_schedules = WakaQ(url=URL, queues=["default"])

unknown_task = WakaQ(url=URL, queues=["default"], schedules=[("*/5 * * * *", "no_such_task")])

events = Events(app)


@app.task(queue="high")
def tick(n: int, label: str = "") -> None:
    events.record("tick", n=n, label=label)
