"""A long-lived child running many short async tasks with a long soft timeout: its memory must stay flat.

Each async task used to leave its `loop.call_later` soft-timeout handle armed after it finished, and the handle
holds the task (its coroutine, its arguments, its `Claimed` element) until the soft timeout passes: 300 s of
finished tasks stayed alive. Seqs of tasks that swallowed their soft timeout also stayed in `soft_timed_out`.

`make test` runs 20,000 tasks; `WAKAQ_TEST_FULL=1` runs the 200,000 of the issue. Failing output before the fix,
20,000 tasks, in two steps. First the child never got far: with no async_concurrency limit its loop claimed
the whole queue before any task ran (starting a task never awaits), then acked 20,000 seqs in one claim, beyond
Lua's unpack() limit, retried forever while the tasks stayed in flight:

    WARNING: redis error: ResponseError: user_script:105: too many results to unpack ...; retrying until it is back
    AssertionError: timed out after 60s waiting for the queues to drain: pending 0, in flight 20000, runs (20000, 0)

With claim.lua acking in chunks and the loop yielding after starting async tasks, the armed timers showed:

    AssertionError: child rss grew 17.1 MiB over 15000 async tasks (from 37.4 to 54.5 MiB)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import redis

from tests.faults import driver
from tests.faults.app import build
from tests.workers import StartWorker, wait_until

FULL = os.environ.get("WAKAQ_TEST_FULL") == "1"
N = 200_000 if FULL else int(os.environ.get("WAKAQ_TEST_N", "20000"))
#: growth allowed after the warm-up quarter (allocator noise, Redis client buffers)
SLACK_MIB = 8.0

pytestmark = pytest.mark.timeout(900 if FULL else 150)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_child_memory_stays_flat_over_many_async_tasks(
    redis_url: str, client: redis.Redis, start_worker: StartWorker
) -> None:
    started = time.monotonic()
    app = build(redis_url)
    worker = start_worker(url=redis_url, concurrency=1)
    [child] = worker.children()
    awork = app.tasks["awork"]
    for lo in range(0, N, 10_000):
        awork.delay_many(((i,), {}) for i in range(lo, min(N, lo + 10_000)))
    wait_until(lambda: client.hlen("runs") >= N // 4, timeout=300 if FULL else 60, what="a quarter of the tasks")
    base = _rss_mib(child)
    peak, seen = base, client.hlen("runs")
    deadline = time.monotonic() + (600 if FULL else 90)
    while seen < N:
        assert time.monotonic() < deadline, f"only {seen} of {N} tasks ran"
        peak = max(peak, _rss_mib(child))
        time.sleep(0.2)
        seen = client.hlen("runs")
    peak = max(peak, _rss_mib(child))
    driver.wait_drained(client, lambda: driver.done_count(client, N), timeout=60)
    acc = driver.account(client, range(N))
    note = f"child rss {base:.1f} MiB after {N // 4} tasks, peak {peak:.1f} MiB after {N}"
    driver.record(acc.row(f"child memory over {N:,} async tasks", started, note))
    assert worker.children() == [child], "one child ran every task"
    assert acc.lost == set() and acc.failed == {} and acc.duplicates == set()
    grown = peak - base
    assert grown < SLACK_MIB, (
        f"child rss grew {grown:.1f} MiB over {N - N // 4} async tasks (from {base:.1f} to {peak:.1f} MiB)"
    )
