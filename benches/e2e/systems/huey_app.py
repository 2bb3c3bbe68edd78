"""Huey (PyPI `huey==3.5.4`, in its own venv): the app its consumer runs, and the adapter.

`RedisHuey` (blocking pops, its default), results off (`results=False`), consumer `-k process -w 2` (process
workers; everything else at its defaults). The progress thread starts in each worker process from
`@huey.on_startup()`. No bulk enqueue and no async tasks: the drain setup calls tasks in a loop; the async workload
is not run. Eta: `.schedule(eta=...)` due 5 s ago, moved by the consumer's scheduler (every second, its default).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from huey import RedisHuey
from progress import QUEUE, progress

from systems._script import script

URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0")
WORKERS = int(os.environ.get("BENCH_CONCURRENCY", "2"))

huey = RedisHuey(QUEUE, url=URL, results=False)


@huey.on_startup()
def _started() -> None:
    progress.start(URL)


@huey.task()
def noop(i: int) -> None:
    progress.done(i)


@huey.task()
def io(i: int) -> None:
    progress.io().incr("bench:io")
    progress.done(i)


@huey.task()
def lat(sent: float) -> None:
    progress.started(sent)


TASKS = {"noop": noop, "io": io, "lat": lat}


class Adapter:
    name = "Huey"
    concurrency = WORKERS
    backlog_keys = (f"huey.redis.{QUEUE}", f"huey.schedule.{QUEUE}")

    def delay(self, kind: str, *args: object) -> None:
        TASKS[kind](*args)

    def enqueue_bulk(self, kind: str, count: int, chunk: int = 1000) -> None:
        if kind not in TASKS:
            raise NotImplementedError(f"Huey has no {kind!r} workload (no async tasks)")
        task = TASKS[kind]
        for i in range(count):
            task(i)

    def enqueue_eta(self, count: int) -> None:
        due = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=5)  # huey: naive UTC
        for i in range(count):
            noop.schedule(args=(i,), eta=due)

    def worker_command(self) -> list[str]:
        return [script("huey_consumer"), "systems.huey_app.huey", "-k", "process", "-w", str(WORKERS), "-q"]

    def version(self) -> str:
        from importlib.metadata import version

        return version("huey")
