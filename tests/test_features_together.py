"""The opt-in features together, on a real Redis and real workers: a results task that is retried says
"retrying" between attempts, a unique task keeps its lock across its retries, and cancelling (pending or
running) settles the task's result record as "cancelled" and releases its lock."""

from __future__ import annotations

import json
import time
from types import ModuleType
from typing import Any

import pytest

from tests.keyspace import KEYS
from tests.workers import StartWorker, wait_until
from wakaq import TaskFailed, TaskHandle
from wakaq.results import CANCELLED, DONE, RETRYING, RUNNING

pytestmark = [pytest.mark.timeout(60), pytest.mark.app("tests.apps.together_app")]


def runs(rclient: Any, key: str) -> list[dict[str, Any]]:
    return [e for e in (json.loads(raw) for raw in rclient.lrange("events", 0, -1)) if e["key"] == key]


def test_a_retried_results_task_says_retrying_then_done(
    app: ModuleType, rclient: Any, start_worker: StartWorker
) -> None:
    worker = start_worker()
    try:
        handle: TaskHandle = app.flaky_result.delay("r", 2)
        for attempt in (1, 2):
            # NOTE: the record says "retrying" before the retry is settled into the eta set (1 s, then 2 s there)
            wait_until(
                lambda: len(runs(rclient, "r")) == attempt and rclient.zcard(KEYS.eta("default")) == 1,  # noqa: B023
                timeout=10,
                what=f"attempt {attempt} waiting for its retry",
            )
            assert handle.status() == RETRYING
        assert handle.result(timeout=10) == "ok after 3"
        assert handle.status() == DONE
        assert [e["attempt"] for e in runs(rclient, "r")] == [1, 2, 3]
    finally:
        worker.stop()


def test_a_unique_task_keeps_its_lock_while_it_waits_for_a_retry(
    app: ModuleType, rclient: Any, start_worker: StartWorker
) -> None:
    worker = start_worker()
    try:
        first = app.unique_flaky.delay("u")
        assert isinstance(first, TaskHandle)
        wait_until(lambda: rclient.zcard(KEYS.eta("default")) == 1, what="the retry waiting in the eta set")
        assert app.unique_flaky.delay("u") is None, "a duplicate while the first waits for its retry"
        wait_until(lambda: len(runs(rclient, "u")) == 2, timeout=10, what="the retry")
        wait_until(lambda: not list(rclient.scan_iter(KEYS.unique("*"))), what="the lock released")
        again = app.unique_flaky.delay("u")
        assert isinstance(again, TaskHandle) and again.id != first.id, "enqueued again once it finished"
    finally:
        worker.stop()


def test_cancelling_a_pending_task_settles_its_result_and_releases_its_lock(app: ModuleType, rclient: Any) -> None:
    handle = app.slow_unique.delay("c", 0.0)
    assert app.slow_unique.delay("c", 0.0).id == handle.id, "the duplicate returns the holder's handle"
    assert app.wakaq.cancel(handle.id) == "cancelled"
    assert handle.status() == CANCELLED
    with pytest.raises(TaskFailed) as failed:
        handle.result(timeout=1)
    assert failed.value.status == CANCELLED and failed.value.error_type == "TaskCancelled"
    assert not list(rclient.scan_iter(KEYS.unique("*"))), "the lock is released"
    again = app.slow_unique.delay("c", 0.0)
    assert again.id != handle.id


def test_terminating_a_running_task_settles_its_result_as_cancelled(
    app: ModuleType, rclient: Any, start_worker: StartWorker
) -> None:
    worker = start_worker()
    try:
        handle = app.slow_unique.delay("t", 30.0)
        wait_until(lambda: handle.status() == RUNNING, what="the task running")
        assert app.wakaq.cancel(handle.id, terminate=True) == "terminating"
        started = time.monotonic()
        with pytest.raises(TaskFailed) as failed:
            handle.result(timeout=10)
        assert time.monotonic() - started < 10
        assert failed.value.status == CANCELLED, failed.value
        assert not list(rclient.scan_iter(KEYS.unique("*"))), "the lock is released"
        follow = app.slow_unique.delay("t2", 0.0)
        assert follow.result(timeout=10) == "finished", "the child lives on"
    finally:
        worker.stop()


@pytest.mark.parametrize(
    ("task", "error_type", "runs_before"),
    [("poison", "WorkerLost", 3), ("past_hard_timeout", "HardTimeout", 1)],
    ids=["dead-listed", "hard-timeout"],
)
def test_a_task_the_supervisor_settles_gets_a_final_record_and_frees_its_lock(
    app: ModuleType, rclient: Any, start_worker: StartWorker, task: str, error_type: str, runs_before: int
) -> None:
    """No child is left to write these: the parent (or a reaper) records the task failed and settles its meta."""
    worker = start_worker()
    try:
        handle = getattr(app, task).delay("s")
        with pytest.raises(TaskFailed) as failed:
            handle.result(timeout=30)
        assert failed.value.error_type == error_type and failed.value.status == "failed", failed.value
        assert len(runs(rclient, "s")) == runs_before
        assert rclient.llen(KEYS.failed("default")) == 1, "recorded failed once"
        assert not list(rclient.scan_iter(KEYS.unique("*"))), "the lock is released"
    finally:
        worker.stop()
