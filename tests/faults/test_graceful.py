"""Graceful stops while short tasks drain: a task that finished before a clean stop must never run again.

A claim cut short by a signal returns [] as if it had run and parks its acks in the Consumer; `_drain` used to
send a final ack only when the Python side still held acks, so a child could exit with finished tasks parked,
still in flight, and the parent requeued them although no child died. The acks are lost only when the
interrupted claim never reached Redis: its connection had to be opened first (the handshake is what the signal
cut). So each round resets the workers' connections (a network blip, through a proxy that also adds 5 ms per
reply, a Redis across a network), SIGTERMs the daemon, and sends a burst of extra SIGTERMs straight to its
children (each interrupts whatever call the child is in, the final ack included).

Failing output before the fix (`_drain` ignoring `Consumer.unsettled`), two runs:

    AssertionError: duplicates on a graceful stop: 12 ids ran twice, e.g. {60: [13219, 13280], 61: [13216, 13279], ...}
    AssertionError: duplicates on a graceful stop: 10 ids ran twice, e.g. {60: [14682, 14633], 61: [14632, 14681], ...}
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import redis

from tests.faults import driver
from tests.faults.app import build
from tests.faults.proxy import Proxy
from tests.workers import StartWorker, wait_until

pytestmark = pytest.mark.timeout(150)

ROUNDS = 12


def _hammer(pids: list[int], until: float) -> int:
    """SIGTERM `pids` in a tight loop (every ~0.2 ms) until they are gone or `until` (a burst: a storm that never
    ends keeps every call of a 5 ms round trip interrupted); returns signals sent."""
    sent = 0
    while time.monotonic() < until:
        alive = [p for p in pids if driver.alive(p)]
        if not alive:
            break
        for pid in alive:
            try:
                os.kill(pid, signal.SIGTERM)
                sent += 1
            except ProcessLookupError:
                pass
        time.sleep(0.0002)
    return sent


# NOTE: 5 ms per reply, a Redis across a network: a child then spends most of its time waiting in a call,
# where a signal interrupts it (on loopback the window is a few microseconds wide)
@pytest.mark.parametrize("proxy", [0.005], indirect=True, ids=["5ms"])
def test_graceful_stops_during_a_drain_run_nothing_twice(
    redis_url: str, client: redis.Redis, start_worker: StartWorker, proxy: Proxy
) -> None:
    started = time.monotonic()
    n = 1500
    app = build(redis_url)
    app.tasks["work"].delay_many(((i, 0.0), {}) for i in range(n))
    signals = 0
    for round_ in range(ROUNDS):
        before = client.hlen("runs")
        if before >= n:
            break
        worker = start_worker(url=proxy.url, name=f"round{round_}-", concurrency=2)
        children = worker.children()
        goal = min(n, before + 60)
        wait_until(lambda: client.hlen("runs") >= goal, timeout=20, what="tasks to run")  # noqa: B023
        proxy.cut()
        worker.signal(signal.SIGTERM)
        signals += _hammer(children, time.monotonic() + 0.1)
        assert worker.wait_exit(20) == 0
        text = worker.log_text()
        assert driver.died_children(text) == set(), text[-2000:]
        assert "killing" not in text, "a graceful stop, not a fast one"
    start_worker(url=redis_url, name="last", concurrency=2)
    driver.wait_drained(client, lambda: driver.done_count(client, n), timeout=60)
    acc = driver.account(client, range(n))
    note = f"{ROUNDS} SIGTERMs mid-drain, {signals} extra SIGTERMs sent to stopping children"
    driver.record(acc.row("graceful stop during a drain", started, note))
    assert acc.lost == set() and acc.failed == {}
    dups = {i: acc.runs[i] for i in sorted(acc.duplicates)}
    assert not dups, f"duplicates on a graceful stop: {len(dups)} ids ran twice, e.g. {dict(list(dups.items())[:3])}"
