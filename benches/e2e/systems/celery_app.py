"""Celery 5 (PyPI `celery[redis]==5.7.0`, in its own venv): the app its worker runs, and the adapter.

Redis broker, prefork pool `-c 2`, results off, prefetch multiplier and acks at their defaults, no gossip,
mingle or heartbeat. The progress thread starts in each pool process from `worker_process_init`. Celery has no
async tasks and no bulk enqueue: the async workload is not run, and the drain setup calls `.delay()` in a loop.
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import datetime, timedelta, timezone

from celery import Celery
from celery.signals import worker_process_init
from progress import QUEUE, progress

URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0")
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "2"))

app = Celery("bench", broker=URL)
app.conf.update(
    task_ignore_result=True,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@worker_process_init.connect
def _started(**_: object) -> None:
    progress.start(URL)


@app.task(name="bench.noop")
def noop(i: int) -> None:
    progress.done(i)


@app.task(name="bench.io")
def io(i: int) -> None:
    progress.io().incr("bench:io")
    progress.done(i)


@app.task(name="bench.lat")
def lat(sent: float) -> None:
    progress.started(sent)


TASKS = {"noop": noop, "io": io, "lat": lat}


class Adapter:
    name = "Celery"
    concurrency = CONCURRENCY
    backlog_keys = (QUEUE, "unacked", "unacked_index")  # kombu: the queue list, then fetched but not acked

    def delay(self, kind: str, *args: object) -> None:
        TASKS[kind].delay(*args)

    def enqueue_bulk(self, kind: str, count: int, chunk: int = 1000) -> None:
        if kind not in TASKS:
            raise NotImplementedError(f"Celery has no {kind!r} workload (no async tasks)")
        task = TASKS[kind]
        for i in range(count):
            task.delay(i)

    def enqueue_eta(self, count: int) -> None:
        due = datetime.now(timezone.utc) - timedelta(seconds=5)
        for i in range(count):
            noop.apply_async((i,), eta=due)

    def worker_command(self) -> list[str]:
        return [
            *[_script("celery"), "-A", "systems.celery_app", "worker"],
            *["-P", "prefork", "-c", str(CONCURRENCY), "-Q", QUEUE],
            *["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"],
        ]

    def version(self) -> str:
        from importlib.metadata import version

        return version("celery")


def _script(name: str) -> str:
    beside = os.path.join(os.path.dirname(sys.executable), name)
    return beside if os.path.exists(beside) else (shutil.which(name) or name)
