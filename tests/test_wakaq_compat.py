"""Moving from WakaQ: tasks both ways between wakaq and the real WakaQ 4.0.4 (from PyPI), on a real redis-server, with
real worker processes on both sides (ours: `start_worker`; WakaQ's: its own `wakaq-worker`), every task counted.

WakaQ and wakaq share the import name `wakaq`, so WakaQ lives in a venv of its own: `make test-wakaq-compat` makes it
(.tmp/wakaq-venv) and points WAKAQ_COMPAT_PYTHON at its python (the target is part of `make test`); without that
variable this module skips. WakaQ's side is in tests/compat/ (its app, its producer), ours in
tests/apps/compat_app.py; both run the same task, which counts its runs in Redis (tests/compat/values.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

from tests.compat import values
from tests.conftest import ROOT
from tests.keyspace import CLUSTER
from tests.workers import StartWorker, wait_until

COMPAT_PYTHON = os.environ.get("WAKAQ_COMPAT_PYTHON")
WAKAQ_APP = "tests.compat.wakaq_app.wakaq"
QUEUE_KEYS = ("wakaq:high", "wakaq:default")
ETA_KEYS = ("wakaq:eta:high", "wakaq:eta:default")

pytestmark = [
    pytest.mark.app("tests.apps.compat_app"),
    pytest.mark.skipif(not COMPAT_PYTHON, reason="needs WakaQ 4.0.4 in its own venv: run make test-wakaq-compat"),
    pytest.mark.skipif(CLUSTER, reason="WakaQ 4.0.4 has no Redis Cluster support"),
    pytest.mark.slow,
]


def upstream(redis_url: str, *args: str) -> str:
    """`python -m tests.compat.upstream ARGS` in WakaQ's venv (WakaQ's producer); its stdout."""
    assert COMPAT_PYTHON
    env = {**os.environ, "WAKAQ_TEST_URL": redis_url, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [COMPAT_PYTHON, "-m", "tests.compat.upstream", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class WakaQWorker:
    """WakaQ 4.0.4's own `wakaq-worker` daemon (its venv's console script) in a session of its own."""

    def __init__(self, redis_url: str, log: Path, concurrency: int) -> None:
        assert COMPAT_PYTHON
        self.log = log
        env = {
            **os.environ,
            "WAKAQ_TEST_URL": redis_url,
            "WAKAQ_TEST_LOG": str(log),
            "WAKAQ_TEST_CONCURRENCY": str(concurrency),
            "PYTHONPATH": str(ROOT),
        }
        script = Path(COMPAT_PYTHON).parent / "wakaq-worker"
        with open(log.with_suffix(".err"), "wb") as err:
            self.proc = subprocess.Popen(
                [str(script), "--app", WAKAQ_APP],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in (self.log, self.log.with_suffix(".err")) if p.exists())

    def wait_ready(self, client: redis.Redis, timeout: float = 30.0) -> None:
        """Its parent subscribes to the broadcast channel once every child is forked."""

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"WakaQ's worker exited with {self.proc.returncode}:\n{self.log_text()}")
            return bool(client.pubsub_numsub("wakaq-broadcast")[0][1] >= 1)

        wait_until(ready, timeout, what="WakaQ's worker to subscribe")

    def stop(self) -> None:
        """SIGTERM to its process group (the daemon and its children, which this test started), SIGKILL after 5 s."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)  # NOTE: after many crashed children WakaQ's parent may not notice the last exit
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)


@pytest.fixture
def wakaq_worker(redis_url: str, rclient: redis.Redis, tmp_path: Path) -> Iterator[Callable[..., WakaQWorker]]:
    started: list[WakaQWorker] = []

    def start(concurrency: int = 2) -> WakaQWorker:
        worker = WakaQWorker(redis_url, tmp_path / f"wakaq{len(started)}.log", concurrency)
        started.append(worker)
        worker.wait_ready(rclient)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()


def runs(client: redis.Redis) -> dict[int, int]:
    return {int(k): int(v) for k, v in client.hgetall(values.RUNS).items()}


