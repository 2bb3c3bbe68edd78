"""App for the per-key concurrency tests (tests/test_conc_limit.py): `keyed` runs at most WAKAQ_TEST_CONC_LIMIT (2) at
once per `customer` (an argument name), `held` at most one per key (a callable) and waits for a go-ahead.

Each run counts itself into Redis in one Lua call at its start and one at its end: `running:<key>` (now running) and
`peak:<key>` (the most seen at a start), so an overlap past the limit is seen at the start that makes it, exactly;
`runs` counts every run per call (`<key>:<i>`), `ends` every finished run.
"""

from __future__ import annotations

import os
import time

from tests.apps.common import Events, env, worker_options
from wakaq import WakaQ

wakaq = WakaQ(queues=["default"], wait_timeout=float(env("WAKAQ_TEST_WAIT", "1")), **worker_options(concurrency=4))

LIMIT = int(env("WAKAQ_TEST_CONC_LIMIT", "2"))

START = """local n = redis.call('INCR', KEYS[1])
if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end
redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
redis.call('RPUSH', KEYS[4], ARGV[2])
return n"""
END = """redis.call('DECR', KEYS[1])
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
return 1"""

events = Events(wakaq)


def run(tag: str, key: str, i: int, body: float) -> None:
    r = events.client()
    r.eval(START, 4, f"running:{key}", f"peak:{key}", "runs", f"pids:{key}", f"{key}:{i}", os.getpid())
    time.sleep(body)
    r.eval(END, 2, f"running:{key}", "ends", f"{key}:{i}")


@wakaq.task(concurrency_key="customer", concurrency_limit=LIMIT)
def keyed(customer: str, i: int, body: float = 0.05) -> None:
    run("keyed", customer, i, body)


@wakaq.task(concurrency_key=lambda key, i: f"h-{key}", concurrency_limit=1)
def held(key: str, i: int) -> None:
    """Runs once `go` is set (bounded: 60 s)."""
    r = events.client()
    r.eval(START, 4, f"running:h-{key}", f"peak:h-{key}", "runs", f"pids:h-{key}", f"h-{key}:{i}", os.getpid())
    deadline = time.monotonic() + 60
    while not r.exists("go") and time.monotonic() < deadline:
        time.sleep(0.02)
    r.eval(END, 2, f"running:h-{key}", "ends", f"h-{key}:{i}")


@wakaq.task
def plain(i: int) -> None:
    events.client().hincrby("ends", f"plain:{i}", 1)
