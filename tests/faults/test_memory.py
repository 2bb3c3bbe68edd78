"""Memory pressure with `max_mem_percent`: the supervisor recycles a child gracefully, so the task it was
running completes (or its claims return to the queue) and nothing is lost or run twice.

`max_mem_percent` is machine-wide and this machine is shared, so the test does not fill real memory: the
supervisor's test-only `WAKAQ_TEST_MEMINFO` points its memory guard at a file in `/proc/meminfo`'s format."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import redis

from tests.faults import driver
from tests.faults.app import build
from tests.workers import StartWorker, wait_until

pytestmark = pytest.mark.timeout(90)


def _meminfo(path: Path, used_percent: float) -> None:
    total = 16_000_000
    available = int(total * (100 - used_percent) / 100)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"MemTotal:       {total} kB\nMemFree:        {available} kB\nMemAvailable:   {available} kB\n")
    tmp.replace(path)  # NOTE: atomic, the supervisor never reads half a file


def test_memory_pressure_recycles_without_losing_the_running_task(
    redis_url: str, client: redis.Redis, start_worker: StartWorker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    meminfo = tmp_path / "meminfo"
    _meminfo(meminfo, 50)
    monkeypatch.setenv("WAKAQ_TEST_MEMINFO", str(meminfo))
    worker = start_worker(url=redis_url, concurrency=2, max_mem=80)
    app = build(redis_url)
    n = 6
    app.tasks["hold"].delay_many(((i, 2.0), {}) for i in range(n))
    wait_until(lambda: client.hlen("started") >= 2, timeout=15, what="both children running a task")
    _meminfo(meminfo, 95)
    log = wait_until(lambda: re.findall(r"recycling child (\d+)", worker.log_text()), timeout=10, what="a recycle")
    recycled = int(log[0])
    running = {int(f.split(b":")[0]) for f in client.hkeys("started") if int(f.split(b":")[1]) == recycled}
    assert running, "the recycled child was running a task"
    exited = rf"child {recycled} \(slot \d\) (exited|killed)[^\n]*"
    wait_until(lambda: re.search(exited, worker.log_text()), timeout=10, what="the recycled child to exit")
    text = worker.log_text()
    assert re.search(exited, text)[0].endswith("exited with code 0"), text[-2000:]
    assert "memory at 95.0% >= max_mem_percent 80" in text
    time.sleep(1.5)  # NOTE: proving a negative: no fork while memory stays high
    assert len(driver.forked_children(worker.log_text())) == 2, "no child forked while memory is high"
    _meminfo(meminfo, 50)
    driver.wait_drained(client, lambda: driver.done_count(client, n), timeout=30)
    acc = driver.account(client, range(n))
    ran = driver.runs(client)
    note = f"child {recycled} recycled while running task {max(running)}, which completed in it"
    driver.record(acc.row("memory pressure (max_mem_percent)", started, note))
    assert acc.lost == set() and acc.failed == {} and acc.duplicates == set()
    assert all(recycled in ran[i] for i in running), "every task the recycled child started completed in it"
    assert driver.died_children(worker.log_text()) == set()
    assert "forking again" in worker.log_text()
    assert worker.proc.poll() is None
