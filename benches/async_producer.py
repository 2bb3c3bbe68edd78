"""The async producer (`await task.adelay()`) against the blocking `.delay()`: throughput, and how long the event
loop stalls while they run.

    .venv/bin/python benches/async_producer.py [--n 10000] [--coroutines 100] [--threads 8] [--loops asyncio uvloop]
        [--pool-threads 1 2 4] [--rounds 3]

Per loop (asyncio's default, uvloop) and round, on a private redis-server:
- `adelay`: `--coroutines` coroutines send `--n` tasks between them with `await t.adelay()`, while a ticker coroutine
  sleeps 1 ms at a time and records how late each wake-up is (the loop's stall); tasks/s and the ticker's lateness;
- `delay on loop`: the same with the blocking `t.delay()` called from those coroutines (what an app does today);
- `delay 8 threads`: `--threads` threads call `t.delay()` (no loop): the sync producer's throughput;
- `idle`: the ticker alone, the floor of its lateness (the loop's timer resolution).
Each leg checks that the queue holds exactly `--n` tasks afterwards. `--pool-threads` runs the `adelay` leg once per
pool size (wakaq.aio.POOL_THREADS). Whatever build .venv holds is measured (`make build-release` for release figures).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
from tests.redis_server import RedisServer

from wakaq import WakaQ, aio, coalesce

TICK = 0.001
DEFAULT_POOL = aio.POOL_THREADS
QUEUE = "default"


class Ticker:
    """Sleeps `TICK` at a time on the loop and records how late each wake-up was (seconds)."""

    def __init__(self) -> None:
        self.late: list[float] = []
        self.stop = False

    async def run(self) -> None:
        due = time.perf_counter() + TICK
        while not self.stop:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            now = time.perf_counter()
            self.late.append(now - due)
            due = now + TICK


def summary(late: list[float]) -> str:
    if not late:
        return "no ticks"
    ordered = sorted(late)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    ms = 1000.0
    return (
        f"stall p50 {statistics.median(ordered) * ms:.3f} ms, p99 {p99 * ms:.3f} ms, max {ordered[-1] * ms:.3f} ms "
        f"({len(ordered)} ticks)"
    )


async def timed(send: Callable[[], Awaitable[Any]], n: int, coroutines: int) -> tuple[float, list[float]]:
    """`n` sends from `coroutines` coroutines with the ticker running: (seconds, the ticker's lateness)."""
    ticker = Ticker()
    ticking = asyncio.ensure_future(ticker.run())
    await asyncio.sleep(0.05)  # NOTE: the ticker's first wake-ups, before the load starts
    ticker.late.clear()
    counts = [n // coroutines + (1 if i < n % coroutines else 0) for i in range(coroutines)]

    async def one(count: int) -> None:
        for _ in range(count):
            await send()

    started = time.perf_counter()
    await asyncio.gather(*(one(c) for c in counts))
    elapsed = time.perf_counter() - started
    ticker.stop = True
    await ticking
    return elapsed, ticker.late


async def idle() -> list[float]:
    ticker = Ticker()
    ticking = asyncio.ensure_future(ticker.run())
    await asyncio.sleep(1.0)
    ticker.stop = True
    await ticking
    return ticker.late


def threaded(send: Callable[[], Any], n: int, threads: int) -> float:
    def one(count: int) -> None:
        for _ in range(count):
            send()

    counts = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
    workers = [threading.Thread(target=one, args=(c,)) for c in counts]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - started


def use_pool(threads: int) -> None:
    """Every later `adelay` uses a pool of `threads` threads (a bench-only knob)."""
    aio.POOL_THREADS = threads
    if aio._pool is not None:
        aio._pool.shutdown()
    aio._pool = None


def checked(client: redis.Redis, n: int, leg: str) -> None:
    queued = client.llen(f"wakaq:{QUEUE}")
    assert queued == n, f"{leg}: {queued} tasks queued, {n} sent"
    client.flushall()


Totals = dict[tuple[str, str], tuple[float, list[float] | None]]


def run_loop(kind: str, app: WakaQ, client: redis.Redis, args: argparse.Namespace, totals: Totals) -> None:
    noop = app.tasks["noop"]

    def report(leg: str, seconds: float, late: list[float] | None = None) -> None:
        print(line(kind, leg, args.n / seconds if seconds else 0.0, late), flush=True)
        spent, ticks = totals.get((kind, leg), (0.0, None if late is None else []))
        totals[(kind, leg)] = (spent + seconds, None if ticks is None or late is None else ticks + late)

    def arun(coro: Awaitable[Any]) -> Any:
        if kind == "uvloop":
            import uvloop

            return uvloop.run(coro)  # type: ignore[arg-type]
        return asyncio.run(coro)  # type: ignore[arg-type]

    async def blocking() -> None:
        noop.delay()
        await asyncio.sleep(0)  # NOTE: as a request handler would, between requests

    report("idle (ticker alone)", 0.0, arun(idle()))
    coalesce.ENABLED = True
    seconds, late = arun(timed(noop.adelay, args.n, args.coroutines))
    checked(client, args.n, "adelay")
    report(f"adelay coalesced, pool of {aio.POOL_THREADS}", seconds, late)
    coalesce.ENABLED = False
    for pool in args.pool_threads:
        use_pool(pool)
        seconds, late = arun(timed(noop.adelay, args.n, args.coroutines))
        checked(client, args.n, "adelay")
        report(f"adelay, 1 by 1, pool of {pool}", seconds, late)
    coalesce.ENABLED = True
    use_pool(DEFAULT_POOL)
    seconds, late = arun(timed(blocking, args.n, args.coroutines))
    checked(client, args.n, "delay on loop")
    report("delay on the loop", seconds, late)
    seconds = threaded(noop.delay, args.n, args.threads)
    checked(client, args.n, "delay threads")
    report(f"delay, {args.threads} threads", seconds)


def line(kind: str, leg: str, rate: float, late: list[float] | None) -> str:
    shown = f"{rate:>9,.0f} tasks/s" if rate else " " * 16
    return f"{kind:8} {leg:28} {shown}  {summary(late) if late is not None else ''}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="tasks per leg")
    parser.add_argument("--coroutines", type=int, default=100)
    parser.add_argument("--threads", type=int, default=8, help="threads of the sync `.delay()` leg")
    parser.add_argument("--loops", nargs="+", default=["asyncio", "uvloop"], choices=["asyncio", "uvloop"])
    parser.add_argument("--pool-threads", nargs="+", type=int, default=[DEFAULT_POOL], help="uncoalesced legs")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--max-batch", type=int, default=coalesce.MAX_BATCH, help="wakaq.coalesce.MAX_BATCH")
    args = parser.parse_args()
    coalesce.MAX_BATCH = args.max_batch
    server = RedisServer().start()
    try:
        app = WakaQ(queues=[QUEUE], url=server.url)

        @app.task
        def noop() -> None: ...

        client = redis.Redis.from_url(server.url)
        print(f"n={args.n} coroutines={args.coroutines} load average {os.getloadavg()[0]:.2f}", flush=True)
        totals: Totals = {}
        for round_ in range(args.rounds):
            print(f"-- round {round_ + 1}", flush=True)
            for kind in args.loops:
                run_loop(kind, app, client, args, totals)
        print(f"-- all {args.rounds} rounds (tasks/s over the rounds' total time, stalls of every tick)")
        for (kind, leg), (spent, late) in totals.items():
            print(line(kind, leg, args.n * args.rounds / spent if spent else 0.0, late))
        print(f"load average after {os.getloadavg()[0]:.2f}")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
