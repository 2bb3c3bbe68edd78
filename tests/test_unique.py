"""Unique tasks (opt-in): one enqueue script takes the lock and pushes; the worker releases it when the task is done
or failed (compare-and-delete); a crashed worker's lock expires with its TTL.

Real Redis and real `wakaq-worker` processes (tests/apps/results_app.py); also run on a Redis Cluster.
"""

from __future__ import annotations

import os
import signal
import time
from types import ModuleType
from typing import Any

import pytest

from tests.keyspace import KEYS
from tests.keyspace import consumer as make_consumer
from tests.workers import StartWorker, events, wait_until
from wakaq import TaskHandle
from wakaq._wakaq import decode_task_meta, unpackb
from wakaq.results import DONE
from wakaq.unique import default_key

pytestmark = [pytest.mark.timeout(90), pytest.mark.app("tests.apps.results_app")]


def lock_of(app: ModuleType, name: str, *args: Any, **kwargs: Any) -> str:
    return KEYS.unique(default_key(name, args, kwargs))


def test_a_second_delay_while_pending_is_a_no_op(app: ModuleType, rclient: Any) -> None:
    first = app.unique_slow.delay(0.1)
    assert isinstance(first, TaskHandle)
    assert app.unique_slow.delay(0.1) is None
    assert app.unique_slow.delay_with_options((0.1,)) is None
    other = app.unique_slow.delay(0.2)
    assert isinstance(other, TaskHandle), "other arguments, another key"
    raw = rclient.lrange(KEYS.queue("low"), 0, -1)
    assert len(raw) == 2
    lock = lock_of(app, "unique_slow", 0.1)
    assert decode_task_meta(raw[0])[4] == {"id": first.id, "unique": lock}
    assert rclient.get(lock).decode() == first.id
    assert 29_000 < rclient.pttl(lock) <= 30_000
    assert rclient.llen(KEYS.bell("low")) == 1


def test_a_task_parameter_named_unique_key_reaches_the_task(
    app: ModuleType, rclient: Any, start_worker: StartWorker
) -> None:
    """Defect 13: `.delay()` reserves only `queue` and `eta`, as WakaQ; `unique_key` is an argument of the task."""
    handle = app.keyed.delay(unique_key="mine")
    start_worker()
    wait_until(lambda: events(rclient, "keyed") or rclient.llen(KEYS.failed("low")), what="the task to run or fail")
    assert [unpackb(raw)["reason"] for raw in rclient.lrange(KEYS.failed("low"), 0, -1)] == []
    assert [e["unique_key"] for e in events(rclient, "keyed")] == ["mine"]
    assert handle is None, "a plain task: no handle, no lock"
    assert not list(rclient.scan_iter(KEYS.unique("*")))


def test_a_duplicate_of_a_task_with_results_returns_the_holders_handle(app: ModuleType, rclient: Any) -> None:
    first = app.unique_result.delay(0.1)
    again = app.unique_result.delay(0.1)
    assert again == first
    assert rclient.llen(KEYS.queue("low")) == 1


def test_unique_key_on_any_task(app: ModuleType, rclient: Any) -> None:
    first = app.plain.delay_with_options((1,), unique_key="the-one")
    assert isinstance(first, TaskHandle)
    assert app.plain.delay_with_options((2,), unique_key="the-one") is None
    assert app.plain.delay_with_options((3,), unique_key="the-one") is None
    assert app.plain.delay(4) is None  # not unique, plain: enqueued, no handle
    raw = rclient.lrange(KEYS.queue("low"), 0, -1)
    assert [decode_task_meta(r)[1] for r in raw] == [[1], [4]]
    assert decode_task_meta(raw[0])[4] == {"id": first.id, "unique": KEYS.unique("the-one")}
    assert decode_task_meta(raw[1])[4] is None
    assert 3_590_000 < rclient.pttl(KEYS.unique("the-one")) <= 3_600_000


def test_unique_eta_task_holds_its_lock_while_it_waits(app: ModuleType, rclient: Any) -> None:
    first = app.unique_slow.delay(0.1, eta=60)
    assert isinstance(first, TaskHandle)
    assert app.unique_slow.delay(0.1, eta=120) is None
    assert app.unique_slow.delay(0.1) is None
    assert rclient.zcard(KEYS.eta("low")) == 1
    assert rclient.llen(KEYS.queue("low")) == 0
    assert 89_000 < rclient.pttl(lock_of(app, "unique_slow", 0.1)) <= 90_000


