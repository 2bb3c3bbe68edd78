"""The physical floors, measured in the same run as the systems (wakaq's `.venv`; `leg.py wakaq_rs floor-*`).

- floor-bulk: the floor of `delay_many`. The same encoded payloads pushed by redis-py as `redis-benchmark -P`-style
  pipelined single-element RPUSHes and as one multi-element RPUSH per chunk (and, for reference, one RPUSH per
  round trip); encoding is done before the clock starts. The floor of a single `.delay()` is `floor-push` in
  common.py (every system's venv).
- floor-io: the drain-io floor. `concurrency` processes each doing the task body (one redis-py INCR) in a tight
  loop, N in all, no queue.
- floor-noop: the drain-noop floor. `concurrency` processes each calling `_wakaq.Consumer.claim` in a loop at the
  worker's largest batch (acking the previous batch in the same call), with no task call, until the queue is
  empty.

Each reports the Redis cost per task/op from INFO deltas, like the system legs.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from common import QUEUE, Options, System, redis_cost, redis_stats

from wakaq import _wakaq
from wakaq.worker import MAX_BATCH

PREFIX = "wakaq"
LIST = f"{PREFIX}:{QUEUE}"


def _payloads(n: int) -> list[bytes]:
    return [_wakaq.encode_task("noop", [i], {}) for i in range(n)]


def floor_bulk(system: System, opts: Options) -> dict[str, Any]:
    r = redis.Redis.from_url(opts.url)
    payloads = _payloads(opts.n)
    r.ping()
    before = redis_stats(r)
    started = time.perf_counter()
    for p in payloads:
        r.rpush(LIST, p)
    single = opts.n / (time.perf_counter() - started)
    single_cost = redis_cost(before, redis_stats(r), opts.n, "single_")
    r.delete(LIST)

    started = time.perf_counter()
    for k in range(0, opts.n, opts.bulk_chunk):
        pipe = r.pipeline(transaction=False)
        for p in payloads[k : k + opts.bulk_chunk]:
            pipe.rpush(LIST, p)
        pipe.execute()
    pipelined = opts.n / (time.perf_counter() - started)
    r.delete(LIST)

    before = redis_stats(r)
    started = time.perf_counter()
    for k in range(0, opts.n, opts.bulk_chunk):
        r.rpush(LIST, *payloads[k : k + opts.bulk_chunk])
    multi = opts.n / (time.perf_counter() - started)
    multi_cost = redis_cost(before, redis_stats(r), opts.n, "multi_")
    r.delete(LIST)
    return {
        "single_rate": single,
        "pipelined_rate": pipelined,
        "multi_rate": multi,
        "bulk_rate": max(pipelined, multi),  # the enqueue-bulk floor: the faster way to push the same bytes
        **single_cost,
        **multi_cost,
    }


def _in_processes(count: int, body: Callable[[int, float], int], setup: Callable[[], None] | None = None) -> dict:
    """Fork `count` processes; each runs body(index, start_at) from a common start time; returns the span from
    that start to the last end and the sum of what the bodies returned."""
    start_at = time.time() + 0.5 + 0.1 * count  # every child forked and connected before the clock starts
    children = []
    for index in range(count):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            os.close(read)
            code = 1
            try:
                done = body(index, start_at)
                os.write(write, f"{done} {time.time()!r}".encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        children.append((pid, read))
    total, last = 0, 0.0
    for pid, read in children:
        chunks = []
        while chunk := os.read(read, 256):
            chunks.append(chunk)
        os.close(read)
        _, status = os.waitpid(pid, 0)
        if status != 0 or not chunks:
            raise RuntimeError(f"floor process {pid} failed (status {status})")
        done, end = b"".join(chunks).split()
        total += int(done)
        last = max(last, float(end))
    return {"span": last - start_at, "total": total}


def _sleep_until(when: float) -> None:
    pause = when - time.time()
    if pause > 0:
        time.sleep(pause)


def floor_io(system: System, opts: Options) -> dict[str, Any]:
    r = redis.Redis.from_url(opts.url)
    procs = system.concurrency
    share = [opts.n // procs + (1 if k < opts.n % procs else 0) for k in range(procs)]

    def body(index: int, start_at: float) -> int:
        client = redis.Redis.from_url(opts.url)
        client.ping()
        _sleep_until(start_at)
        for _ in range(share[index]):
            client.incr("bench:io")
        return share[index]

    before = redis_stats(r)
    out = _in_processes(procs, body)
    cost = redis_cost(before, redis_stats(r), opts.n)
    if out["total"] != opts.n or int(r.get("bench:io") or 0) != opts.n:
        raise RuntimeError(f"floor-io: {out['total']} INCRs reported, counter {r.get('bench:io')}, wanted {opts.n}")
    return {"rate": opts.n / out["span"], "processes": procs, **cost}


def floor_noop(system: System, opts: Options) -> dict[str, Any]:
    r = redis.Redis.from_url(opts.url)
    payloads = _payloads(opts.n)
    for k in range(0, opts.n, 1000):
        r.rpush(LIST, *payloads[k : k + 1000])
    procs = system.concurrency
    daemon = f"floor-{uuid.uuid4().hex[:8]}"
    redis.Redis.from_url(opts.url).sadd(f"{PREFIX}:daemons", daemon)  # NOTE: claim.lua refuses unregistered daemons

    def body(index: int, start_at: float) -> int:
        settings = {"concurrency": 1, "url": opts.url, "prefix": PREFIX, "daemon_id": daemon, "queues": [QUEUE]}
        consumer = _wakaq.Consumer(_wakaq.Settings(settings))
        consumer.claim([], 0)
        _sleep_until(start_at)
        claimed, acks = 0, []
        while True:
            batch = consumer.claim(acks, MAX_BATCH)
            if not batch:
                break
            claimed += len(batch)
            acks = [task.seq for task in batch]
        return claimed

    before = redis_stats(r)
    out = _in_processes(procs, body)
    cost = redis_cost(before, redis_stats(r), opts.n)
    if out["total"] != opts.n:
        raise RuntimeError(f"floor-noop: {out['total']} tasks claimed, wanted {opts.n}")
    return {"rate": opts.n / out["span"], "processes": procs, "batch": MAX_BATCH, **cost}


WORKLOADS: dict[str, Callable[[System, Options], dict[str, Any]]] = {
    "floor-bulk": floor_bulk,
    "floor-io": floor_io,
    "floor-noop": floor_noop,
}