def drained(client: redis.Redis) -> bool:
    """Nothing pending or waiting on an eta in the test's queues."""
    return sum(client.llen(k) for k in QUEUE_KEYS) + sum(client.zcard(k) for k in ETA_KEYS) == 0


def wait_for_runs(client: redis.Redis, count: int, timeout: float = 60.0) -> dict[int, int]:
    """Every one of `count` tasks ran, the queues are empty, and nothing ran again in the next half second."""
    wait_until(lambda: len(runs(client)) >= count and drained(client), timeout, what=f"{count} tasks to run")
    time.sleep(0.5)
    return runs(client)


def check_received(client: redis.Redis, ids: range) -> None:
    """Each task received its arguments as sent (tests/compat/values.py `expected`)."""
    seen = {int(k): v.decode() for k, v in client.hgetall(values.SEEN).items()}
    for i in ids:
        assert seen[i] == values.expected(i), f"task {i}"


def test_json_mode_writes_wakaqs_bytes(app: ModuleType, redis_url: str, rclient: redis.Redis) -> None:
    """Our JSON payloads are WakaQ's, byte for byte: queued tasks, eta members (a WakaQ producer's equal eta task
    dedupes against ours), and the scheduler's element."""
    import json

    from wakaq.scheduler import build_entries

    theirs = [json.loads(line) for line in upstream(redis_url, "serialize", "0", "20").splitlines()]
    for i in range(20):
        args, kwargs = values.arguments(i)
        app.json_record.delay(*args, queue="high", **kwargs)
        app.json_record.delay(*args, queue="high" if i % 2 else None, eta=timedelta(hours=1), **kwargs)
    queued = [raw.decode() for raw in rclient.lrange("wakaq:high", 0, -1)]
    assert queued == [t["queued"] for t in theirs]
    members = [m.decode() for key in ETA_KEYS for m in rclient.zrange(key, 0, -1)]
    assert sorted(members) == sorted(t["later"] for t in theirs)
    upstream(redis_url, "produce", "0", "20", "--eta", "3600")  # the same 20 eta tasks, from WakaQ's producer
    assert [rclient.zcard(key) for key in ETA_KEYS] == [10, 10]
    (entry,) = build_entries(app.json_app)
    (cron_theirs,) = [json.loads(line) for line in upstream(redis_url, "serialize", str(app.CRON_ID), "1").splitlines()]
    assert entry.element.decode() == cron_theirs["queued"]


def test_wakaq_producer_to_our_worker(
    app: ModuleType, redis_url: str, rclient: redis.Redis, start_worker: StartWorker
) -> None:
    """WakaQ 4.0.4's producer -> our `wakaq-worker`: 50 tasks queued before our worker starts (queued during the
    move), 40 sent while it runs, 10 eta tasks (WakaQ's eta set, promoted by our daemon) and one broadcast (WakaQ's
    PUBLISH, relayed by our daemon): each runs exactly once, with its arguments as sent."""
    upstream(redis_url, "produce", "0", "50")
    upstream(redis_url, "produce", "90", "10", "--eta", "1")
    start_worker(concurrency=2)
    upstream(redis_url, "produce", "50", "40")
    assert upstream(redis_url, "broadcast", "100").strip() == "1"  # our daemon is the one subscriber
    counted = wait_for_runs(rclient, 101)
    assert counted == {i: 1 for i in range(101)}
    check_received(rclient, range(101))


