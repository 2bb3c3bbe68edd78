"""Replies lost after Redis ran the call (the connection drops between the two), through a TCP proxy that
drops the reply on demand.

A claim: the child's connection reconnects and claims again at once. Both claims happened, so neither may
overwrite the other's in-flight entries, and the tasks of the unanswered claim must come back.

A push, a bulk push, a broadcast and a broadcast relay must not run twice: they are sent at most once (the
caller gets the error). Failing output before the fix (`Conn::run` resent them on the new connection):

    test_push_is_not_sent_twice: AssertionError: the push ran once: [b'...', b'...'] (2 copies)
    test_bulk_push_is_not_sent_twice: AssertionError: 2500 tasks pushed once: 5000 in the queue
    test_broadcast_is_not_published_twice (now test_broadcast_is_not_handed_out_twice): AssertionError: one message: 2
    test_broadcast_relay_is_not_sent_twice: AssertionError: the broadcast ran once: {7: 2}
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.faults import driver
from tests.faults.app import build
from tests.faults.proxy import Proxy
from tests.keyspace import KEYS, pose_as_daemon
from tests.keyspace import consumer as make_consumer
from tests.workers import StartWorker, wait_until
from wakaq import _wakaq
from wakaq.exceptions import BrokerError

pytestmark = pytest.mark.timeout(30)


def test_claim_reply_lost_after_redis_ran_it(redis_url: str, proxy: Proxy) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        producer = _wakaq.Broker(redis_url)
        for i in range(3):
            producer.push("faults", "work", [i], {})
        url = f"redis://127.0.0.1:{proxy.port}/0"
        timeouts = {"wait_timeout": 0.5, "socket_timeout": 2.0, "connect_timeout": 2.0}
        consumer = make_consumer(url, ["faults"], "d1", client=client, **timeouts)
        [first] = consumer.claim([], 1)  # a proven connection, the script loaded
        proxy.drop_next_reply.set()
        second = consumer.claim([first.seq], 1)  # Redis claims task 1, the reply is dropped, the retry claims task 2
        assert proxy.dropped == 1
        held = client.hgetall("wakaq:inflight:d1")
        assert len(held) == 2, f"both claims are in flight, neither overwrote the other: {held}"
        # the next claim hands back what the unanswered claim took; then everything is accounted for
        third = consumer.claim([t.seq for t in second], 3)
        ids = sorted(task.decode()[1][0] for task in [first, *second, *third])
        assert ids == [0, 1, 2]
        consumer.claim([t.seq for t in third], 0)
        assert client.hlen("wakaq:inflight:d1") == 0 and client.llen("wakaq:faults") == 0
    finally:
        client.close()


def _error(call: Callable[[], object]) -> str:
    """The BrokerError text of `call`, '' when it returned."""
    try:
        call()
    except BrokerError as e:
        return str(e)
    return ""


def test_push_is_not_sent_twice(redis_url: str, rclient: redis.Redis, proxy: Proxy) -> None:
    producer = _wakaq.Broker(proxy.url, socket_timeout=2.0)
    producer.push("faults", "work", [0], {})  # a proven connection, the script loaded
    proxy.drop_next_reply.set()
    error = _error(lambda: producer.push("faults", "work", [1], {}))
    assert proxy.dropped == 1
    held = rclient.lrange("wakaq:faults", 1, -1)
    assert len(held) == 1, f"the push ran once: {held} ({len(held)} copies)"
    assert error.startswith("redis unavailable"), "the caller hears that the reply was lost"
    producer.push("faults", "work", [2], {})  # a new connection, no error
    assert rclient.llen("wakaq:faults") == 3


def test_bulk_push_is_not_sent_twice(
    redis_url: str, rclient: redis.Redis, proxy: Proxy, start_worker: StartWorker
) -> None:
    """Then a worker drains the queue: every task runs exactly once."""
    started = time.monotonic()
    n = 2500
    producer = _wakaq.Broker(proxy.url, socket_timeout=2.0)
    producer.ping()
    items = [("faults", "work", [i], {}) for i in range(n)]  # 3 script calls in one pipeline
    proxy.drop_next_reply.set()
    error = _error(lambda: producer.push_many(items))
    queued = rclient.llen("wakaq:faults")
    assert queued == n, f"{n} tasks pushed once: {queued} in the queue"
    assert error
    start_worker(url=redis_url, concurrency=2)
    driver.wait_drained(rclient, lambda: driver.done_count(rclient, n), timeout=60)
    acc = driver.account(rclient, range(n))
    note = "delay_many of 2500 through a proxy that cut the connection after forwarding it; the call raised"
    driver.record(acc.row("connection reset mid-push (delay_many)", started, note))
    assert acc.lost == set() and acc.duplicates == set() and acc.failed == {}


def test_broadcast_is_not_handed_out_twice(redis_url: str, rclient: redis.Redis, proxy: Proxy) -> None:
    producer = _wakaq.Broker(proxy.url, socket_timeout=2.0)
    # NOTE: the script loaded first (no daemon yet: handed to none), so the reply dropped is the script's own
    assert producer.broadcast("work", [0], {}) == 0
    pose_as_daemon(rclient, "listener:1:aa")
    proxy.drop_next_reply.set()
    error = _error(lambda: producer.broadcast("work", [0], {}))
    got = rclient.llen(KEYS.broadcast_queue("listener:1:aa"))
    assert got == 1, f"handed to the daemon once: {got}"
    assert error


def test_an_idle_connection_that_went_stale_is_replaced_before_a_push(
    redis_url: str, rclient: redis.Redis, proxy: Proxy
) -> None:
    """The resend is gone for pushes, not the reconnect: a connection Redis closed while it was idle (a restart,
    an idle timeout) is found stale by a PING and replaced before the push is sent."""
    producer = _wakaq.Broker(proxy.url, socket_timeout=2.0)
    producer.push("faults", "work", [0], {})
    assert proxy.cut() >= 1
    time.sleep(1.1)  # NOTE: past IDLE_PROBE (1 s, rust/src/broker/conn.rs)
    producer.push("faults", "work", [1], {})
    assert rclient.llen("wakaq:faults") == 2


def test_broadcast_relay_is_not_sent_twice(
    redis_url: str, proxy: Proxy, start_worker: StartWorker, tmp_path: Path
) -> None:
    """The parent relays a broadcast published on the channel (by a WakaQ producer) to its children with a push: a
    lost reply must not relay it twice."""
    started = time.monotonic()
    client = redis.Redis.from_url(redis_url)
    try:
        app = build(redis_url)
        worker = start_worker(url=proxy.url, concurrency=1)
        subscribed = lambda: client.pubsub_numsub("wakaq-broadcast")[0][1] >= 1  # noqa: E731
        wait_until(subscribed, what="the daemon to subscribe to broadcasts")
        # NOTE: the push script loaded first, so the relay's first request runs it (not a NOSCRIPT reply)
        app.tasks["work"].delay(6)
        driver.wait_drained(client, lambda: driver.done_count(client, 1), timeout=20)
        # NOTE: only the parent's relay request carries the payload (children claim by seq)
        proxy.drop_after = _wakaq.encode_task("work", [7], {}, 0)
        assert client.publish("wakaq-broadcast", _wakaq.encode_task("work", [7], {}, 0)) == 1
        wait_until(lambda: proxy.drop_after is None, timeout=10, what="the relay to be cut")
        app.tasks["work"].delay(8)
        driver.wait_drained(client, lambda: driver.done_count(client, 3), timeout=20)
        time.sleep(1.0)  # NOTE: proving a negative: no second run of the relayed broadcast
        counts = {i: len(p) for i, p in driver.runs(client).items()}
        acc = driver.account(client, [6, 7])
        driver.record(acc.row("connection reset after a broadcast relay", started))
        assert counts.get(7) == 1, f"the broadcast ran once: {counts}"
        assert worker.proc.poll() is None
    finally:
        client.close()