def test_duplicate_while_running_then_allowed_after_it_finished(
    app: ModuleType, rclient: Any, start_worker: StartWorker
) -> None:
    lock = lock_of(app, "unique_slow", 1.0, tag="a")
    worker = start_worker()
    try:
        assert app.unique_slow.delay(1.0, tag="a") is not None
        wait_until(lambda: events(rclient, "unique-start"), what="the first run")
        assert app.unique_slow.delay(1.0, tag="a") is None
        assert rclient.llen(KEYS.queue("low")) == 0
        wait_until(lambda: events(rclient, "unique-end"), what="the first run to end")
        wait_until(lambda: not rclient.exists(lock), what="the lock released")
        again = app.unique_slow.delay(1.0, tag="a")
        assert isinstance(again, TaskHandle)
        wait_until(lambda: len(events(rclient, "unique-end")) == 2, what="the second run")
        wait_until(lambda: not rclient.exists(lock), what="the lock released again")
    finally:
        worker.stop()
    assert len(events(rclient, "unique-start")) == 2


def test_a_unique_eta_task_releases_its_lock_when_it_ran(
    app: ModuleType, rclient: Any, start_worker: StartWorker
) -> None:
    lock = lock_of(app, "unique_slow", 0.1, tag="eta")
    worker = start_worker()
    try:
        assert app.unique_slow.delay(0.1, tag="eta", eta=0.5) is not None
        assert rclient.pttl(lock) > 29_000
        wait_until(lambda: events(rclient, "unique-end"), what="the eta task to run")
        wait_until(lambda: not rclient.exists(lock), what="the lock released")
    finally:
        worker.stop()


def test_a_failed_unique_task_releases_its_lock(app: ModuleType, rclient: Any, start_worker: StartWorker) -> None:
    handle = app.broken.delay_with_options(("x",), unique_key="breaks")
    worker = start_worker()
    try:
        wait_until(lambda: not rclient.exists(KEYS.unique("breaks")), what="the lock released")
    finally:
        worker.stop()
    assert handle.status() == "failed"


def test_the_redelivered_run_after_sigkill_releases_the_lock(
    app: ModuleType, rclient: Any, start_worker: StartWorker
) -> None:
    lock = lock_of(app, "unique_result", 1.5)
    worker = start_worker()
    try:
        handle = app.unique_result.delay(1.5)
        (first,) = wait_until(lambda: events(rclient, "unique-result"), what="the first run")
        os.kill(first["pid"], signal.SIGKILL)
        wait_until(lambda: len(events(rclient, "unique-result")) == 2, timeout=20, what="the redelivered run")
        assert app.unique_result.delay(1.5) == handle, "still locked while the rerun runs"
        assert handle.result(timeout=20) == 1.5
        wait_until(lambda: not rclient.exists(lock), what="the lock released by the rerun")
    finally:
        worker.stop()
    assert handle.status() == DONE


def test_the_lock_expires_with_its_ttl(app: ModuleType, rclient: Any) -> None:
    """No worker: the task is never run (as after a worker that died with it); the lock lasts `unique_for`."""
    lock = lock_of(app, "unique_short")
    began = time.monotonic()
    assert app.unique_short.delay() is not None
    assert app.unique_short.delay() is None
    assert 0 < rclient.pttl(lock) <= 1500
    wait_until(lambda: not rclient.exists(lock), timeout=5, what="the lock to expire")
    assert time.monotonic() - began >= 1.4
    assert app.unique_short.delay() is not None
    assert rclient.llen(KEYS.queue("low")) == 2


def test_release_only_deletes_its_own_lock(app: ModuleType, rclient: Any) -> None:
    """The script that settles a task deletes its lock only while the lock still holds the task's id."""
    consumer = make_consumer(app.wakaq.url, ["low"], "d-unique", client=rclient, prefix=app.wakaq.keys.prefix)
    for task in ("older-task", "newer-task"):
        app.wakaq.broker.push("low", "t", [], {}, 0, {"id": task, "unique": KEYS.unique("k")})
    rclient.set(KEYS.unique("k"), "newer-task", px=10_000)
    (older, newer) = consumer.claim([], 2)
    consumer.done(older)
    assert rclient.get(KEYS.unique("k")) == b"newer-task"
    consumer.done(newer)
    assert not rclient.exists(KEYS.unique("k"))


def test_eager_mode_runs_every_call(app: ModuleType) -> None:
    from wakaq.testing import eager

    with eager(app.wakaq):
        assert app.unique_result.delay(0).result() == 0
        assert app.unique_result.delay(0).result() == 0
