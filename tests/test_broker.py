"""The delivery protocol's Redis side, driven through the Rust `Broker` and `Consumer` against a real Redis."""

from __future__ import annotations

import ast
import re
import threading
import time
from pathlib import Path

import msgpack
import pytest
import redis

from tests.keyspace import KEYS, lua_script, pose_as_daemon
from tests.keyspace import consumer as make_consumer
from tests.redis_server import free_port
from wakaq import _wakaq
from wakaq.exceptions import BrokerError
from wakaq.keys import Keys

DAEMON = "host:1:abc"


def payload(i: int, name: str = "t") -> bytes:
    return msgpack.packb({"name": name, "args": [i], "kwargs": {}, "retry": 0})


@pytest.fixture
def broker(redis_url: str) -> _wakaq.Broker:
    return _wakaq.Broker(redis_url, socket_timeout=5)


@pytest.fixture
def consumer(redis_url: str, rclient: redis.Redis) -> _wakaq.Consumer:
    return make_consumer(redis_url, ["high", "low"], DAEMON, client=rclient, socket_timeout=5.0)


@pytest.mark.parametrize("cluster", [False, True])
def test_key_layout_matches_python_keys(cluster: bool) -> None:
    layout = _wakaq.key_layout("wakaq", cluster)
    keys = Keys("wakaq", cluster)
    assert layout["queue"] == ("{wakaq}:{queue}" if cluster else "wakaq:{queue}")
    assert layout["queue"] == keys.queue("{queue}")
    assert layout["eta"] == keys.eta("{queue}")
    assert layout["bell"] == keys.bell("{queue}")
    assert layout["failed"] == keys.failed("{queue}")
    assert layout["broadcast_queue"] == keys.broadcast_queue("{daemon}")
    assert layout["inflight"] == keys.inflight("{daemon}")
    assert layout["heartbeat"] == keys.heartbeat("{daemon}")
    assert layout["daemons"] == keys.daemons
    assert layout["paused"] == keys.paused == f"{keys.namespace}:paused"
    assert layout["daemon_info"] == keys.daemon_info("{daemon}")
    assert layout["stats"] == keys.stats("{daemon}")
    assert layout["stats_retired"] == keys.stats_retired
    assert layout["broadcast_channel"] == keys.broadcast_channel
    assert layout["eta_channel"] == keys.eta_channel
    assert layout["control_channel"] == keys.control_channel == "wakaq-control"
    assert _wakaq.key_layout("app")["control_channel"] == Keys("app").control_channel == "app-control"
    assert layout["rate_queue"] == keys.rate_queue("{queue}")
    assert layout["rate_task"] == keys.rate_task("{task}")
    assert layout["parked"] == keys.parked("{queue}", "{task}")
    assert layout["result"] == keys.result("{id}")
    assert layout["result_ready"] == keys.result_ready("{id}")


def test_push_appends_and_rings_the_bell_once(broker: _wakaq.Broker, rclient: redis.Redis) -> None:
    for i in range(3):
        broker.push_raw("low", payload(i))
    assert rclient.lrange(KEYS.queue("low"), 0, -1) == [payload(0), payload(1), payload(2)]
    assert rclient.lrange(KEYS.bell("low"), 0, -1) == [b"1"]


def test_claim_takes_the_highest_priority_queue_first(broker: _wakaq.Broker, consumer: _wakaq.Consumer) -> None:
    broker.push_raw("low", payload(1))
    broker.push_raw("high", payload(2))
    assert consumer.queue_names == [f"bcast:{DAEMON}", "high", "low"]
    first = consumer.claim([], 5)
    assert [(t.index, t.queue, t.payload, t.deliveries) for t in first] == [(1, "high", payload(2), 0)]
    assert first[0].head() == (first[0].seq, 1, "high")
    second = consumer.claim([first[0].seq], 5)
    assert [(t.index, t.queue, t.payload) for t in second] == [(2, "low", payload(1))]
    assert consumer.claim([second[0].seq], 5) == []


