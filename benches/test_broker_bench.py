"""Micro benchmarks of the Redis hot path: `.delay()` (encode + one round trip) and claim + ack.

Off by default; `make bench` runs them on a release build. Both sides sit on one machine, so these
measure loopback round trips plus our overhead, the same as the end-to-end harness in benches/e2e.
"""

from __future__ import annotations

from datetime import datetime

import pytest
import redis

from wakaq import _wakaq

ARGS = (123, "some string", {"a": 1.5, "b": [1, 2, 3]}, datetime(2024, 1, 2, 3, 4, 5, 678901))
KWARGS = {"user_id": 42, "flag": True}


@pytest.fixture
def broker(redis_url: str) -> _wakaq.Broker:
    return _wakaq.Broker(redis_url)


def test_enqueue_single(benchmark, broker: _wakaq.Broker) -> None:  # type: ignore[no-untyped-def]
    benchmark(broker.push, "default", "mytask", ARGS, KWARGS)


def test_ping_floor(benchmark, rclient: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    """One redis-py INCR: the round-trip floor `.delay()` is compared with."""
    benchmark(rclient.incr, "floor")


def test_enqueue_bulk_1000(benchmark, broker: _wakaq.Broker, rclient: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    items = [("default", "mytask", ARGS, KWARGS)] * 1000

    def run() -> None:
        broker.push_many(items)
        rclient.delete("wakaq:default")

    benchmark(run)


@pytest.mark.parametrize("batch", [1, 32])
def test_claim_and_ack(benchmark, redis_url: str, broker: _wakaq.Broker, batch: int) -> None:  # type: ignore[no-untyped-def]
    """Per call: acknowledge the previous batch and claim the next `batch` tasks (one round trip)."""
    import redis

    redis.Redis.from_url(redis_url).sadd("wakaq:daemons", "bench")  # NOTE: claim.lua refuses unregistered daemons
    config = {"concurrency": 1, "url": redis_url, "daemon_id": "bench", "queues": ["default"]}
    consumer = _wakaq.Consumer(_wakaq.Settings(config))
    broker.push_many([("default", "mytask", ARGS, KWARGS)] * 200_000)
    acks: list[int] = []

    def run() -> None:
        nonlocal acks
        claimed = consumer.claim(acks, batch)
        acks = [task.seq for task in claimed]

    benchmark.pedantic(run, rounds=2000, iterations=1, warmup_rounds=50)
