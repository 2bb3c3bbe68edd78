"""Processes die: children killed at random, a whole daemon killed, a poison pill that kills its own child."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator

import pytest
import redis

from tests.faults import driver
from tests.faults.app import build
from tests.faults.conftest import StartWorker
from tests.workers import child_pids, wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    try:
        yield c
    finally:
        c.close()


def _kill(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def test_kill_a_random_child_every_200ms(redis_url: str, client: redis.Redis, start_worker: StartWorker) -> None:
    """5,000 short tasks, concurrency 4, SIGKILL a random child every 200 ms until all of them ran."""
    started = time.monotonic()
    n = 5000
    app = build(redis_url)
    worker = start_worker(redis_url, concurrency=4)
    app.tasks["work"].delay_many(((i, 1.0), {}) for i in range(n))
    rng = random.Random(20240601)
    killed: set[int] = set()
    deadline = time.monotonic() + 75
    # NOTE: kill until every task ran once, and at least 20 times, so the kills overlap real work.
    while client.hlen("runs") < n or len(killed) < 20:
        assert time.monotonic() < deadline, f"only {client.hlen('runs')} of {n} tasks ran in 75 s"
        pids = child_pids(worker.pid)
        if pids:
            pid = rng.choice(pids)
            if _kill(pid):
                killed.add(pid)
        time.sleep(0.2)
    driver.wait_drained(client, lambda: driver.done_count(client, n), timeout=30)
    acc = driver.account(client, range(n))
    died = killed | driver.died_children(worker.log_text())
    row = acc.row("kill -9 a child every 200 ms", started, f"{len(killed)} children killed")
    driver.record(row)
    assert acc.lost == set(), f"lost: {sorted(acc.lost)[:20]}"
    assert acc.failed == {}, f"short tasks failed: {acc.failed}"
    assert acc.unexplained_duplicates(died) == {}
    assert worker.proc.poll() is None, "the daemon survived"


@pytest.mark.parametrize("machine_death", [False, True], ids=["parent", "parent-and-children"])
def test_kill_one_of_two_daemons(
    redis_url: str, client: redis.Redis, start_worker: StartWorker, machine_death: bool
) -> None:
    """Two daemons share the queues; SIGKILL one daemon mid-run: its parent alone (the children must not live
    on unsupervised: they finish their task, hand back their claims and exit), or its parent and children at
    once (a machine dying: the survivor's reaper returns the dead daemon's tasks once its heartbeat expires)."""
    started = time.monotonic()
    n = 2000
    app = build(redis_url)
    victim = start_worker(redis_url, "victim", concurrency=2, heartbeat=3)
    survivor = start_worker(redis_url, "survivor", concurrency=2, heartbeat=3)
    orphans = victim.children()
    try:
        app.tasks["work"].delay_many(((i, 3.0), {}) for i in range(n))
        wait_until(lambda: client.hlen("runs") >= n // 4, timeout=30, what="a quarter of the tasks")
        for pid in [victim.pid, *(orphans if machine_death else [])]:
            assert _kill(pid)
        victim.proc.wait(5)
        wait_until(lambda: not any(driver.alive(p) for p in orphans), timeout=10, what="the victim's children to exit")
        driver.wait_drained(client, lambda: driver.done_count(client, n), timeout=45)
        wait_until(lambda: client.scard("wakaq:daemons") == 1, timeout=10, what="the dead daemon to be reaped")
    finally:
        for pid in orphans:
            _kill(pid)
    acc = driver.account(client, range(n))
    died = set(orphans) | driver.died_children(survivor.log_text())
    how = "daemon + children" if machine_death else "daemon"
    driver.record(acc.row(f"kill -9 one of two daemons ({how})", started))
    assert acc.lost == set(), f"lost: {sorted(acc.lost)[:20]}"
    assert acc.failed == {}
    assert acc.unexplained_duplicates(died) == {}
    assert survivor.proc.poll() is None
    if machine_death:
        assert "tasks of dead worker daemons to their queues" in survivor.log_text()
