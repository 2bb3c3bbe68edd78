"""Dramatiq (PyPI `dramatiq[redis]==2.2.1`, in its own venv): the broker and actors its worker runs, and the adapter.

Redis broker, `dramatiq --processes 2 --threads T` (T = BENCH_THREADS: 1, or 8, its documented default, per
process), default middleware (no Results middleware: results off). The progress thread starts in each worker
process from a middleware's `after_worker_boot`. No bulk enqueue and no async actors without the AsyncIO
middleware: the drain setup sends in a loop; the async workload is not run. Eta: `send_with_options(delay=1)`
(1 ms: the delay queue, due before the worker starts).
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware
from progress import QUEUE, progress

from systems._script import script

URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0")
PROCESSES = int(os.environ.get("BENCH_CONCURRENCY", "2"))
THREADS = int(os.environ.get("BENCH_THREADS", "1"))


class _Started(Middleware):  # type: ignore[misc]
    def after_worker_boot(self, broker: object, worker: object) -> None:
        progress.start(URL)


broker = RedisBroker(url=URL)
broker.add_middleware(_Started())
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE)
def noop(i: int) -> None:
    progress.done(i)


@dramatiq.actor(queue_name=QUEUE)
def io(i: int) -> None:
    progress.io().incr("bench:io")
    progress.done(i)


@dramatiq.actor(queue_name=QUEUE)
def lat(sent: float) -> None:
    progress.started(sent)


TASKS = {"noop": noop, "io": io, "lat": lat}


class Adapter:
    name = f"Dramatiq t{THREADS}"
    concurrency = PROCESSES
    backlog_keys = (f"dramatiq:{QUEUE}.msgs", f"dramatiq:{QUEUE}.DQ.msgs")

    def delay(self, kind: str, *args: object) -> None:
        TASKS[kind].send(*args)

    def enqueue_bulk(self, kind: str, count: int, chunk: int = 1000) -> None:
        if kind not in TASKS:
            raise NotImplementedError(f"Dramatiq has no {kind!r} workload here (no async actors by default)")
        task = TASKS[kind]
        for i in range(count):
            task.send(i)

    def enqueue_eta(self, count: int) -> None:
        for i in range(count):
            noop.send_with_options(args=(i,), delay=1)

    def worker_command(self) -> list[str]:
        return [
            *[script("dramatiq"), "systems.dramatiq_app", "--queues", QUEUE],
            *["--processes", str(PROCESSES), "--threads", str(THREADS)],
        ]

    def version(self) -> str:
        from importlib.metadata import version

        return version("dramatiq")
