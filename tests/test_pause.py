"""Pausing and resuming a queue (issue 22, item 3): the set `<ns>:paused`, read inside claim.lua and
claim_limited.lua, stops every daemon claiming from a queue within one claim; pushes and eta promotion go on; a resume
rings the queue's bell. Real redis-server, the Rust `Broker`/`Consumer`, and real `wakaq-worker` daemons
(tests/apps/worker_app.py)."""

from __future__ import annotations

import json
from collections import Counter
from types import ModuleType

import msgpack
import pytest
import redis

from tests.keyspace import KEYS
from tests.keyspace import consumer as make_consumer
from tests.workers import StartWorker, events, wait_until
from wakaq import _wakaq
from wakaq.admin import inspect
from wakaq.exceptions import WakaQError
from wakaq.metrics import render_metrics
from wakaq.ratelimit import to_rate
from wakaq.stats import snapshot
from wakaq.watch import render

pytestmark = [pytest.mark.timeout(120), pytest.mark.app("tests.apps.worker_app")]

DAEMON = "host:1:pause"


def payload(i: int, name: str = "t") -> bytes:
    return msgpack.packb({"name": name, "args": [i], "kwargs": {}, "retry": 0})


# ---- the claim scripts ------------------------------------------------------------------------------------------


def test_claim_skips_a_paused_queue_and_a_resume_claims_it_again(redis_url: str, rclient: redis.Redis) -> None:
    broker = _wakaq.Broker(redis_url, socket_timeout=5)
    consumer = make_consumer(redis_url, ["high", "low"], DAEMON, client=rclient, socket_timeout=5.0)
    assert broker.pause("high") is True
    assert broker.pause("high") is False, "already paused"
    broker.push_raw("high", payload(1))
    broker.push_raw("low", payload(2))
    claimed = consumer.claim([], 5)
    assert [(t.queue, t.payload) for t in claimed] == [("low", payload(2))], "strict priority skips the paused queue"
    assert consumer.claim([claimed[0].seq], 5) == []
    assert rclient.lrange(KEYS.queue("high"), 0, -1) == [payload(1)], "a paused queue keeps its tasks"
    assert broker.resume("high") is True
    assert broker.resume("high") is False, "already running"
    assert [(t.queue, t.payload) for t in consumer.claim([], 5)] == [("high", payload(1))]


def test_a_paused_queue_still_rings_and_a_resume_wakes_an_idle_child(redis_url: str, rclient: redis.Redis) -> None:
    broker = _wakaq.Broker(redis_url, socket_timeout=5)
    consumer = make_consumer(redis_url, ["low"], DAEMON, client=rclient, socket_timeout=5.0)
    broker.pause("low")
    broker.push_raw("low", payload(1))
    assert consumer.wait(0.01) is True, "the push rang, as always"
    assert consumer.claim([], 5) == []
    assert consumer.wait(0.05) is False, "an empty claim of a paused queue does not ring again (no spin)"
    broker.resume("low")
    assert consumer.wait(0.01) is True, "the resume rang the bell"
    assert [t.payload for t in consumer.claim([], 5)] == [payload(1)]
    assert broker.resume("low") is False
    assert rclient.llen(KEYS.bell("low")) == 0, "a resume of a running queue rings nothing"


def test_claim_limited_skips_a_paused_queue_and_its_parked_tasks(redis_url: str, rclient: redis.Redis) -> None:
    """With a rate limit the child runs claim_limited.lua: a paused queue is neither claimed (its parked list
    neither) nor reported starved, so the child does not wake early for it."""
    rate = to_rate("1/m", "test")
    assert rate is not None
    limits = [("send", *rate.script_args())]
    consumer = make_consumer(redis_url, ["high", "low"], DAEMON, client=rclient, socket_timeout=5.0, task_rates=limits)
    broker = _wakaq.Broker(redis_url, socket_timeout=5)
    broker.push_many([("low", "send", [i], {}) for i in range(3)])
    assert len(consumer.claim([], 8)) == 1
    assert rclient.llen(KEYS.parked("low", "send")) == 2
    assert consumer.claim([], 8) == [] and consumer.budget_wait is not None, "out of budget: the child waits"
    broker.pause("low")
    broker.push_many([("low", "other", [i], {}) for i in range(2)])
    broker.push_raw("high", payload(7))
    assert [t.queue for t in consumer.claim([], 8)] == ["high"]
    assert consumer.claim([], 8) == []
    assert consumer.budget_wait is None, "a paused queue is not starved: nothing to wait for"
    assert (rclient.llen(KEYS.queue("low")), rclient.llen(KEYS.parked("low", "send"))) == (2, 2)
    broker.resume("low")
    assert [t.decode()[0] for t in consumer.claim([], 8)] == ["other", "other"], "unlimited tasks run again at once"


