"""`wakaq-purge` settles what it removes (issue 19, defect 12): the uniqueness lock of every purged task is released
and its result record says "cancelled", in the script that removes it, so a duplicate `.delay()` enqueues a new task
at once. Real redis-server, without a worker and beside a busy one (tests/apps/results_app.py)."""

from __future__ import annotations

from datetime import timedelta
from types import ModuleType
from typing import Any

import msgpack
import pytest

from tests.keyspace import KEYS, scan_keys
from tests.workers import StartWorker, events, wait_until
from wakaq import TaskHandle
from wakaq.admin import purge
from wakaq.exceptions import TaskFailed
from wakaq.results import CANCELLED, DONE
from wakaq.unique import default_key

pytestmark = [pytest.mark.timeout(60), pytest.mark.app("tests.apps.results_app")]


def lock_of(name: str, *args: Any) -> str:
    return KEYS.unique(default_key(name, args, {}))


def test_a_unique_task_can_be_sent_again_right_after_a_purge(app: ModuleType, rclient: Any) -> None:
    first = app.unique_slow.delay(0.1)
    assert isinstance(first, TaskHandle)
    assert purge(app.wakaq, rclient, "low") == {"queue": "low", "purged_tasks": 1, "purged_eta_tasks": 0}
    assert rclient.exists(lock_of("unique_slow", 0.1)) == 0
    again = app.unique_slow.delay(0.1)
    assert isinstance(again, TaskHandle) and again.id != first.id, "a new task, not the purged one's handle"
    assert rclient.llen(KEYS.queue("low")) == 1


def test_a_purged_task_with_results_reads_cancelled(app: ModuleType, rclient: Any) -> None:
    unique = app.unique_result.delay(0.1)
    plain = app.add.delay(1, 2)
    assert purge(app.wakaq, rclient, "low")["purged_tasks"] == 2
    for handle in (unique, plain):
        assert handle.status() == CANCELLED
        with pytest.raises(TaskFailed):
            handle.result(timeout=2)
    assert 0 < rclient.pttl(KEYS.result(plain.id)) <= 600_000
    assert rclient.llen(KEYS.result_ready(plain.id)) == 1
    again = app.unique_result.delay(0.1)
    assert isinstance(again, TaskHandle) and again.id != unique.id


def test_purged_eta_tasks_release_their_locks(app: ModuleType, rclient: Any) -> None:
    first = app.unique_slow.delay(0.1, eta=timedelta(minutes=5))
    assert isinstance(first, TaskHandle)
    assert purge(app.wakaq, rclient, "low") == {"queue": "low", "purged_tasks": 0, "purged_eta_tasks": 1}
    assert isinstance(app.unique_slow.delay(0.1), TaskHandle)


def test_a_lock_held_by_another_task_and_a_final_record_are_left_alone(app: ModuleType, rclient: Any) -> None:
    handle = app.unique_result.delay(0.1)
    lock = lock_of("unique_result", 0.1)
    rclient.set(lock, "someone-else")  # NOTE: the purged task's lock expired and another task took it
    rclient.hset(KEYS.result(handle.id), mapping={"status": DONE, "value": msgpack.packb(7)})
    assert purge(app.wakaq, rclient, "low")["purged_tasks"] == 1
    assert rclient.get(lock) == b"someone-else"
    assert handle.status() == DONE and handle.result(timeout=1) == 7


def test_a_long_queue_is_purged_in_chunks_with_every_lock(app: ModuleType, rclient: Any) -> None:
    for i in range(1200):
        assert app.unique_slow.delay(0.1, f"t{i}") is not None
    rclient.rpush(KEYS.queue("low"), b"garbage", b"\xc1\x02garbage", msgpack.packb({"name": "plain", "meta": 5}))
    app.plain.delay(1)
    assert purge(app.wakaq, rclient, "low")["purged_tasks"] == 1204
    assert scan_keys(rclient, KEYS.unique("*")) == []
    assert rclient.exists(KEYS.queue("low")) == 0


def test_a_purge_beside_a_busy_worker_removes_each_task_at_most_once(
    app: ModuleType, rclient: Any, start_worker: StartWorker
) -> None:
    """Each task either ran or was purged, never both and never neither: the purge removes only elements it read and
    that are still queued, while two children claim from the same queue."""
    app.wakaq.broker.push_many([("low", "plain", [i], {}) for i in range(3000)])
    start_worker(concurrency=2)
    wait_until(lambda: len(events(rclient, "plain")) >= 50, timeout=20, what="the worker running tasks")
    purged = purge(app.wakaq, rclient, "low")["purged_tasks"]
    # NOTE: a child hands the rest of a batch that turned slow back to the queue's front: those run afterwards
    wait_until(
        lambda: rclient.llen(KEYS.queue("low")) == 0 and rclient.hlen(KEYS.inflight(_daemon(rclient))) == 0,
        timeout=20,
        what="claimed tasks done",
    )
    ran = [e["i"] for e in events(rclient, "plain")]
    print(f"{len(ran)} ran, {purged} purged")  # shown with pytest -rP
    assert len(ran) == len(set(ran)), "no task ran twice"
    assert purged > 0 and len(ran) + purged == 3000, f"{len(ran)} ran + {purged} purged"


def _daemon(rclient: Any) -> str:
    (member,) = rclient.smembers(KEYS.daemons)
    return str(member.decode())
