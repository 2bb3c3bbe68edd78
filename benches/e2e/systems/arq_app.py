"""arq (PyPI `arq==0.28.0`, in its own venv): the worker settings it runs, and the adapter.

An arq worker is one asyncio process: the benchmark runs two (`multi.py 2 arq ...`), each at arq's defaults
(`max_jobs` 10) except results off (`keep_result=0`); the async workload sets `max_jobs` to the async
concurrency of the other systems (100). The progress thread starts from `on_startup`. Enqueue is
`await pool.enqueue_job(...)` on one event loop kept by the adapter. No bulk enqueue. Eta: `_defer_until` 5 s ago.
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timedelta, timezone
from typing import Any

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from progress import QUEUE, progress

from systems._script import launcher, script

URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0")
WORKERS = int(os.environ.get("BENCH_CONCURRENCY", "2"))
ASYNC_CONCURRENCY = int(os.environ.get("BENCH_ASYNC_CONCURRENCY", "0"))
ARQ_QUEUE = f"arq:{QUEUE}"


async def _started(ctx: dict[str, Any]) -> None:
    progress.start(URL)


async def noop(ctx: dict[str, Any], i: int) -> None:
    progress.done(i)


async def io(ctx: dict[str, Any], i: int) -> None:
    progress.io().incr("bench:io")
    progress.done(i)


async def lat(ctx: dict[str, Any], sent: float) -> None:
    progress.started(sent)


async def sleep(ctx: dict[str, Any], seconds: float, i: int = -1) -> None:
    await asyncio.sleep(seconds)
    progress.done(i)


class WorkerSettings:
    functions = [noop, io, lat, sleep]
    redis_settings = RedisSettings.from_dsn(URL)
    queue_name = ARQ_QUEUE
    on_startup = _started
    keep_result = 0
    if ASYNC_CONCURRENCY:
        max_jobs = ASYNC_CONCURRENCY


class Adapter:
    name = "arq"
    concurrency = WORKERS
    backlog_keys = (ARQ_QUEUE,)

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._pool: ArqRedis | None = None

    def _run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    def pool(self) -> ArqRedis:
        if self._pool is None:
            self._pool = self._run(create_pool(RedisSettings.from_dsn(URL), default_queue_name=ARQ_QUEUE))
        return self._pool

    def delay(self, kind: str, *args: object) -> None:
        self._run(self.pool().enqueue_job(kind, *args))

    def enqueue_bulk(self, kind: str, count: int, chunk: int = 1000) -> None:
        pool = self.pool()
        args = (lambda i: (0.01, i)) if kind == "sleep" else (lambda i: (i,))

        async def send() -> None:
            for i in range(count):
                await pool.enqueue_job(kind, *args(i))

        self._run(send())

    def enqueue_eta(self, count: int) -> None:
        pool = self.pool()
        due = datetime.now(timezone.utc) - timedelta(seconds=5)

        async def send() -> None:
            for i in range(count):
                await pool.enqueue_job("noop", i, _defer_until=due)

        self._run(send())

    def worker_command(self) -> list[str]:
        return launcher(WORKERS, [script("arq"), "systems.arq_app.WorkerSettings"])

    def version(self) -> str:
        from importlib.metadata import version

        return version("arq")
