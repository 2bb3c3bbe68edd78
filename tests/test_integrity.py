"""Defects of the delivery protocol where the opt-in features meet the core (issue 19), each proven by a real
redis-server and real worker processes."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import pytest
import redis

from tests.keyspace import CLUSTER, KEYS, lua_script
from tests.keyspace import consumer as make_consumer
from tests.workers import StartWorker, events, wait_until
from wakaq._wakaq import Consumer, unpackb
from wakaq.exceptions import BrokerError

pytestmark = pytest.mark.timeout(90)


def _task(meta: object) -> bytes:
    return msgpack.packb({"name": "high", "args": [-1], "kwargs": {}, "retry": 0, "meta": meta})


#: opt-in metas a producer of another version, a bug or a hand-written push can leave in a queue
MALFORMED = {
    "results without id": {"results": 3600},
    "results ttl of the wrong type": {"id": "a1", "results": "3600"},
    "unique that is not a string": {"id": "a2", "unique": 5},
    "absurd results ttl": {"id": "a3", "results": 10**18},
    "meta that is not a map": [1, 2],
    "id that is not a string": {"id": 7, "results": 60},
}


def test_malformed_meta_is_recorded_failed_and_the_queue_keeps_moving(
    app: ModuleType, rclient: redis.Redis, start_worker: StartWorker
) -> None:
    for meta in MALFORMED.values():
        rclient.rpush(KEYS.queue("high"), _task(meta))
    for i in range(14):
        app.high.delay(i)
    worker = start_worker(concurrency=2)
    wait_until(lambda: len(events(rclient, "high")) >= 14, timeout=20, what="the 14 normal tasks")
    wait_until(lambda: rclient.llen(KEYS.failed("high")) >= len(MALFORMED), timeout=10, what="failure records")
    assert worker.proc.poll() is None, "the worker keeps running"
    assert sorted(e["i"] for e in events(rclient, "high")) == list(range(14)), "no malformed task ran"
    records = [unpackb(raw) for raw in rclient.lrange(KEYS.failed("high"), 0, -1)]
    assert len(records) == len(MALFORMED)
    for record in records:
        assert "meta" in record["reason"], record["reason"]
    assert rclient.llen(KEYS.queue("high")) == 0


def test_a_reaped_daemon_that_is_alive_claims_nothing_until_it_registers_again(
    app: ModuleType, rclient: redis.Redis, start_worker: StartWorker
) -> None:
    """Defect 3: a daemon whose parent stalls past heartbeat_timeout is reaped while its children live on. Their
    claims must not go into the in-flight hash no reaper walks any more: killed there, the tasks were lost."""
    stalled = start_worker(name="stalled", heartbeat=3)
    start_worker(name="reaper", heartbeat=3, exclude="high,low,retrying")
    assert len(rclient.smembers(KEYS.daemons)) == 2
    stalled.signal(signal.SIGSTOP)
    wait_until(lambda: len(rclient.smembers(KEYS.daemons)) == 1, timeout=20, what="the stalled daemon reaped")
    for i in range(20):
        app.low.delay(i)
    # the stalled daemon's child is alive and would claim all 20 now; give it time to (not) do so
    wait_until(lambda: rclient.llen(KEYS.queue("low")) < 20 or _quiet(0.5), timeout=5, what="a claim window")
    for pid in [stalled.pid, *stalled.children()]:
        os.kill(pid, signal.SIGKILL)
    stalled.proc.wait(10)
    start_worker(name="later")
    wait_until(lambda: len(events(rclient, "low")) >= 20, timeout=20, what="all 20 tasks run")
    assert sorted({e["i"] for e in events(rclient, "low")}) == list(range(20))


def _quiet(seconds: float) -> bool:
    time.sleep(seconds)
    return True


def test_terminate_is_not_swallowed_by_except_exception(rclient: redis.Redis, start_worker: StartWorker) -> None:
    """Defect 6: `TaskCancelled` was an Exception, so a task's `except Exception` swallowed the admin's terminate and
    the task finished as if nothing had been asked."""
    from wakaq.cancel import Outcome
    from wakaq.constants import CANCELLED_REASON
    from wakaq.ids import new_id

    cancel_app = importlib.import_module("tests.apps.cancel_app")
    start_worker("tests.apps.cancel_app.wakaq")
    task_id = new_id()
    cancel_app.wakaq.broker.push("low", "swallower", [30.0, "s"], {}, 0, {"id": task_id})
    wait_until(lambda: events(rclient, "swallower-start"), what="the task started")
    assert cancel_app.wakaq.cancel(task_id, terminate=True) == Outcome.TERMINATING
    wait_until(lambda: rclient.llen(KEYS.failed("low")) == 1, timeout=10, what="the cancel recorded")
    (record,) = [unpackb(raw) for raw in rclient.lrange(KEYS.failed("low"), 0, -1)]
    assert record["reason"] == CANCELLED_REASON
    assert events(rclient, "swallowed") == []


def test_a_soft_timeout_retry_sends_the_arguments_as_they_were_sent(
    app: ModuleType, rclient: redis.Redis, start_worker: StartWorker
) -> None:
    """Defect 10: the retry after a soft timeout re-encoded the task's live arguments: a task that changed them was
    retried with the changes, and one that left something unencodable crashed its child on every delivery."""
    app.mutating_sleeper.delay([1, 2])
    start_worker()
    wait_until(lambda: rclient.llen(KEYS.failed("retrying")) == 1, timeout=30, what="the retries used up")
    runs = events(rclient, "mutating_sleeper")
    assert [e["items"] for e in runs] == [[1, 2]] * 3, "the first run and its two retries, each as sent"
    (record,) = [unpackb(raw) for raw in rclient.lrange(KEYS.failed("retrying"), 0, -1)]
    assert record["reason"].startswith("soft timeout")


FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def _skewed(seconds: int) -> dict[str, str]:
    """The environment of a process whose clock is `seconds` off (libfaketime, Debian's `faketime` package)."""
    if not FAKETIME.exists():
        if os.environ.get("CI"):
            pytest.fail("libfaketime is missing; CI must install it (make redis-server does)")
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    return {"LD_PRELOAD": str(FAKETIME), "FAKETIME": f"{seconds:+d}", "DONT_FAKE_MONOTONIC": "1"}


def test_a_worker_five_minutes_behind_waits_out_a_retry_backoff(
    rclient: redis.Redis, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 8: the retry's due time came from the child's clock and promotion used Redis's: a worker five minutes
    behind turned every backoff under five minutes into an immediate retry."""
    retry_app = importlib.import_module("tests.apps.retry_app")
    for name, value in _skewed(-300).items():
        monkeypatch.setenv(name, value)
    start_worker("tests.apps.retry_app.wakaq", wait=False)
    monkeypatch.delenv("LD_PRELOAD")
    retry_app.retry_later.delay("k")  # Retry(countdown=1) on its first run
    wait_until(lambda: len(events(rclient, "retry_later")) == 2, timeout=20, what="the retry")
    first, second = events(rclient, "retry_later")
    assert second["t"] - first["t"] >= 0.9, "the retry waited its second (on Redis's clock)"


def test_a_producer_five_minutes_ahead_or_behind_keeps_a_relative_eta(
    rclient: redis.Redis, redis_url: str, start_worker: StartWorker
) -> None:
    """Defect 8, the producer's side: `eta=timedelta(...)` became a due time on the producer's clock."""
    start_worker()
    sent = time.time()
    code = "import tests.apps.worker_app as a, datetime as d; a.low.delay(1, eta=d.timedelta(seconds=2))"
    env = dict(os.environ, WAKAQ_TEST_URL=redis_url, **_skewed(-300))
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=30)
    wait_until(lambda: events(rclient, "low"), timeout=20, what="the eta task")
    (ran,) = events(rclient, "low")
    assert ran["t"] - sent >= 1.8, "due 2 s after it was sent, on Redis's clock"


@pytest.fixture
def acl_consumer(redis_url: str, rclient: redis.Redis) -> Iterator[tuple[Consumer, Callable[[str], None]]]:
    """A Consumer of a registered daemon "d-acl" logging in as its own ACL user, and a way to change what that user
    may run (`allow("-hkeys")`): a Redis that refuses one command stands in for a failure at that exact step."""
    if CLUSTER:
        pytest.skip("one server's ACL")
    rclient.execute_command("ACL", "SETUSER", "worker", "on", ">pw", "~*", "&*", "+@all")
    rclient.sadd(KEYS.daemons, "d-acl")
    url = redis_url.replace("redis://", "redis://worker:pw@")
    consumer = make_consumer(url, ["low"], "d-acl", wait_timeout=0.5, socket_timeout=2.0, connect_timeout=2.0)

    def allow(rule: str) -> None:
        rclient.execute_command("ACL", "SETUSER", "worker", rule)

    try:
        yield consumer, allow
    finally:
        rclient.execute_command("ACL", "DELUSER", "worker")


def _push(rclient: redis.Redis, *tags: str) -> None:
    for tag in tags:
        rclient.rpush(KEYS.queue("low"), msgpack.packb({"name": "low", "args": [tag], "kwargs": {}, "retry": 0}))


def test_acks_survive_a_failed_reconcile(rclient: redis.Redis, acl_consumer: Any) -> None:
    """Defect 4: after a reconnect, `claim` took its acks out of what the child holds and then returned early when
    the reconcile failed: the acks were dropped, and the next reconcile gave the finished task back to its queue."""
    consumer, allow = acl_consumer
    _push(rclient, "a", "b")
    (a, b) = consumer.claim([], 2)
    rclient.execute_command("CLIENT", "KILL", "USER", "worker")
    assert consumer.claim([a.seq], 0) == []  # reconnects; a is acked
    allow("-hkeys")
    with pytest.raises(BrokerError):
        consumer.claim([b.seq], 1)  # b finished; the reconcile after the reconnect is refused
    allow("+hkeys")
    assert consumer.claim([], 1) == [], "b finished: it must not be given back and claimed again"
    assert rclient.hlen(KEYS.inflight("d-acl")) == 0
    assert rclient.llen(KEYS.queue("low")) == 0


def test_a_settle_that_has_not_landed_keeps_its_task(rclient: redis.Redis, acl_consumer: Any) -> None:
    """Defect 5: `fail()` forgot the task before its call landed; a reconcile during the outage gave the task back
    to its queue, and the settle, once Redis answered, found nothing to settle: no failure record, a rerun."""
    consumer, allow = acl_consumer
    _push(rclient, "x")
    (task,) = consumer.claim([], 1)
    allow("-hget")  # finish.lua reads the entry with HGET: the settle is refused
    with pytest.raises(BrokerError):
        consumer.fail(task, "ValueError: boom", "")
    rclient.execute_command("CLIENT", "KILL", "USER", "worker")
    consumer.claim([], 0)  # reconnects
    assert consumer.claim([], 1) == [], "the task being settled is not given back"
    allow("+hget")
    consumer.fail(task, "ValueError: boom", "")
    assert rclient.llen(KEYS.failed("low")) == 1
    assert rclient.hlen(KEYS.inflight("d-acl")) == 0
    assert rclient.llen(KEYS.queue("low")) == 0


def test_the_parent_settles_a_hard_timeout_whose_reply_is_lost(
    rclient: redis.Redis, redis_url: str, start_worker: StartWorker
) -> None:
    """Defect 7: the parent recorded a task killed past its hard timeout (finish.lua) and then settled its result
    record and lock, in one resendable closure: when the first reply was lost, the resend found the task settled and
    skipped the rest. The record said "running" until its TTL, the lock was held until its own."""
    from tests.faults.proxy import Proxy
    from wakaq.exceptions import TaskFailed

    together = importlib.import_module("tests.apps.together_app")
    # NOTE: loaded, so the first EVALSHA runs it (no NOSCRIPT round)
    sha = rclient.script_load(lua_script("finish.lua"))
    proxy = Proxy(int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    try:
        start_worker("tests.apps.together_app.wakaq", url=proxy.url)
        proxy.drop_after = sha.encode()  # the reply to the parent's finish.lua is lost once
        handle = together.past_hard_timeout.delay("s")
        with pytest.raises(TaskFailed) as failed:
            handle.result(timeout=20)
        assert failed.value.error_type == "HardTimeout"
        assert proxy.dropped == 1
        assert not list(rclient.scan_iter(KEYS.unique("*"))), "the lock is released"
    finally:
        proxy.close()


def _broadcast_records(rclient: redis.Redis) -> list[dict[str, Any]]:
    return [unpackb(raw) for raw in rclient.lrange(KEYS.broadcast_failed, 0, -1)]


def test_a_broadcast_handed_to_a_daemon_that_dies_is_recorded(
    app: ModuleType, rclient: redis.Redis, start_worker: StartWorker
) -> None:
    """Found by the fault campaign (seed 751249243: 20 broadcasts lost): a broadcast was published on a channel and
    relayed by each daemon's parent into its children's list; a daemon that died in between (or whose list the
    reaper deleted) lost it, while `.broadcast()` had counted it. Now it is pushed onto every live daemon's list in
    one script, and what a dead daemon never ran is recorded failed."""
    doomed = start_worker(name="doomed", heartbeat=3)
    start_worker(name="live", heartbeat=3)
    wait_until(lambda: rclient.scard(KEYS.daemons) == 2, what="two registered daemons")
    doomed_id = next(d.decode() for d in rclient.smembers(KEYS.daemons) if f":{doomed.pid}:".encode() in d)
    frozen = [doomed.pid, *doomed.children()]
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    handed = app.bcast.broadcast("b1")
    wait_until(lambda: events(rclient, "bcast"), what="the live daemon's run")
    for pid in frozen:
        os.kill(pid, signal.SIGKILL)
    doomed.proc.wait(10)
    records = wait_until(lambda: _broadcast_records(rclient), timeout=20, what="the dead daemon's broadcast recorded")
    ran = events(rclient, "bcast")
    assert (handed, len(ran), len(records)) == (2, 1, 1), "handed to 2 daemons: 1 ran it, 1 recorded it, 0 lost"
    [record] = records
    assert record["reason"].startswith(f"WorkerLost: daemon {doomed_id} was reaped"), record["reason"]
    assert unpackb(record["payload"])["args"] == ["b1"]
    assert not rclient.exists(KEYS.broadcast_queue(doomed_id))


def test_a_broadcast_left_when_a_daemon_stops_is_recorded(
    app: ModuleType, rclient: redis.Redis, start_worker: StartWorker
) -> None:
    """A daemon stopped (SIGTERM) while its only child is busy leaves the broadcast it was handed unrun: recorded
    failed with the reason, never dropped."""
    worker = start_worker(concurrency=1)
    app.sleeper.delay(1.0, "busy")
    wait_until(lambda: events(rclient, "sleeper-start"), what="the child busy")
    handed = app.bcast.broadcast("b2")
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit() == 0
    records = _broadcast_records(rclient)
    assert (handed, len(events(rclient, "bcast")), len(records)) == (1, 0, 1), "1 handed, 0 ran, 1 recorded"
    assert records[0]["reason"].startswith("WorkerStopped: daemon "), records[0]["reason"]
    assert events(rclient, "sleeper-end"), "the running task finished first"
    assert rclient.scard(KEYS.daemons) == 0