def test_claimed_tasks_sit_in_flight_until_acked(
    broker: _wakaq.Broker, consumer: _wakaq.Consumer, rclient: redis.Redis
) -> None:
    for i in range(4):
        broker.push_raw("low", payload(i))
    batch = consumer.claim([], 3)
    first = batch[0].seq
    assert [t.seq for t in batch] == [first, first + 1, first + 2]
    assert first > 10**12, "seqs start past those of an earlier child with the same pid"
    inflight = rclient.hgetall(KEYS.inflight(DAEMON))
    assert len(inflight) == 3
    assert all(v.startswith(b"low\n") for v in inflight.values())
    assert all(f.decode().endswith(f":{t.seq}") for f, t in zip(sorted(inflight), batch, strict=True))
    rest = consumer.claim([first, first + 1, first + 2], 3)
    assert [t.seq for t in rest] == [first + 3]
    assert len(rclient.hgetall(KEYS.inflight(DAEMON))) == 1
    consumer.claim([first + 3], 0)
    assert rclient.hlen(KEYS.inflight(DAEMON)) == 0


def test_claim_rings_again_while_work_is_left(
    broker: _wakaq.Broker, consumer: _wakaq.Consumer, rclient: redis.Redis
) -> None:
    broker.push_raw("low", payload(1))
    broker.push_raw("low", payload(2))
    rclient.delete(KEYS.bell("low"))
    consumer.claim([], 1)
    assert rclient.llen(KEYS.bell("low")) == 1


def test_fail_records_reason_and_acks(broker: _wakaq.Broker, consumer: _wakaq.Consumer, rclient: redis.Redis) -> None:
    broker.push_raw("low", payload(7))
    [task] = consumer.claim([], 1)
    consumer.fail(task, "ValueError: boom", "Traceback ...", [])
    record = msgpack.unpackb(rclient.lindex(KEYS.failed("low"), 0))
    assert record["queue"] == "low"
    assert record["payload"] == payload(7)
    assert record["reason"] == "ValueError: boom"
    assert record["traceback"] == "Traceback ..."
    assert record["worker"] == consumer.worker
    assert record["deliveries"] == 1
    assert abs(record["time_ms"] / 1000 - time.time()) < 60
    assert rclient.hlen(KEYS.inflight(DAEMON)) == 0


def test_retry_goes_to_the_end_of_its_queue(
    broker: _wakaq.Broker, consumer: _wakaq.Consumer, rclient: redis.Redis
) -> None:
    broker.push_raw("low", payload(1))
    broker.push_raw("low", payload(2))
    [task] = consumer.claim([], 1)
    assert task.decode() == ("t", [1], {}, 0, None)
    consumer.retry(task, {"errors": ["ValueError: x"]}, [])
    retried = msgpack.packb({"name": "t", "args": [1], "kwargs": {}, "retry": 1, "meta": {"errors": ["ValueError: x"]}})
    assert rclient.lrange(KEYS.queue("low"), 0, -1) == [payload(2), retried]
    assert rclient.hlen(KEYS.inflight(DAEMON)) == 0


def test_a_claimed_task_is_one_object_and_its_retry_is_rewritten_in_rust(
    broker: _wakaq.Broker, consumer: _wakaq.Consumer, rclient: redis.Redis
) -> None:
    """A redelivered element's count and payload come apart in Rust; a retry rewrites `retry` and `meta` of the bytes
    the task was claimed with (the arguments as sent), `retry` one more than the payload's own."""
    sent = _wakaq.encode_task("t", [1, {"b": 2}], {"k": 3}, 2, {"id": "x" * 32, "errors": ["A"]})
    rclient.rpush(KEYS.queue("low"), b"\xc1\x02" + sent)
    [task] = consumer.claim([], 1)
    assert (task.queue, task.deliveries, task.payload) == ("low", 2, sent)
    assert "ClaimedTask(seq=" in repr(task)
    with pytest.raises(AttributeError):
        task.seq = 1  # type: ignore[misc]
    consumer.retry_at(task, 60.0, None)
    (member,) = rclient.zrange(KEYS.eta("low"), 0, -1)
    assert member == _wakaq.encode_task("t", [1, {"b": 2}], {"k": 3}, 3)
    assert rclient.hlen(KEYS.inflight(DAEMON)) == 0