def test_pause_refuses_an_unknown_queue(app: ModuleType, rclient: redis.Redis) -> None:
    with pytest.raises(WakaQError, match="unknown queue 'nope'"):
        app.wakaq.pause("nope")
    assert rclient.exists(KEYS.paused) == 0


# ---- every daemon -----------------------------------------------------------------------------------------------


def ran(rclient: redis.Redis, task: str) -> Counter[int]:
    return Counter(e["i"] for e in events(rclient, task))


def inflight(rclient: redis.Redis) -> int:
    return sum(rclient.hlen(k) for k in rclient.keys(KEYS.inflight("*")))


def test_pause_stops_every_daemon_and_resume_runs_each_task_once(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    """Two daemons of two children: a pause lets the running task finish, stops claims from the queue on both,
    leaves every task pushed or promoted meanwhile pending while the other queues run; the resume runs each of them
    exactly once."""
    wq = app.wakaq
    workers = [start_worker(name=f"d{n}", concurrency=2) for n in range(2)]
    app.sleeper.delay(1.0, tag="running")
    wait_until(lambda: events(rclient, "sleeper-start"), what="the running task")
    assert wq.pause("low") is True
    for i in range(40):
        app.low.delay(i)
    # NOTE: due after 2 x the children's wait_timeout (0.5 s): by its promotion every idle child of both daemons
    # has claimed again at least once after the pause (a BLPOP on the bells ends within wait_timeout)
    app.eta_task.delay(0.0, eta=1.2)
    for i in range(20):
        app.high.delay(i)
    wait_until(lambda: sum(ran(rclient, "high").values()) == 20, what="the other queue's tasks")
    wait_until(lambda: events(rclient, "sleeper-end"), what="the running task's end")
    wait_until(lambda: rclient.zcard(KEYS.eta("low")) == 0, what="the eta task promoted into the paused queue")
    for i in range(20, 28):  # and claims that skip the paused queue to reach these
        app.high.delay(i)
    wait_until(lambda: sum(ran(rclient, "high").values()) == 28 and inflight(rclient) == 0, what="high drained")
    assert rclient.llen(KEYS.queue("low")) == 41, "40 pushed + 1 promoted, all pending"
    assert events(rclient, "low") == [] and events(rclient, "eta") == []
    busy = {e["pid"] for e in events(rclient, "high")}
    children = {pid for worker in workers for pid in worker.children()}
    assert len(children) == 4 and busy <= children

    assert wq.resume("low") is True
    wait_until(lambda: sum(ran(rclient, "low").values()) == 40 and events(rclient, "eta"), what="the resumed queue")
    wait_until(lambda: inflight(rclient) == 0 and rclient.llen(KEYS.queue("low")) == 0, what="acks")
    assert ran(rclient, "low") == Counter(range(40)), "each task exactly once"
    assert ran(rclient, "high") == Counter(range(28))
    assert len(events(rclient, "eta")) == 1
    assert [len(events(rclient, t)) for t in ("sleeper-start", "sleeper-end")] == [1, 1]
    assert all(rclient.llen(KEYS.failed(q.name)) == 0 for q in wq.queues)
    for worker in workers:
        assert worker.stop() == 0


def test_info_watch_and_metrics_show_paused_queues(app: ModuleType, rclient: redis.Redis) -> None:
    wq = app.wakaq
    wq.pause("medium")
    info = json.loads(json.dumps(inspect(wq, rclient)))
    assert {n: q["paused"] for n, q in info["queues"].items()} == {
        "high": False,
        "medium": True,
        "retrying": False,
        "low": False,
    }
    screen = render(snapshot(wq, rclient), None).splitlines()  # wakaq-info --watch
    assert [line.split()[:2] for line in screen if line.startswith(("medium", "high"))] == [
        ["high", "0"],
        ["medium", "PAUSED"],
    ]
    text = render_metrics(wq, rclient)
    assert 'wakaq_queue_paused{queue="medium"} 1\n' in text
    assert 'wakaq_queue_paused{queue="high"} 0\n' in text
    assert "# TYPE wakaq_queue_paused gauge" in text
    wq.resume("medium")
    assert 'wakaq_queue_paused{queue="medium"} 0\n' in render_metrics(wq, rclient)


def test_pause_in_eager_mode_changes_nothing() -> None:
    """Eager tasks run inside their .delay(): nothing is claimed, so nothing to pause (and no Redis is touched)."""
    from wakaq import WakaQ

    eager = WakaQ(queues=["low"], eager=True, url="redis://127.0.0.1:1/0")
    assert eager.pause("low") is False and eager.resume("low") is False
    with pytest.raises(WakaQError, match="unknown queue"):
        eager.pause("nope")
