"""Pure-Python WakaQ 3.0.7 (PyPI `wakaq==3.0.7`, in its own venv): the app its `wakaq-worker` runs, and the adapter.

WakaQ 3.0.7 takes host/port/db (no URL), calls `after_worker_started` synchronously in each child, and has no
bulk enqueue: the setup of the drain workloads pipelines the same RPUSH / ZADD its `.delay()` does (that setup is
not timed; the `enqueue` workload times single `.delay()` calls).
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import os
import shutil
import sys
from datetime import datetime, timedelta, timezone
from urllib.parse import urlparse

from progress import ASYNC_SLEEP, QUEUE, progress
from wakaq.serializer import serialize

from wakaq import WakaQ

URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0")
_parts = urlparse(URL)

app = WakaQ(
    queues=[QUEUE],
    host=_parts.hostname or "127.0.0.1",
    port=_parts.port or 6379,
    db=int(_parts.path.lstrip("/") or 0),
    concurrency=int(os.environ.get("BENCH_CONCURRENCY", "2")),
    async_concurrency=int(os.environ.get("BENCH_ASYNC_CONCURRENCY", "0")),
    worker_log_level=logging.WARNING,
)


@app.after_worker_started
def _started() -> None:
    progress.start(URL)


@app.task
def noop(i: int) -> None:
    progress.done(i)


@app.task
def io(i: int) -> None:
    progress.io().incr("bench:io")
    progress.done(i)


@app.task
def lat(sent: float) -> None:
    progress.started(sent)


@app.task
async def sleep(seconds: float, i: int = -1) -> None:
    await asyncio.sleep(seconds)
    progress.done(i)


TASKS = {"noop": noop, "io": io, "lat": lat, "sleep": sleep, "eta": noop}


class Adapter:
    name = "WakaQ"
    concurrency = app.concurrency
    backlog_keys = (f"wakaq:{QUEUE}", f"wakaq:eta:{QUEUE}")
    eta_key = f"wakaq:eta:{QUEUE}"

    def delay(self, kind: str, *args: object) -> None:
        TASKS[kind].delay(*args)

    def enqueue_bulk(self, kind: str, count: int, chunk: int = 1000) -> None:
        key = app.queues_by_name[QUEUE].broker_key
        for start in range(0, count, chunk):
            pipe = app.broker.pipeline(transaction=False)
            for i in range(start, min(count, start + chunk)):
                args = [ASYNC_SLEEP, i] if kind == "sleep" else [i]
                pipe.rpush(key, serialize({"name": kind, "args": args, "kwargs": {}, "retry": 0}))
            pipe.execute()

    def enqueue_eta(self, count: int, chunk: int = 1000) -> None:
        """All due already: the same ZADD (whole-second score) as `.delay(eta=...)` in WakaQ 3.0.7."""
        key = app.queues_by_name[QUEUE].broker_eta_key
        due = datetime.now(timezone.utc) - timedelta(seconds=5)
        score = calendar.timegm(due.utctimetuple())
        noop.delay(count - 1, eta=due)  # one through the public API, to keep the format honest
        for start in range(0, count - 1, chunk):
            pipe = app.broker.pipeline(transaction=False)
            for i in range(start, min(count - 1, start + chunk)):
                pipe.zadd(key, {serialize({"name": "noop", "args": [i], "kwargs": {}}): score}, nx=True)
            pipe.execute()

    def worker_command(self) -> list[str]:
        return [_script("wakaq-worker"), "--app", "systems.wakaq_py.app"]

    def version(self) -> str:
        from importlib.metadata import version

        return version("wakaq")


def _script(name: str) -> str:
    """A console script of the interpreter running this module (its venv's bin/), else from PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    return beside if os.path.exists(beside) else (shutil.which(name) or name)