def test_release_returns_unstarted_tasks_to_the_front_in_order(
    broker: _wakaq.Broker, consumer: _wakaq.Consumer, rclient: redis.Redis
) -> None:
    for i in range(5):
        broker.push_raw("low", payload(i))
    batch = consumer.claim([], 4)
    assert consumer.release(batch[1:]) == 3
    assert rclient.lrange(KEYS.queue("low"), 0, -1) == [payload(1), payload(2), payload(3), payload(4)]
    assert rclient.hlen(KEYS.inflight(DAEMON)) == 1


def test_wait_times_out_then_wakes_on_push(broker: _wakaq.Broker, consumer: _wakaq.Consumer) -> None:
    started = time.monotonic()
    assert consumer.wait(0.2) is False
    assert 0.15 < time.monotonic() - started < 2.0
    threading.Timer(0.1, broker.push_raw, ("low", payload(1))).start()
    started = time.monotonic()
    assert consumer.wait(5.0) is True
    assert time.monotonic() - started < 2.0


def test_split_element() -> None:
    assert _wakaq.split_element(b"\x84abc") == (0, b"\x84abc")
    assert _wakaq.split_element(b"\xc1\x02\x84abc") == (2, b"\x84abc")


def test_unreachable_redis_is_a_clear_connection_error() -> None:
    broker = _wakaq.Broker(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=1, connect_timeout=1)
    started = time.monotonic()
    with pytest.raises(ConnectionError) as info:
        broker.push_raw("q", b"x")
    assert isinstance(info.value, BrokerError)
    assert "redis unavailable" in str(info.value)
    assert time.monotonic() - started < 5


def test_push_many_spans_several_script_calls(broker: _wakaq.Broker, rclient: redis.Redis) -> None:
    items = [("low" if i % 2 else "high", "t", [i], {}) for i in range(2500)]
    assert broker.push_many(items) == 2500
    assert rclient.llen(KEYS.queue("low")) == 1250
    assert rclient.llen(KEYS.queue("high")) == 1250
    first = _wakaq.decode_task(rclient.lindex(KEYS.queue("high"), 0))
    assert first == ("t", [0], {}, 0)


def test_push_eta_dedupes_and_announces_the_earliest(broker: _wakaq.Broker, rclient: redis.Redis) -> None:
    sub = rclient.pubsub()
    sub.subscribe(KEYS.eta_channel)
    assert sub.get_message(timeout=2)["type"] == "subscribe"
    due = time.time() + 60
    broker.push_eta("low", "t", [1], {}, due)
    broker.push_eta("low", "t", [1], {}, due + 5)
    assert rclient.zcard(KEYS.eta("low")) == 1
    message = sub.get_message(timeout=2)
    assert message is not None and message["data"] == KEYS.eta("low").encode()
    broker.push_eta("low", "t", [2], {}, due + 10)  # not the earliest: no announcement
    assert sub.get_message(timeout=0.3) is None
    sub.close()


def test_broadcast_hands_the_task_to_every_live_daemon(broker: _wakaq.Broker, rclient: redis.Redis) -> None:
    assert broker.broadcast("t", [], {}) == 0
    pose_as_daemon(rclient, "d:1:aa")
    pose_as_daemon(rclient, "d:2:bb")
    pose_as_daemon(rclient, "d:3:cc")
    rclient.delete(KEYS.heartbeat("d:3:cc"))  # registered, heartbeat expired: dead or stalled, skipped
    assert broker.broadcast("t", [1], {}) == 2
    for daemon in ("d:1:aa", "d:2:bb"):
        (element,) = rclient.lrange(KEYS.broadcast_queue(daemon), 0, -1)
        assert _wakaq.decode_task(element) == ("t", [1], {}, 0)
    assert not rclient.exists(KEYS.broadcast_queue("d:3:cc"))


