"""Durable enqueue against a real master and replica (`--replicaof`) on loopback: WAIT confirmed while the replica
is up, a clear `DurabilityError` when it is paused (SIGSTOP) or stopped."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from tests.redis_server import SERVER_ENV, RedisServer, in_ci, redis_available
from tests.workers import wait_until
from wakaq import WakaQ, _wakaq
from wakaq.exceptions import BrokerError, DurabilityError, WakaQError

pytestmark = pytest.mark.timeout(60)


@dataclass
class Pair:
    master: RedisServer
    replica: RedisServer

    def client(self, server: RedisServer) -> redis.Redis:
        return redis.Redis(port=server.port)


def start_replica(master: RedisServer) -> RedisServer:
    replica = RedisServer("--save", "", "--appendonly", "no", "--replicaof", "127.0.0.1", str(master.port)).start()
    client = redis.Redis(port=replica.port)
    try:
        wait_until(lambda: client.info("replication").get("master_link_status") == "up", 10, what="replica link")
    finally:
        client.close()
    return replica


@pytest.fixture
def pair() -> Iterator[Pair]:
    if not redis_available():
        if in_ci():
            pytest.fail("redis-server is missing; CI must install it (.ci/run does)")
        pytest.skip("redis-server is not installed")
    # NOTE: no 5 s diskless-sync delay before the replica's first sync
    master = RedisServer("--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0").start()
    replica = None
    try:
        replica = start_replica(master)
        yield Pair(master, replica)
    finally:
        if replica is not None:
            if replica.proc is not None:
                os.kill(replica.proc.pid, signal.SIGCONT)
            replica.cleanup()
        master.cleanup()


def make_app(url: str, **options: object) -> WakaQ:
    app = WakaQ(queues=["q"], url=url, **options)  # type: ignore[arg-type]

    @app.task
    def job(x: int, durable: object = None) -> None:
        """A task with its own `durable` keyword: `.delay(durable=...)` must pass it through."""

    del job
    return app


def test_confirmed_while_the_replica_is_up(pair: Pair) -> None:
    app = make_app(pair.master.url, durable_enqueue=True, durable_timeout=2)
    job = app.tasks["job"]
    job.delay(1)
    job.delay(2, eta=3600)
    assert job.delay_many([((i,), {}) for i in range(3, 103)]) == 100
    replica = pair.client(pair.replica)
    # NOTE: WAIT returned, so the replica has applied every push already: no polling.
    assert replica.llen("wakaq:q") == 101
    assert replica.zcard("wakaq:eta:q") == 1


def test_durability_error_when_the_replica_is_paused(pair: Pair) -> None:
    """SIGSTOP the replica: it stays connected but confirms nothing. The error names the counts and the time; the
    push is on the master (so the task may run: the message says so)."""
    app = make_app(pair.master.url, durable_enqueue=True, durable_timeout=0.3, socket_timeout=0.2)
    job = app.tasks["job"]
    assert pair.replica.proc is not None
    os.kill(pair.replica.proc.pid, signal.SIGSTOP)
    for send in (lambda: job.delay(1), lambda: job.delay(2, eta=60), lambda: job.delay_many([((3,), {})])):
        started = time.monotonic()
        with pytest.raises(DurabilityError) as info:
            send()
        # NOTE: the wait (0.3 s) outlasts the socket timeout (0.2 s): the read timeout is stretched for WAIT.
        assert time.monotonic() - started >= 0.29
        assert isinstance(info.value, BrokerError)
        assert (info.value.confirmed, info.value.wanted, info.value.timeout) == (0, 1, 0.3)
        text = str(info.value)
        assert "only 0 of 1 replica(s) confirmed the push within 300 ms" in text, text
        assert "may still run" in text, text
    master = pair.client(pair.master)
    assert master.llen("wakaq:q") == 2 and master.zcard("wakaq:eta:q") == 1
    os.kill(pair.replica.proc.pid, signal.SIGCONT)
    patient = make_app(pair.master.url, durable_enqueue=True, durable_timeout=5)
    patient.tasks["job"].delay(4)  # the replica is back: confirmed again


def test_durability_error_when_the_replica_is_stopped(pair: Pair) -> None:
    app = make_app(pair.master.url, durable_enqueue=1, durable_timeout=0.2)
    pair.replica.stop()
    master = pair.client(pair.master)
    wait_until(lambda: master.info("replication")["connected_slaves"] == 0, 10, what="the replica gone")
    with pytest.raises(DurabilityError, match="only 0 of 1 replica"):
        app.tasks["job"].delay(1)


def test_per_call_on_and_off(pair: Pair) -> None:
    """App off: `.delay()` is plain (fast even with the replica paused); `delay_with_options(durable=...)` and
    `delay_many(durable=...)` opt in per call. App on: `durable=False` opts out. Asking for more replicas than
    exist names both numbers."""
    # NOTE: calls that must be confirmed get seconds (a loaded machine delays the replica); the others fail anyway.
    off = make_app(pair.master.url, durable_timeout=2)
    on = make_app(pair.master.url, durable_enqueue=True, durable_timeout=2)
    off.tasks["job"].delay_with_options((1,), durable=True)
    with pytest.raises(DurabilityError, match="only 1 of 2 replica"):
        off.tasks["job"].delay_with_options((2,), durable=2)
    assert pair.replica.proc is not None
    os.kill(pair.replica.proc.pid, signal.SIGSTOP)
    started = time.monotonic()
    off.tasks["job"].delay(3)
    off.tasks["job"].delay_many([((4,), {})])
    on.tasks["job"].delay_with_options((5,), durable=False)
    on.tasks["job"].delay_many([((6,), {})], durable=False)
    assert time.monotonic() - started < 0.2, "a push without durable enqueue waited"
    with pytest.raises(DurabilityError):
        off.tasks["job"].delay_with_options((7,), {"durable": "x"}, queue="q", durable=True)
    with pytest.raises(DurabilityError):
        off.tasks["job"].delay_many([((8,), {})], durable=True)


def test_delay_keeps_a_task_keyword_named_durable(redis_url: str, rclient: redis.Redis) -> None:
    """`durable` is not reserved in `.delay()`: it reaches the task as its own keyword argument."""
    app = make_app(redis_url)
    app.tasks["job"].delay(1, durable=True)
    _name, args, kwargs, _retry = _wakaq.decode_task(rclient.lpop("wakaq:q"))  # type: ignore[arg-type]
    assert (args, kwargs) == ([1], {"durable": True})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"durable_enqueue": -1}, "durable_enqueue must be True, False or a number of replicas"),
        ({"durable_enqueue": "yes"}, "durable_enqueue must be True, False or a number of replicas"),
        ({"durable_timeout": 0}, "durable_timeout must be a positive number of seconds"),
    ],
)
def test_invalid_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(WakaQError, match=message):
        make_app("redis://127.0.0.1:1/0", **options)


def test_invalid_per_call_value() -> None:
    app = make_app("redis://127.0.0.1:1/0")
    with pytest.raises(WakaQError, match="durable must be True, False or a number"):
        app.tasks["job"].delay_with_options((1,), durable=-2)


def test_the_suite_runs_on_the_server_it_was_given(rclient: redis.Redis) -> None:
    """`make test-valkey*` really runs on valkey-server (not a redis-server found on PATH)."""
    wanted = os.environ.get(SERVER_ENV, "")
    info = rclient.info("server")
    if "valkey" in wanted:
        assert info.get("server_name") == "valkey", info
    else:
        assert "redis_version" in info
