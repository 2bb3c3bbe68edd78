"""wakaq (this repository, Rust core; from the repo's `.venv`, `make build-release`): the app and the adapter.

The same tasks as the WakaQ 3.0.7 adapter, through wakaq's public API only: `.delay()`, `.delay_many()` (one
round trip per chunk) and `.delay(eta=...)`. Its worker is `wakaq-worker --app`.
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timedelta, timezone

from progress import ASYNC_SLEEP, QUEUE, progress

from systems._script import launcher, script
from wakaq import WakaQ

URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0")
DAEMONS = int(os.environ.get("BENCH_DAEMONS", "1"))  # scale curves: worker daemons side by side
#: scale curves: queues in priority order; the benchmark's tasks go to the last (lowest priority) one
QUEUES = [*(f"{QUEUE}-hi{k}" for k in range(int(os.environ.get("BENCH_QUEUES", "1")) - 1)), QUEUE]
PAYLOAD = int(os.environ.get("BENCH_PAYLOAD", "0"))  # scale curves: bytes of padding in each task's args

app = WakaQ(
    url=URL,
    queues=QUEUES,
    concurrency=int(os.environ.get("BENCH_CONCURRENCY", "2")),
    async_concurrency=int(os.environ.get("BENCH_ASYNC_CONCURRENCY", "0")),
    worker_log_level="WARNING",
)


@app.after_worker_started
def _started() -> None:
    progress.start(URL)


@app.task(queue=QUEUE)
def noop(i: int, pad: str = "") -> None:
    progress.done(i)


@app.task(queue=QUEUE)
def io(i: int) -> None:
    progress.io().incr("bench:io")
    progress.done(i)


@app.task(queue=QUEUE)
def lat(sent: float) -> None:
    progress.started(sent)


@app.task(queue=QUEUE)
async def sleep(seconds: float, i: int = -1) -> None:
    await asyncio.sleep(seconds)
    progress.done(i)


TASKS = {"noop": noop, "io": io, "lat": lat, "sleep": sleep}


class Adapter:
    name = "wakaq"
    concurrency = app.concurrency * DAEMONS
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
            elif PAYLOAD:
                pad = "x" * PAYLOAD
                task.delay_many([((i, pad), {}) for i in range(start, stop)])
            else:
                task.delay_many([((i,), {}) for i in range(start, stop)])

    def enqueue_eta(self, count: int) -> None:
        due = datetime.now(timezone.utc) - timedelta(seconds=5)
        for i in range(count):
            noop.delay(i, eta=due)

    def enqueue_eta_later(self, count: int) -> None:
        """`count` eta tasks due in an hour (the eta set that enqueue cost is measured against)."""
        due = datetime.now(timezone.utc) + timedelta(hours=1)
        for i in range(count):
            noop.delay(i, eta=due)

    def worker_command(self) -> list[str]:
        command = [_script("wakaq-worker"), "--app", "systems.wakaq_rs.app"]
        return launcher(DAEMONS, command) if DAEMONS > 1 else command

    def version(self) -> str:
        import wakaq

        return str(wakaq.__version__)


def _script(name: str) -> str:
    return script(name)