def test_our_json_producer_to_wakaq_worker(
    app: ModuleType, rclient: redis.Redis, wakaq_worker: Callable[..., WakaQWorker]
) -> None:
    """Our producer with payload_format="json" -> WakaQ 4.0.4's own worker, through every producer path: `.delay()`
    (30 queued before WakaQ's worker starts, 20 after), `delay_many` (20), `delay_with_options` (10), the async
    `adelay` (10, coalesced into one push), eta tasks (5 timedelta, 5 datetime: WakaQ's daemon promotes them),
    `.broadcast()` (WakaQ's PUBLISH) and a scheduler fire: 102 tasks, each run exactly once by WakaQ."""
    task = app.json_record

    def send(i: int) -> None:
        args, kwargs = values.arguments(i)
        task.delay(*args, queue="high" if i % 2 else None, **kwargs)

    for i in range(30):
        send(i)
    wakaq_worker(concurrency=2)
    for i in range(30, 50):
        send(i)
    for queue, ids in (("high", range(50, 60)), ("default", range(60, 70))):
        assert task.delay_many([values.arguments(i) for i in ids], queue=queue) == 10
    for i in range(70, 80):
        args, kwargs = values.arguments(i)
        task.delay_with_options(args, kwargs, queue="high")

    async def adelay_all() -> None:
        calls = [values.arguments(i) for i in range(80, 90)]
        await asyncio.gather(*(task.adelay(*args, **kwargs) for args, kwargs in calls))

    asyncio.run(adelay_all())
    for i in range(90, 100):
        args, kwargs = values.arguments(i)
        later: Any = timedelta(seconds=1) if i < 95 else datetime.now(timezone.utc) + timedelta(seconds=1)
        task.delay(*args, eta=later, **kwargs)
    args, kwargs = values.arguments(100)
    assert task.broadcast(*args, **kwargs) == 1  # WakaQ's daemon is the one subscriber
    fire_cron_slot(app)
    counted = wait_for_runs(rclient, 102)
    assert counted == {i: 1 for i in range(102)}
    check_received(rclient, range(102))


def fire_cron_slot(app: ModuleType) -> None:
    """What `wakaq-scheduler` does for one slot of the JSON app's schedule (scheduler.py `Entry`, `Broker.fire`)."""
    from wakaq.scheduler import build_entries

    (entry,) = build_entries(app.json_app)
    slot = str(int(time.time()) // 60 * 60)
    assert app.json_app.broker.fire(entry.id, slot, "test", 120, entry.queue.name, entry.element)


def test_msgpack_payloads_are_lost_on_wakaqs_worker(
    app: ModuleType, rclient: redis.Redis, wakaq_worker: Callable[..., WakaQWorker]
) -> None:
    """The hazard the order of a move avoids (README "Moving from WakaQ"): our default msgpack payloads, popped by a
    WakaQ 4.0.4 worker still running, are lost. WakaQ pops with BLPOP and its redis-py client decodes every reply as
    UTF-8 (`decode_responses=True`), which msgpack is not: the UnicodeDecodeError ends that child after the task left
    the queue, and WakaQ forks a new child for the next one. 0 of 100 run."""
    worker = wakaq_worker(concurrency=2)
    for i in range(100):
        args, kwargs = values.arguments(i)
        app.record.delay(*args, queue="high" if i % 2 else None, **kwargs)
    wait_until(lambda: drained(rclient), 120, what="WakaQ's worker to pop all 100 tasks")
    time.sleep(0.5)
    assert runs(rclient) == {}
    assert "UnicodeDecodeError" in worker.log_text()


def test_a_msgpack_eta_task_stops_wakaqs_worker(
    app: ModuleType, rclient: redis.Redis, wakaq_worker: Callable[..., WakaQWorker]
) -> None:
    """Worse for eta tasks: WakaQ's daemon takes every due member of an eta set in one script (ZRANGEBYSCORE, then
    ZREMRANGEBYSCORE) and decodes the reply, so one msgpack member fails the whole reply: the due tasks of that
    queue are gone, WakaQ's JSON ones too, and the error ends WakaQ's parent loop, which stops the daemon."""
    worker = wakaq_worker(concurrency=1)
    due = datetime.now(timezone.utc) + timedelta(seconds=1)  # NOTE: one score: all are due in the same pass
    for i in range(6):
        sender = app.record if i == 3 else app.json_record
        sender.delay(i, eta=due)
    wait_until(lambda: worker.proc.poll() is not None, 30, what="WakaQ's worker to stop")
    assert rclient.zcard("wakaq:eta:default") == 0
    assert runs(rclient) == {}
    assert "UnicodeDecodeError" in worker.log_text()
