"""Processes die: children killed at random, a whole daemon killed, a poison pill that kills its own child."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
import redis

from tests.faults import driver
from tests.faults.app import build
from tests.workers import StartWorker, child_pids, wait_until

pytestmark = pytest.mark.timeout(120)


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
    worker = start_worker(url=redis_url, concurrency=4)
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
    # NOTE: only a task that happened to be running in 3 of the killed children may be dead-listed.
    reasons = [r for rs in acc.failed.values() for r in rs]
    assert all("died while running it" in r for r in reasons), reasons
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
    victim = start_worker(url=redis_url, name="victim", concurrency=2, heartbeat=3)
    survivor = start_worker(url=redis_url, name="survivor", concurrency=2, heartbeat=3)
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


def test_poison_pill_is_dead_listed_after_three_deliveries(
    redis_url: str, client: redis.Redis, start_worker: StartWorker
) -> None:
    """Tasks that SIGKILL their own child every time: each runs exactly 3 times, then it is dead-listed with
    its reason; the daemon stays healthy (children replaced at once, no crash-loop backoff) and every other
    task runs."""
    started = time.monotonic()
    n, poisons = 300, [100_000, 100_001, 100_002]
    app = build(redis_url)
    worker = start_worker(url=redis_url, concurrency=2)
    work, poison = app.tasks["work"], app.tasks["poison"]
    for chunk in range(3):
        work.delay_many(((i, 5.0), {}) for i in range(chunk * 100, chunk * 100 + 100))
        poison.delay(poisons[chunk])
    driver.wait_drained(client, lambda: driver.done_count(client, n), timeout=60)
    acc = driver.account(client, [*range(n), *poisons])
    poison_runs = driver.runs(client, "poison")
    died = driver.died_children(worker.log_text())
    driver.record(acc.row("poison pill (SIGKILLs itself)", started, f"{len(died)} children died"))
    assert acc.lost == set()
    assert {i: len(pids) for i, pids in poison_runs.items()} == dict.fromkeys(poisons, 3)
    assert set(acc.failed) == set(poisons) and acc.done == set(range(n))
    for rec in driver.failure_records(client):
        assert rec["deliveries"] == 3 and "poison pill" in rec["reason"], rec
    assert acc.unexplained_duplicates(died) == {}
    assert worker.proc.poll() is None
    assert "keep dying" not in worker.log_text(), "a poison pill is not a crash loop"
    worker.wait_ready(children=2)


def test_exit_0_mid_task_is_dead_listed_after_three_deliveries(
    redis_url: str, client: redis.Redis, start_worker: StartWorker
) -> None:
    """A task that ends its child with `os._exit(0)`: status 0 with a task still in the slot is not a clean exit.
    It must count as a delivery and be dead-listed after 3, like a task that SIGKILLs its child.

    Failing output before the fix (status 0 was taken for a clean exit: no bump, redelivered forever):

        AssertionError: 0 dead-listed, runs so far: {100000: 4, 100001: 3}
    """
    started = time.monotonic()
    n, pills = 100, [100_000, 100_001]
    app = build(redis_url)
    worker = start_worker(url=redis_url, concurrency=2)
    app.tasks["work"].delay_many(((i, 2.0), {}) for i in range(n))
    for pill in pills:
        app.tasks["exit0"].delay(pill)

    def settled() -> bool:
        return len(driver.failure_records(client)) >= len(pills) or any(
            len(p) > 3 for p in driver.runs(client, "poison").values()
        )

    wait_until(settled, timeout=30, what="the exit0 pills to be dead-listed or to run a 4th time")
    counts = {i: len(p) for i, p in driver.runs(client, "poison").items()}
    dead = len(driver.failure_records(client))
    assert dead == len(pills) and max(counts.values()) == 3, f"{dead} dead-listed, runs so far: {counts}"
    driver.wait_drained(client, lambda: driver.done_count(client, n), timeout=60)
    acc = driver.account(client, [*range(n), *pills])
    pill_runs = {i: len(pids) for i, pids in driver.runs(client, "poison").items()}
    died = driver.died_children(worker.log_text())
    driver.record(acc.row("os._exit(0) mid-task (poison pill)", started, f"{len(died)} children exited mid-task"))
    assert pill_runs == dict.fromkeys(pills, 3)
    assert acc.lost == set() and set(acc.failed) == set(pills) and acc.done == set(range(n))
    for rec in driver.failure_records(client):
        assert rec["deliveries"] == 3 and "poison pill" in rec["reason"], rec
    assert len(died) == 3 * len(pills), "each exit(0) mid-task is logged as a child dying"
    assert acc.unexplained_duplicates(died) == {}
    assert worker.proc.poll() is None
    worker.wait_ready(children=2)
