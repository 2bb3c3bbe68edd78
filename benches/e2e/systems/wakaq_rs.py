"""wakaq (this repository, Rust core; from the repo's `.venv`, `make build-release`): the app and the adapter.

The same tasks as the WakaQ 3.0.7 adapter, through wakaq's public API only: `.delay()`, `.delay_many()` (one
round trip per chunk) and `.delay(eta=...)`. Its worker is `wakaq-worker --app`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from datetime import datetime, timedelta, timezone

from progress import ASYNC_SLEEP, QUEUE, progress

from wakaq import WakaQ

URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0")

app = WakaQ(
    url=URL,
    queues=[QUEUE],
    concurrency=int(os.environ.get("BENCH_CONCURRENCY", "2")),
    async_concurrency=int(os.environ.get("BENCH_ASYNC_CONCURRENCY", "0")),
    worker_log_level="WARNING",
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


TASKS = {"noop": noop, "io": io, "lat": lat, "sleep": sleep}


class Adapter:
    name = "wakaq"
    concurrency = app.concurrency
    backlog_keys = (f"wakaq:{QUEUE}", f"wakaq:eta:{QUEUE}")
    eta_key = f"wakaq:eta:{QUEUE}"

    def delay(self, kind: str, *args: object) -> None:
        TASKS[kind].delay(*args)

    def enqueue_bulk(self, kind: str, count: int, chunk: int = 1000) -> None:
        task = TASKS[kind]
        for start in range(0, count, chunk):
            stop = min(count, start + chunk)
            if kind == "sleep":
                task.delay_many([((ASYNC_SLEEP, i), {}) for i in range(start, stop)])
            else:
                task.delay_many([((i,), {}) for i in range(start, stop)])

    def enqueue_eta(self, count: int) -> None:
        due = datetime.now(timezone.utc) - timedelta(seconds=5)
        for i in range(count):
            noop.delay(i, eta=due)

    def worker_command(self) -> list[str]:
        return [_script("wakaq-worker"), "--app", "systems.wakaq_rs.app"]

    def version(self) -> str:
        import wakaq

        return str(wakaq.__version__)


def _script(name: str) -> str:
    beside = os.path.join(os.path.dirname(sys.executable), name)
    return beside if os.path.exists(beside) else (shutil.which(name) or name)
