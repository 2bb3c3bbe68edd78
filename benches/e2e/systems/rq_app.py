"""RQ (PyPI `rq==2.12.0`, in its own venv): the job functions its workers run, and the adapter.

`rq worker-pool -n 2` with the forking `Worker` (a work horse forked per job: its default) or `SimpleWorker`
(jobs in the worker process) as BENCH_RQ_WORKER says. Results off: `result_ttl=0` (RQ's default keeps them 500 s).
RQ has no per-process start-up hook: the progress counter starts on each process's first task; under the forking
worker each job runs in a fresh fork that exits right after it, so there it flushes to the bookkeeping Redis
synchronously per task (BENCH_PROGRESS_SYNC=1), one more round trip per job on the other server. Bulk setup and
the enqueue-bulk workload: `Queue.enqueue_many` (one pipeline). Eta: `enqueue_at` due 5 s ago, with the worker's
scheduler on (`--with-scheduler` is not a worker-pool option: the pool's workers run it by default in 2.x). No
async jobs.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from progress import QUEUE, progress
from redis import Redis
from rq import Queue

from systems._script import script

URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0")
WORKERS = int(os.environ.get("BENCH_CONCURRENCY", "2"))
SIMPLE = os.environ.get("BENCH_RQ_WORKER", "fork") == "simple"


def noop(i: int) -> None:
    progress.done(i)


def io(i: int) -> None:
    progress.io().incr("bench:io")
    progress.done(i)


def lat(sent: float) -> None:
    progress.started(sent)


TASKS = {"noop": noop, "io": io, "lat": lat}
_queue: Queue | None = None


def queue() -> Queue:
    global _queue
    if _queue is None:
        _queue = Queue(QUEUE, connection=Redis.from_url(URL))
    return _queue


class Adapter:
    name = "RQ simple" if SIMPLE else "RQ fork"
    concurrency = WORKERS
    backlog_keys = (f"rq:queue:{QUEUE}", f"rq:wip:{QUEUE}", f"rq:scheduled:{QUEUE}")

    def delay(self, kind: str, *args: object) -> None:
        queue().enqueue(TASKS[kind], *args, result_ttl=0)

    def enqueue_bulk(self, kind: str, count: int, chunk: int = 1000) -> None:
        if kind not in TASKS:
            raise NotImplementedError(f"RQ has no {kind!r} workload (no async jobs)")
        task = TASKS[kind]
        for start in range(0, count, chunk):
            jobs = [Queue.prepare_data(task, (i,), result_ttl=0) for i in range(start, min(count, start + chunk))]
            queue().enqueue_many(jobs)

    def enqueue_eta(self, count: int) -> None:
        due = datetime.now(timezone.utc) - timedelta(seconds=5)
        for i in range(count):
            queue().enqueue_at(due, noop, i, result_ttl=0)

    def ready_count(self, r: Redis) -> int:
        return int(r.scard(f"rq:workers:{QUEUE}"))

    def worker_command(self) -> list[str]:
        command = [script("rq"), "worker-pool", "-n", str(WORKERS), "-u", URL, "-q"]
        if SIMPLE:
            command += ["-w", "rq.worker.SimpleWorker"]
        return [*command, QUEUE]

    def version(self) -> str:
        from importlib.metadata import version

        return version("rq")
