"""App for the rate limit tests (tests/test_ratelimit.py): a limited queue between two unlimited ones, and a task
with a limit of its own. Rates come from WAKAQ_TEST_* env vars.

Each task appends `<redis time in us>:<pid>` to the list `times:<tag>` (one Lua call: Redis's clock, as the limits use),
so tests count starts in a window of server time.
"""

from __future__ import annotations

import os

from tests.apps.common import Events, env, worker_options
from wakaq import Queue, WakaQ

wakaq = WakaQ(
    queues=[(0, "high"), Queue("limited", priority=1, rate_limit=env("WAKAQ_TEST_RATE", "100/s")), (2, "low")],
    wait_timeout=float(env("WAKAQ_TEST_WAIT", "1")),
    **worker_options(),
)

# NOTE: `times:<tag>` is one key, so this runs on a cluster too
STAMP = """local t = redis.call('TIME')
return redis.call('RPUSH', KEYS[1], t[1] .. string.format('%06d', t[2]) .. ':' .. ARGV[1])"""

events = Events(wakaq)


def stamp(tag: str) -> None:
    events.client().eval(STAMP, 1, f"times:{tag}", os.getpid())


@wakaq.task(queue="limited")
def limited(i: int) -> None:
    stamp("limited")


@wakaq.task(queue="high")
def high(i: int) -> None:
    stamp("high")


@wakaq.task(queue="low")
def low(i: int) -> None:
    stamp("low")


@wakaq.task(queue="low", rate_limit=env("WAKAQ_TEST_TASK_RATE", "20/s"))
def capped(i: int) -> None:
    stamp("capped")


@wakaq.task(queue="low")
def free(i: int) -> None:
    stamp("free")
