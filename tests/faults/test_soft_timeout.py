"""Soft timeouts of sync tasks run inside the event loop (an async wrapper around them) must reach only the task
they belong to: its soft timeout (a retry, then a failure record), never a crashed child or another task.

The parent sends SIGQUIT; the child's handler used to raise `SoftTimeout` wherever the main thread was. With the
suite's async wrapper a sync task awaits 3 s before its body runs, so its 1 s soft timeout fires while the event
loop runs an async task that keeps the CPU busy (phase 1), or while it sleeps in the selector (phase 2); in phase 3
the soft timeout fires inside the body of a sync task under the same wrapper (it raises there).
Failing output before the fix:

    phase 1: AssertionError: the busy async task completed, the sync task timed out:
             failed {1: ['SoftTimeout: soft timeout']}, runs {2: 1}
    phase 2: AssertionError: no child died: {...} (child ... exited with code 1 while running task ...)
"""

from __future__ import annotations

import time

import pytest
import redis

from tests.faults import driver
from tests.faults.app import build
from tests.workers import StartWorker, wait_until

pytestmark = pytest.mark.timeout(90)

SOFT_TIMEOUT = "soft timeout (retried 1 of 1 times)"


def test_soft_timeout_under_an_async_wrapper(
    redis_url: str, client: redis.Redis, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    monkeypatch.setenv("WAKAQ_TEST_ASYNC_WRAPPER", "1")
    app = build(redis_url)
    worker = start_worker(url=redis_url, concurrency=1)
    # phase 1: the sync task's soft timeout fires while the busy async task runs
    app.tasks["aspin"].delay(1, 6.0)
    app.tasks["soft_sync"].delay(2)

    def settled(ids: set[int]) -> bool:
        return ids <= set(driver.runs(client)) | set(driver.failed_ids(driver.failure_records(client)))

    wait_until(lambda: settled({1, 2}), timeout=40, what="phase 1 to settle")
    failed = driver.failed_ids(driver.failure_records(client))
    runs = {i: len(p) for i, p in driver.runs(client).items()}
    assert failed == {2: [SOFT_TIMEOUT]} and runs == {1: 1}, (
        f"the busy async task completed, the sync task timed out: failed {failed}, runs {runs}"
    )
    # phase 2: the soft timeout fires while the event loop sleeps in the selector
    app.tasks["soft_sync"].delay(3)
    wait_until(lambda: settled({3}), timeout=30, what="phase 2 to settle")
    # phase 3: the soft timeout fires inside the sync task's own body (it raises there, in its loop task)
    app.tasks["soft_body"].delay(4)
    wait_until(lambda: settled({4}), timeout=30, what="phase 3 to settle")
    died = driver.died_children(worker.log_text())
    assert not died, f"no child died: {died} ({worker.log_text()[-1500:]})"
    driver.wait_drained(client, timeout=20)
    acc = driver.account(client, [1, 2, 3, 4])
    note = (
        "SIGQUIT while a busy async task runs (1 ran, 2 timed out), while the loop sleeps (3 timed out), inside the"
        " task's own body (4 timed out)"
    )
    driver.record(acc.row("soft timeout under an async wrapper", started, note))
    assert acc.lost == set() and acc.duplicates == set()
    assert driver.failed_ids(driver.failure_records(client)) == {i: [SOFT_TIMEOUT] for i in (2, 3, 4)}
    assert "hit its soft timeout, retry 1 of 1" in worker.log_text()
    assert worker.proc.poll() is None
