"""Payload meta: the optional map after `retry` that opt-in features (results, retries, uniqueness) carry.

A plain task's payload must stay byte-identical (WakaQ can read it, and nothing is paid for features not used).
"""

from __future__ import annotations

from types import ModuleType

import msgpack
import pytest
import redis

from tests.keyspace import KEYS
from tests.workers import StartWorker, events, wait_until
from wakaq._wakaq import decode_task, decode_task_meta, encode_task
from wakaq.exceptions import PayloadError
from wakaq.ids import new_id

pytestmark = pytest.mark.timeout(60)


def test_no_meta_is_the_plain_four_key_payload() -> None:
    plain = encode_task("t", [1], {"k": "v"}, 2)
    assert plain == encode_task("t", [1], {"k": "v"}, 2, None) == encode_task("t", [1], {"k": "v"}, 2, {})
    assert list(msgpack.unpackb(plain)) == ["name", "args", "kwargs", "retry"]
    assert decode_task_meta(plain) == ("t", [1], {"k": "v"}, 2, None)


def test_meta_round_trips_after_retry() -> None:
    meta = {"id": new_id(), "attempt": 3, "errors": ["TimeoutError: slow"]}
    payload = encode_task("t", (1, 2), {}, 0, meta)
    assert msgpack.unpackb(payload) == {"name": "t", "args": [1, 2], "kwargs": {}, "retry": 0, "meta": meta}
    assert decode_task_meta(payload) == ("t", [1, 2], {}, 0, meta)
    assert decode_task(payload) == ("t", [1, 2], {}, 0)


def test_meta_nil_decodes_as_none_and_a_wrong_type_is_named() -> None:
    nil = msgpack.packb({"name": "t", "args": [], "kwargs": {}, "retry": 0, "meta": None})
    assert decode_task_meta(nil)[4] is None
    bad = msgpack.packb({"name": "t", "args": [], "kwargs": {}, "retry": 0, "meta": [1]})
    with pytest.raises(PayloadError, match="'meta' must be a map, got array"):
        decode_task_meta(bad)
    with pytest.raises(TypeError, match="meta must be a dict, got 'list'"):
        encode_task("t", [], {}, 0, [1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"cannot encode meta\['x'\]: unsupported type 'object'"):
        encode_task("t", [], {}, 0, {"x": object()})


def test_new_ids_are_32_hex_and_distinct() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_broker_pushes_carry_meta(app: ModuleType, rclient: redis.Redis) -> None:
    broker = app.wakaq.broker
    broker.push("low", "meta_probe", ["a"], {}, 0, {"id": "one"})
    broker.push("low", "meta_probe", ["b"], {})
    broker.push_many([("low", "meta_probe", ["c"], {}, {"id": "three"}), ("low", "meta_probe", ["d"], {})])
    broker.push_eta("low", "meta_probe", ["e"], {}, 1e9, {"id": "five"})
    metas = [decode_task_meta(raw)[4] for raw in rclient.lrange(KEYS.queue("low"), 0, -1)]
    assert metas == [{"id": "one"}, None, {"id": "three"}, None]
    (eta,) = rclient.zrange(KEYS.eta("low"), 0, -1)
    assert decode_task_meta(eta)[4] == {"id": "five"}


def test_running_tasks_see_their_meta_and_plain_ones_none(
    app: ModuleType, rclient: redis.Redis, start_worker: StartWorker
) -> None:
    broker = app.wakaq.broker
    broker.push("low", "meta_probe", ["with"], {}, 0, {"id": "m1"})
    broker.push("low", "meta_probe", ["plain"], {})
    broker.push("low", "async_meta_probe", ["async-with"], {}, 0, {"id": "m2"})
    broker.push("low", "async_meta_probe", ["async-plain"], {})
    worker = start_worker()
    try:
        wait_until(lambda: len(events(rclient, "meta_probe")) == 2, what="the sync probes")
        wait_until(lambda: len(events(rclient, "async_meta_probe")) == 2, what="the async probes")
    finally:
        worker.stop()
    seen = {e["tag"]: e["meta"] for e in events(rclient, "meta_probe") + events(rclient, "async_meta_probe")}
    assert seen == {"with": {"id": "m1"}, "plain": None, "async-with": {"id": "m2"}, "async-plain": None}
    assert {e["name"] for e in events(rclient, "meta_probe")} == {"meta_probe"}


def test_a_retried_payload_keeps_the_argument_bytes_as_sent() -> None:
    from wakaq._wakaq import retried_task

    meta = {"id": "r1", "errors": ["TimeoutError: slow"]}
    plain = encode_task("t", [1, {"b": 2}], {"k": [3.5]}, 0)
    assert retried_task(plain, 1, meta) == encode_task("t", [1, {"b": 2}], {"k": [3.5]}, 1, meta)
    assert retried_task(encode_task("t", [1], {}, 2, {"id": "x"}), 3) == encode_task("t", [1], {}, 3)
    # another writer's key order and encodings are copied, not normalised: only retry and meta are new
    foreign = msgpack.packb({"kwargs": {}, "name": "t", "extra": 1, "args": [2**40], "retry": 7})
    assert msgpack.unpackb(retried_task(foreign, 8, meta)) == {
        "kwargs": {},
        "name": "t",
        "extra": 1,
        "args": [2**40],
        "retry": 8,
        "meta": meta,
    }
    # WakaQ's JSON: a plain retry stays WakaQ's JSON (its workers may still be running), one with meta is msgpack
    wakaq_json = b'{"name": "t", "args": [1], "kwargs": {}, "retry": 0}'
    assert retried_task(wakaq_json, 1) == b'{"name": "t", "args": [1], "kwargs": {}, "retry": 1}'
    assert retried_task(wakaq_json, 1, meta) == encode_task("t", [1], {}, 1, meta)
    for garbage in (b"\x93\x01\x02\x03", b"\x84\xa4name", b""):
        with pytest.raises(PayloadError):
            retried_task(garbage, 1)
