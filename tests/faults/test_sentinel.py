"""Redis Sentinel (tests/sentinel.py: a master, a replica, three sentinels on loopback): every client follows a
`redis+sentinel://` URL to the master and to the new master after a failover; kill -9 of the master mid-drain of
5,000 tasks, with durable enqueue on (lost = 0) and off (the count lost, reported as it is).

Runs are recorded in the suite's plain Redis (`WAKAQ_TEST_RECORD_URL`), not in the group that fails over, so the
accounting itself cannot be lost with the master."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.faults import driver
from tests.faults.app import QUEUES, build
from tests.redis_server import in_ci, redis_available
from tests.sentinel import SentinelGroup
from tests.workers import StartScheduler, StartWorker, wait_until
from wakaq.exceptions import BrokerError
from wakaq.sentinel import master_client

pytestmark = pytest.mark.timeout(240)

#: the scheduler's socket timeout (seconds), as in the Redis-restart scenario (tests/faults/test_redis.py)
SOCKET_TIMEOUT = 1.0


@pytest.fixture
def group() -> Iterator[SentinelGroup]:
    if not redis_available():
        if in_ci():
            pytest.fail("redis-server is missing; CI must install it (.ci/run does)")
        pytest.skip("redis-server is not installed")
    g = SentinelGroup()
    try:
        yield g.start()
    finally:
        g.close()


def master(group: SentinelGroup) -> redis.Redis:
    return master_client(group.url, socket_timeout=2, socket_connect_timeout=2)


def start(group: SentinelGroup, start_worker: StartWorker, record: str, name: str) -> None:
    start_worker(url=group.url, name=name, concurrency=2, heartbeat=6, record_url=record)


def test_every_client_follows_the_master_through_a_failover(
    group: SentinelGroup,
    redis_url: str,
    client: redis.Redis,
    start_worker: StartWorker,
    start_scheduler: StartScheduler,
) -> None:
    """Producer, worker children, parent (eta promotion, heartbeat), pub/sub (broadcast), scheduler (a tick every
    second), admin (wakaq-info): on the master before and after kill -9 of the master."""
    app = build(group.url)
    work = app.tasks["work"]
    start(group, start_worker, redis_url, "w")
    start_scheduler("tests.faults.app.wakaq", url=group.url, cron="* * * * * *", socket_timeout=SOCKET_TIMEOUT)
    _rounds(group, work, client)


def _rounds(group: SentinelGroup, work: Any, client: redis.Redis) -> None:
    def round_(base: int) -> None:
        since = int(time.time())
        wait_until(lambda: driver.latest_tick(client) > since, 20, what="a scheduled tick to run")
        work.delay(base)
        work.delay(base + 1, eta=0.5)
        wait_until(lambda: work.broadcast(base + 2) == 1, 15, what="the daemon subscribed")
        ids = {base, base + 1, base + 2}
        wait_until(lambda: ids <= set(driver.runs(client)), 20, what=f"tasks {sorted(ids)} to run")
        env = dict(os.environ, WAKAQ_TEST_URL=group.url)
        out = subprocess.run(
            [sys.executable, "-m", "wakaq", "info", "--app", "tests.faults.app.wakaq"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        assert json.loads(out)["workers"] >= 1, out

    round_(0)
    old = group.kill_master()
    new = group.wait_failover(old)
    assert new != old
    deadline = time.monotonic() + 30
    while True:
        try:
            work.delay(999)  # the producer reconnects through the sentinels
            break
        except BrokerError:
            assert time.monotonic() < deadline, "the producer did not reach the new master"
            time.sleep(0.2)
    round_(10)
    assert master(group).info("server")["tcp_port"] == new


def drain_with_kill(
    group: SentinelGroup, record: redis.Redis, app_url: str, durable: bool, n: int = 5000
) -> tuple[driver.Accounting, dict[str, object]]:
    """Send `n` tasks one `.delay()` at a time (a thread; each id retried until a push is acknowledged) while two
    daemons drain them; kill -9 the master once a fifth were acknowledged, restart it empty once the sentinels
    promoted the replica (it becomes the new replica). Then wait until the queues are empty and the run count
    stops moving, and account."""
    app = build(group.url, durable_enqueue=durable, durable_timeout=1.0)
    work = app.tasks["work"]
    acked: list[int] = []
    errors = {"broker": 0, "durability": 0}

    def produce() -> None:
        for i in range(n):
            deadline = time.monotonic() + 60
            while True:
                try:
                    work.delay(i)
                    acked.append(i)
                    break
                except BrokerError as e:
                    errors["durability" if type(e).__name__ == "DurabilityError" else "broker"] += 1
                    if time.monotonic() > deadline:
                        return
                    time.sleep(0.05)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    wait_until(lambda: len(acked) >= n // 5, 60, what="a fifth of the pushes")
    old = group.kill_master()
    killed_at = len(acked)
    new = group.wait_failover(old)
    group.restart(old)
    producer.join(120)
    assert not producer.is_alive(), "the producer did not finish"
    assert len(acked) == n, f"the producer gave up after {len(acked)} pushes ({errors})"
    m = master(group)
    settle(m, record)
    acc = driver.account(record, acked, queues=QUEUES)
    stats = {"killed after": killed_at, "new master": new, **errors, "pending": pending(m), "in flight": inflight(m)}
    return acc, stats


def pending(m: redis.Redis) -> int:
    return sum(m.llen(f"wakaq:{q}") for q in QUEUES)


def inflight(m: redis.Redis) -> int:
    return sum(m.hlen(k) for k in m.scan_iter("wakaq:inflight:*"))


def settle(m: redis.Redis, record: redis.Redis, quiet: float = 3.0, timeout: float = 90.0) -> None:
    """Until nothing is pending or in flight on the master and the run count did not move for `quiet` seconds
    (tasks lost with the master never run, so "all ran" cannot be the condition)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        try:
            state = record.hlen("runs")
            busy = pending(m) + inflight(m)
        except redis.RedisError:
            time.sleep(0.1)
            continue
        if state != last:
            last, since = state, time.monotonic()
        if busy == 0 and time.monotonic() - since >= quiet:
            return
        time.sleep(0.1)
    raise AssertionError(f"did not settle: pending {pending(m)}, in flight {inflight(m)}, runs {last}")


@pytest.mark.parametrize("durable", [True, False], ids=["durable", "not-durable"])
def test_kill_the_master_mid_drain(
    group: SentinelGroup, redis_url: str, client: redis.Redis, start_worker: StartWorker, durable: bool
) -> None:
    started = time.monotonic()
    start(group, start_worker, redis_url, "a")
    start(group, start_worker, redis_url, "b")
    acc, stats = drain_with_kill(group, client, group.url, durable)
    how = "on" if durable else "off"
    note = ", ".join(f"{k} {v}" for k, v in stats.items())
    driver.record(acc.row(f"sentinel: kill -9 the master mid-drain, durable enqueue {how}", started, note))
    assert acc.failed == {}
    if durable:
        assert acc.lost == set(), f"lost: {sorted(acc.lost)[:20]} ({note})"
    # NOTE: without durable enqueue the lost count is what it is (pushes the master acknowledged and never
    # replicated): the row reports it, nothing asserts it is zero.