def test_claim_and_ack_thousands_at_once(
    broker: _wakaq.Broker, consumer: _wakaq.Consumer, rclient: redis.Redis
) -> None:
    """Lua's unpack() fails beyond ~8000 values: a child that started 20,000 async tasks acks them in one claim.
    Failed before the fix with `ResponseError: user_script:118: too many results to unpack` (a child retried it
    forever, its tasks stuck in flight)."""
    n = 20_000
    assert broker.push_many([("low", "t", [i], {}) for i in range(n)]) == n
    claimed = consumer.claim([], n)
    assert len(claimed) == n and rclient.hlen(KEYS.inflight(DAEMON)) == n
    assert consumer.claim([t.seq for t in claimed], 0) == []
    assert rclient.hlen(KEYS.inflight(DAEMON)) == 0


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), 1e300])
def test_wait_rejects_a_timeout_no_duration_holds(consumer: _wakaq.Consumer, timeout: float) -> None:
    """`Duration::from_secs_f64` panicked on these (a PanicException out of the extension)."""
    with pytest.raises(ValueError, match="wait timeout must be a finite number of seconds"):
        consumer.wait(timeout)


@pytest.mark.parametrize("timeout", [float("inf"), 1e300])
def test_huge_socket_timeouts_mean_no_limit(redis_url: str, timeout: float) -> None:
    assert _wakaq.Broker(redis_url, socket_timeout=timeout, connect_timeout=timeout).ping()
    make_consumer(redis_url, ["high"], DAEMON, socket_timeout=timeout, connect_timeout=timeout).claim([], 1)


def _script(name: str) -> str:
    return lua_script(name)


def _fill_inflight(rclient: redis.Redis, key: str) -> list[str]:
    """Two children's claims, 25 each, in a hash (arbitrary field order); the claim order, oldest first."""
    for pid in (222, 111):
        for seq in range(25, 0, -1):
            rclient.hset(key, f"{pid}:{seq}", f"q\n{pid}-{seq:02d}")
    return [f"{pid}-{seq:02d}" for seq in range(1, 26) for pid in (111, 222)]


def test_requeue_of_every_field_keeps_claim_order(rclient: redis.Redis) -> None:
    """The "every field" mode (deregister) used to read seqs from "<pid>:<seq>" as numbers (nil, so all 0):
    its tasks went back in hash order. Failed before the fix: the queue was in arbitrary order."""
    key = KEYS.inflight("d9")
    expected = _fill_inflight(rclient, key)
    keys = [key, KEYS.stats_retired, KEYS.queue("q"), KEYS.bell("q"), KEYS.failed("q")]
    assert rclient.eval(_script("requeue.lua"), len(keys), *keys, 1, "", "", 3, "w", 100, "", "", "q", 0) == [50]
    assert [x.decode() for x in rclient.lrange(KEYS.queue("q"), 0, -1)] == expected


def test_reap_keeps_claim_order(rclient: redis.Redis) -> None:
    """Failed before the fix: reap.lua gave the tasks back in hash order."""
    key = KEYS.inflight("d9")
    expected = _fill_inflight(rclient, key)
    rclient.sadd(KEYS.daemons, "d9")
    daemon = [KEYS.daemons, KEYS.heartbeat("d9"), key, KEYS.broadcast_queue("d9"), KEYS.bell("bcast:d9")]
    stats = [KEYS.stats_retired, KEYS.stats("d9"), KEYS.daemon_info("d9"), KEYS.broadcast_failed]
    keys = [*daemon, *stats, KEYS.queue("q"), KEYS.bell("q"), KEYS.failed("q")]
    assert rclient.eval(_script("reap.lua"), len(keys), *keys, "d9", 1, 3, "w", 100, "q") == [1, 50]
    got = rclient.lrange(KEYS.queue("q"), 0, -1)
    # NOTE: a reap counts no delivery (the daemon may only have been stalled: issue 19, defect 3)
    assert [g.decode() for g in got] == expected


def test_one_protocol_layer_in_one_place() -> None:
    """Every Redis script lives in the Rust broker's lua folder; the key layout is spelled in rust/src/broker/keys.rs
    only (python/wakaq/keys.py fills in its templates): no string in the package's code names a key (docstrings
    may describe them)."""
    root = Path(__file__).resolve().parent.parent
    assert sorted(root.joinpath("python").rglob("*.lua")) == []
    spelled = re.compile(r":(eta|bell|failed|inflight|hb|daemons|daemon|stats|rate|parked|result|unique|sched|bcast)\b")
    offenders = []
    for path in sorted(root.joinpath("python", "wakaq").rglob("*.py")):
        tree = ast.parse(path.read_text())
        docs = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                if spelled.search(node.value):
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []
