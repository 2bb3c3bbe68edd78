"""App for worker integration tests. Options come from WAKAQ_TEST_* env vars so one module serves every test.

Each task appends a JSON event to the Redis list `events` (task, args, pid, time) so tests can see what ran.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

from tests.apps.common import Events, env, worker_options
from wakaq import Queue, SoftTimeout, WakaQ


def _int(name: str, default: int | None = None) -> int | None:
    value = env(name)
    return int(value) if value else default


wakaq = WakaQ(
    queues=[(0, "high"), (1, "medium"), Queue("retrying", priority=2, max_retries=2), "low"],
    async_concurrency=_int("WAKAQ_TEST_ASYNC_CONCURRENCY", 0) or 0,
    exclude_queues=[q for q in env("WAKAQ_TEST_EXCLUDE", "").split(",") if q],
    max_tasks_per_worker=_int("WAKAQ_TEST_MAX_TASKS"),
    max_retries=0,
    soft_timeout=float(env("WAKAQ_TEST_SOFT", "0")) or None,
    hard_timeout=float(env("WAKAQ_TEST_HARD", "0")) or None,
    wait_timeout=float(env("WAKAQ_TEST_WAIT", "0.5")),
    heartbeat_timeout=float(env("WAKAQ_TEST_HEARTBEAT", "15")),
    **worker_options(),
)

if env("WAKAQ_TEST_FAIL_IN_SPAWNED_CHILD") and os.path.basename(sys.argv[0]) == "_spawned.py":
    raise RuntimeError("refusing to start in a spawned child")

if env("WAKAQ_TEST_IMPORT_THREAD"):
    # An app that starts a thread at import (a metrics exporter, a connection pool's keepalive): unsafe to fork.
    import threading

    threading.Thread(target=time.sleep, args=(3600,), daemon=True, name="import-thread").start()

events = Events(wakaq)
record = events.record


@wakaq.after_worker_started
async def started() -> None:
    await asyncio.sleep(0)
    record("after_worker_started")


@wakaq.task(queue="high")
def high(i: int) -> None:
    record("high", i=i)


@wakaq.task(queue="low")
def low(i: int) -> None:
    record("low", i=i)


@wakaq.task
def default_task(i: int) -> None:
    record("default_task", i=i)


@wakaq.task(queue="medium")
def medium(i: int) -> None:
    record("medium", i=i)


@wakaq.task
def sleeper(seconds: float, tag: str = "") -> None:
    record("sleeper-start", tag=tag)
    time.sleep(seconds)
    record("sleeper-end", tag=tag)


@wakaq.task
async def async_sleeper(seconds: float, tag: str = "") -> None:
    record("async-start", tag=tag)
    await asyncio.sleep(seconds)
    record("async-end", tag=tag)


@wakaq.task(queue="retrying", soft_timeout=0.7, hard_timeout=5)
def soft_sleeper() -> None:
    record("soft-start")
    try:
        time.sleep(3)
    except SoftTimeout:
        record("soft-timeout-seen")
        raise


@wakaq.task(queue="retrying", soft_timeout=0.7, hard_timeout=5, max_retries=0)
def soft_no_retry() -> None:
    record("soft-no-retry-start")
    time.sleep(3)


@wakaq.task(soft_timeout=0.5, hard_timeout=5)
async def async_soft() -> None:
    record("async-soft-start")
    try:
        await asyncio.sleep(3)
    except asyncio.CancelledError:
        record("async-cancelled-seen")
        raise


@wakaq.task(soft_timeout=0.5, hard_timeout=1.0)
def hard_sleeper() -> None:
    record("hard-start")
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGQUIT])  # ignore the soft timeout: only SIGKILL ends it
    time.sleep(10)
    record("hard-end")


@wakaq.task
def exiter(code: int) -> None:
    record("exiter")
    sys.exit(code)


@wakaq.task
def failing() -> None:
    record("failing")
    raise ValueError("failing on purpose")


@wakaq.task
def suicide() -> None:
    record("suicide")
    os.kill(os.getpid(), signal.SIGKILL)


@wakaq.task
def once_killed(key: str) -> None:
    """Killed (SIGKILL) the first time it runs, succeeds the second time."""
    attempt = events.count(f"attempts:{key}")
    record("once_killed", attempt=attempt)
    if attempt == 1:
        os.kill(os.getpid(), signal.SIGKILL)


@wakaq.task
def printer(text: str) -> None:
    print(text, flush=False)
    record("printer")


@wakaq.task
def bcast(tag: str) -> None:
    record("bcast", tag=tag)


@wakaq.task
def eta_task(due: float) -> None:
    record("eta", due=due)


@wakaq.task(hard_timeout=1.0)
async def async_hard() -> None:
    record("async-hard-start")
    time.sleep(10)  # blocks the event loop: only the parent's SIGKILL at the hard timeout ends it


@wakaq.task
def suicide_at(when: object) -> None:
    """A poison pill whose payload holds a datetime (a msgpack ext type)."""
    record("suicide_at")
    os.kill(os.getpid(), signal.SIGKILL)


@wakaq.task
def meta_probe(tag: str) -> None:
    from wakaq.context import current_meta

    current = wakaq.current_task
    record("meta_probe", tag=tag, meta=current_meta(), name=current.name if current else None)


@wakaq.task
async def async_meta_probe(tag: str) -> None:
    from wakaq.context import current_meta

    await asyncio.sleep(0.05)
    record("async_meta_probe", tag=tag, meta=current_meta())


@wakaq.task(queue="retrying", soft_timeout=0.5, hard_timeout=5)
def mutating_sleeper(items: list[object]) -> None:
    """Changes its argument (leaving something that cannot be encoded) and then passes its soft timeout."""
    record("mutating_sleeper", items=list(items))
    items.append(object())
    time.sleep(3)
