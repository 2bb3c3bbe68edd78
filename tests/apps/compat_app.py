"""Our side of the WakaQ compatibility tests (tests/test_wakaq_compat.py): the queues and task of
tests/compat/wakaq_app.py (WakaQ 4.0.4's app), as one deployment moving from WakaQ would have them.

`wakaq` writes msgpack (the default), `json_app` WakaQ's JSON (`payload_format="json"`); both run the same task.
"""

from __future__ import annotations

import os
from typing import Any

from tests.apps.common import worker_options
from tests.compat import values
from wakaq import CronTask, WakaQ

URL = os.environ["WAKAQ_TEST_URL"]
QUEUES = [(0, "high"), "default"]
#: task id of the JSON app's schedule (the test fires a slot itself, as `wakaq-scheduler` does)
CRON_ID = 101
SCHEDULES = [CronTask("* * * * *", "record", args=values.arguments(CRON_ID)[0], kwargs=values.arguments(CRON_ID)[1])]

wakaq = WakaQ(queues=QUEUES, wait_timeout=0.5, **worker_options(concurrency=2))
json_app = WakaQ(queues=QUEUES, schedules=SCHEDULES, url=URL, payload_format="json")


def _record(*args: Any, **kwargs: Any) -> None:
    values.record(URL, args, kwargs)


# NOTE: one function on both apps: a task's name is its function's, and WakaQ's app calls it "record" too
_record.__name__ = _record.__qualname__ = "record"
record = wakaq.task(_record)
json_record = json_app.task(_record)
