"""Tasks parked by a task rate limit (issue 19, defect 2): the per-app registry of parked lists (`<ns>:parked`,
members "<queue>\\x1f<task>") finds them without the config that parked them: `wakaq-info` and the dashboard count
them, purge and cancel remove them, and a daemon that does not limit the task moves them back to the front of their
queue. Real redis-server, real `wakaq-worker` daemons (tests/apps/parked_app.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pytest

from tests.keyspace import KEYS, lua_script
from tests.keyspace import consumer as make_consumer
from tests.workers import StartWorker, Worker, wait_until
from wakaq import Queue, _wakaq
from wakaq.admin import inspect, purge
from wakaq.cancel import cancel_task, list_tasks
from wakaq.exceptions import WakaQError
from wakaq.keys import Keys
from wakaq.ratelimit import to_rate
from wakaq.stats import snapshot

pytestmark = [pytest.mark.timeout(120), pytest.mark.app("tests.apps.parked_app")]

APP = "tests.apps.parked_app"
MEMBER = b"default\x1fsend"


def ran(rclient: Any) -> list[str]:
    return [raw.decode() for raw in rclient.lrange("ran", 0, -1)]


@contextmanager
def running(start_worker: StartWorker, name: str, **options: Any) -> Iterator[Worker]:
    """A daemon of the shared factory, stopped gracefully when the block ends (a deploy that replaces it)."""
    worker = start_worker(name=name, **options)
    try:
        yield worker
    finally:
        worker.stop()


def last_seen(app: ModuleType, rclient: Any) -> float:
    """When the one daemon last published its info (Redis time)."""
    return float(snapshot(app.wakaq, rclient)["daemons"][0]["last_seen"] or 0)


def park(app: ModuleType, start_worker: StartWorker, rclient: Any, n: int = 200) -> None:
    """`n` send tasks through a daemon limiting send to 1/m: the first runs, the others are parked; then the daemon
    stops (a deploy that removes the limit)."""
    app.wakaq.broker.push_many([("default", "send", [i], {}) for i in range(n)])
    with running(start_worker, "limited", task_rate="1/m"):
        wait_until(lambda: rclient.llen(KEYS.parked("default", "send")) == n - 1, timeout=30, what="parked tasks")
    assert ran(rclient) == ["send:0"]
    assert rclient.llen(KEYS.queue("default")) == 0


def test_parked_tasks_run_in_order_at_the_front_once_their_limit_is_gone(
    app: ModuleType, start_worker: StartWorker, rclient: Any
) -> None:
    park(app, start_worker, rclient)
    app.wakaq.broker.push_many([("default", "free", [i], {}) for i in range(5)])
    with running(start_worker, "unlimited"):
        wait_until(lambda: len(ran(rclient)) >= 205, timeout=30, what="all 205 tasks")
    want = [f"send:{i}" for i in range(200)] + [f"free:{i}" for i in range(5)]
    assert ran(rclient) == want, "released to the front of the queue, in their order"
    assert rclient.exists(KEYS.parked("default", "send")) == 0
    assert rclient.smembers(KEYS.parked_registry) == set(), "whoever empties a parked list unregisters it"


def test_release_is_bounded_per_call_and_keeps_the_order(
    app: ModuleType, start_worker: StartWorker, rclient: Any
) -> None:
    park(app, start_worker, rclient, n=2500)
    with running(start_worker, "unlimited"):
        wait_until(lambda: len(ran(rclient)) >= 2500, timeout=60, what="all 2500 tasks")
    assert ran(rclient) == [f"send:{i}" for i in range(2500)]


def test_a_daemon_registers_its_lists_again_on_the_way_out(
    app: ModuleType, start_worker: StartWorker, rclient: Any
) -> None:
    """During a rolling deploy a daemon without the limit releases the parked list and unregisters it once empty,
    and the old daemon's children park tasks there again at once: until its parent registers the list again (next
    heartbeat) it is not in the registry. A graceful stop then must not leave it unregistered."""
    app.wakaq.broker.push_many([("default", "send", [i], {}) for i in range(50)])
    with running(start_worker, "old", task_rate="1/m"):
        wait_until(lambda: rclient.llen(KEYS.parked("default", "send")) == 49, timeout=30, what="parked tasks")
        rclient.srem(KEYS.parked_registry, MEMBER)  # NOTE: as after such a release and a park again
    assert rclient.smembers(KEYS.parked_registry) == {MEMBER}
    with running(start_worker, "new"):
        wait_until(lambda: len(ran(rclient)) >= 50, timeout=30, what="all 50 tasks")


def test_a_daemon_that_limits_the_task_registers_its_lists_and_keeps_them(
    app: ModuleType, start_worker: StartWorker, rclient: Any
) -> None:
    app.wakaq.broker.push_many([("default", "send", [i], {}) for i in range(20)])
    with running(start_worker, "limited", task_rate="1/m"):
        wait_until(lambda: rclient.llen(KEYS.parked("default", "send")) == 19, timeout=30, what="parked tasks")
        assert rclient.smembers(KEYS.parked_registry) == {MEMBER}
        seen = last_seen(app, rclient)
        wait_until(lambda: last_seen(app, rclient) > seen + 1, timeout=10, what="a later heartbeat")
        assert rclient.llen(KEYS.parked("default", "send")) == 19, "its own limit: nothing released"
    assert ran(rclient) == ["send:0"]


def test_parked_tasks_count_as_pending_without_the_limit(
    app: ModuleType, start_worker: StartWorker, rclient: Any
) -> None:
    park(app, start_worker, rclient)
    assert app.wakaq.tasks["send"].rate_limit is None, "this process sees the config without the limit"
    assert snapshot(app.wakaq, rclient)["queues"]["default"]["pending_tasks"] == 199
    assert inspect(app.wakaq, rclient)["parked"] == {"default": {"send": 199}}


def test_cancel_finds_parked_tasks_without_the_limit(app: ModuleType, start_worker: StartWorker, rclient: Any) -> None:
    park(app, start_worker, rclient)
    listed = list_tasks(app.wakaq, rclient, name="send", limit=500)
    assert len(listed) == 199 and {t["state"] for t in listed} == {"parked"}
    assert cancel_task(app.wakaq, "send", r=rclient) == 199
    assert rclient.llen(KEYS.failed("default")) == 199


def test_purge_empties_parked_lists_without_the_limit(app: ModuleType, start_worker: StartWorker, rclient: Any) -> None:
    park(app, start_worker, rclient)
    app.wakaq.broker.push_many([("default", "free", [i], {}) for i in range(5)])
    assert purge(app.wakaq, rclient, "default") == {"queue": "default", "purged_tasks": 204, "purged_eta_tasks": 0}
    assert rclient.exists(KEYS.parked("default", "send"), KEYS.queue("default")) == 0
    assert rclient.smembers(KEYS.parked_registry) == set()


@pytest.mark.parametrize("cluster", [False, True])
def test_registry_keys_agree_with_rust(cluster: bool) -> None:
    layout, keys = _wakaq.key_layout("app", cluster), Keys("app", cluster)
    assert layout["parked_registry"] == keys.parked_registry == ("{app}:parked" if cluster else "app:parked")
    assert layout["parked_member"] == keys.parked_member("{queue}", "{task}") == "{queue}\x1f{task}"
    assert keys.parse_parked_member(b"q\x1fsend") == ("q", "send")
    assert keys.parse_parked_member(b"q:send") is None


def test_a_queue_cannot_be_named_like_the_registry() -> None:
    with pytest.raises(WakaQError, match="collides"):
        Queue("parked")


def test_the_claim_registers_what_it_parks(redis_url: str, rclient: Any) -> None:
    rate = to_rate("1/m", "test")
    assert rate is not None
    limits = [("send", *rate.script_args())]
    c = make_consumer(redis_url, ["default"], "host:1:pk", client=rclient, socket_timeout=5.0, task_rates=limits)
    _wakaq.Broker(redis_url).push_many([("default", "send", [i], {}) for i in range(3)])
    assert len(c.claim([], 8)) == 1
    assert rclient.llen(KEYS.parked("default", "send")) == 2
    assert rclient.smembers(KEYS.parked_registry) == {MEMBER}


def test_claim_limited_keeps_the_registry_when_given_its_key(redis_url: str, rclient: Any) -> None:
    """The script itself, as scripts.rs builds it, with the registry as its last key: a claim
    that parks registers the list, the claim that empties it unregisters it."""
    script = lua_script("claim_limited.lua")
    rate = to_rate("10/s", "test")
    assert rate is not None and rate.burst == 1
    queues = ["bcast:x", "default"]
    keys = [KEYS.inflight("x"), *(KEYS.queue(q) for q in queues), *(KEYS.bell(q) for q in queues)]
    keys += [*(KEYS.rate_queue(q) for q in queues), KEYS.rate_task("send"), KEYS.parked("default", "send")]
    keys.append(KEYS.parked_registry)
    # NOTE: then no per-key concurrency limit (c = 0), the queue and bell key prefixes, no settled keys (r = 0)
    head = ["1:", 0, 8, 0, len(queues), 1, 1_000_000, *queues, 0, 0, 0, 0, "send", *rate.script_args()]
    head += [0, KEYS.queue(""), KEYS.bell(""), 0]
    _wakaq.Broker(redis_url).push_many([("default", "send", [i], {}) for i in range(3)])
    seq = 0

    def claim() -> list[Any]:
        nonlocal seq
        seq += 8
        head[1] = seq
        return list(rclient.eval(script, len(keys), *keys, *head))

    assert claim()[0] == 1, "one claimed from queue index 1"
    assert rclient.llen(KEYS.parked("default", "send")) == 2
    assert rclient.smembers(KEYS.parked_registry) == {MEMBER}
    wait_until(lambda: claim()[0] == 1, timeout=2, interval=0.05, what="the next token")
    assert rclient.smembers(KEYS.parked_registry) == {MEMBER}, "one still parked"
    wait_until(lambda: claim()[0] == 1, timeout=2, interval=0.05, what="the last token")
    assert rclient.exists(KEYS.parked("default", "send")) == 0
    assert rclient.smembers(KEYS.parked_registry) == set()
