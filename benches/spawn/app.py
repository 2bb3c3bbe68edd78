"""The app `benches/spawn_vs_fork.py` runs: one no-op task; each child counts what it ran in memory and a
daemon thread flushes the count with one INCRBY every 10 ms (as benches/e2e does), plus the time of the first task
that ran anywhere (SET NX)."""

from __future__ import annotations

import os
import threading
import time

import redis

from wakaq import WakaQ

URL = os.environ["SPAWN_BENCH_URL"]
DONE, FIRST = "bench:done", "bench:first"

wakaq = WakaQ(
    url=URL,
    queues=["q"],
    concurrency=2,
    start_method=os.environ.get("SPAWN_BENCH_METHOD", "fork"),
    worker_log_level="WARNING",
)

_count = 0
_first: float | None = None


def _flush() -> None:
    r = redis.Redis.from_url(URL)
    sent = 0
    while True:
        time.sleep(0.01)
        n = _count
        if n != sent:
            pipe = r.pipeline(transaction=False)
            pipe.set(FIRST, repr(_first), nx=True)
            pipe.incrby(DONE, n - sent)
            pipe.execute()
            sent = n


@wakaq.after_worker_started
def started() -> None:
    threading.Thread(target=_flush, daemon=True).start()


@wakaq.task(queue="q")
def noop() -> None:
    global _count, _first
    if _first is None:
        _first = time.time()
    _count += 1
