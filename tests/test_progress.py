"""Progress (`current_task.set_progress`, `handle.progress()`): written by progress.lua into the task's own key, only
while the task is in flight under the writing child and its result record is not final.

Real Redis and real `wakaq-worker` processes (tests/apps/progress_app.py).
"""

from __future__ import annotations

import asyncio
import logging
from types import ModuleType
from typing import Any

import pytest

from tests.keyspace import KEYS, scan_keys
from tests.keyspace import consumer as make_consumer
from tests.workers import StartWorker, events, wait_until
from wakaq import current_task
from wakaq._wakaq import packb
from wakaq.ids import new_id
from wakaq.results import DONE, RUNNING
from wakaq.testing import eager

pytestmark = [pytest.mark.timeout(90), pytest.mark.app("tests.apps.progress_app")]


def test_progress_read_while_the_task_runs_and_after_it_finished(
    app: ModuleType, rclient: Any, start_worker: StartWorker
) -> None:
    handle = app.report.delay(3, "a")
    assert handle.progress() is None, "nothing before the first report"
    start_worker()
    (seen,) = wait_until(lambda: events(rclient, "report"), 15, what="the task to report")
    assert seen["wrote"] == [True, True, True], "one write per call, each accepted"
    running = handle.progress()
    assert running is not None
    assert {k: running[k] for k in ("done", "total", "info")} == {"done": 3, "total": 3, "info": {"stage": "a"}}
    server_now = float(rclient.time()[0])
    assert abs(running["at"] - server_now) < 5, "at: Redis's clock"
    assert handle.status() == RUNNING
    assert asyncio.run(handle.aprogress()) == running
    rclient.set("go:a", 1)
    assert handle.result(timeout=15) == "a"
    after = handle.progress()
    assert after is not None and after["info"] == {"stage": "finishing"} and after["done"] == 3
    assert handle.status() == DONE
    # the task's own key, with its result record's TTL (result_ttl=10 minutes); the record is the worker's alone
    assert 590_000 < rclient.pttl(KEYS.progress(handle.id)) <= 600_000
    assert set(rclient.hkeys(KEYS.result(handle.id))) == {b"status", b"at", b"value"}


def test_async_task_reports_progress(app: ModuleType, rclient: Any, start_worker: StartWorker) -> None:
    handle = app.async_report.delay("b")
    start_worker()
    (seen,) = wait_until(lambda: events(rclient, "async_report"), 15, what="the async task to report")
    assert seen["wrote"] is True
    found = handle.progress()
    assert found is not None
    assert (found["done"], found["total"], found["info"]) == (0.5, None, {"info_tag": "b"})
    rclient.set("go:b", 1)
    assert handle.result(timeout=15) == "b"


def test_a_unique_task_has_an_id_so_its_progress_is_kept_a_day(
    app: ModuleType, rclient: Any, start_worker: StartWorker
) -> None:
    handle = app.unique_report.delay("u")
    start_worker()
    wait_until(lambda: events(rclient, "unique_report"), 15, what="the unique task to report")
    found = handle.progress()
    assert found is not None and (found["done"], found["total"]) == (1, 3)
    assert 86_390_000 < rclient.pttl(KEYS.progress(handle.id)) <= 86_400_000
    rclient.set("go:u", 1)


def test_a_plain_task_writes_nothing(app: ModuleType, rclient: Any, start_worker: StartWorker) -> None:
    app.plain_report.delay("p")
    start_worker()
    (seen,) = wait_until(lambda: events(rclient, "plain_report"), 15, what="the plain task")
    assert seen["wrote"] is False
    assert scan_keys(rclient, KEYS.progress("*")) == []


def test_outside_a_task_and_in_eager_mode_nothing_is_written(app: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="wakaq"):
        assert current_task.set_progress(1, 2) is False
    assert "no task id to report progress by" in caplog.text
    with pytest.raises(TypeError, match="done must be a number"):
        current_task.set_progress("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="total must be a number"):
        current_task.set_progress(1, True)
    with eager(app.wakaq):
        handle = app.report.delay(0, "eager")
    assert handle.progress() is None


def _claim(app: ModuleType, rclient: Any, meta: dict[str, Any]) -> tuple[Any, Any]:
    consumer = make_consumer(app.wakaq.url, ["default"], "d-progress", client=rclient, prefix=app.wakaq.keys.prefix)
    app.wakaq.broker.push("default", "report", [1, "x"], {}, 0, meta)
    (task,) = consumer.claim([], 1)
    return consumer, task


def test_never_written_once_settled_nor_over_a_final_record(app: ModuleType, rclient: Any) -> None:
    task_id = new_id()
    consumer, task = _claim(app, rclient, {"id": task_id, "results": 60})
    assert consumer.progress(task, {"done": 1, "total": 2, "info": {}}) is True
    consumer.done(task, packb("ok"))
    record = rclient.hgetall(KEYS.result(task_id))
    assert consumer.progress(task, {"done": 2, "total": 2, "info": {}}) is False, "acked: no longer held"
    assert rclient.hget(KEYS.progress(task_id), "v") == packb({"done": 1, "total": 2, "info": {}})
    assert rclient.hgetall(KEYS.result(task_id)) == record, "the settled record is untouched"

    # a redelivered copy of a task whose record is final (it finished before its ack): its reports are refused
    rclient.delete(KEYS.progress(task_id))
    consumer, task = _claim(app, rclient, {"id": task_id, "results": 60})
    assert consumer.progress(task, {"done": 9, "total": 9, "info": {}}) is False
    assert not rclient.exists(KEYS.progress(task_id)), "nothing resurrected"
    assert rclient.hgetall(KEYS.result(task_id)) == record


def test_task_given_back_writes_nothing_and_size_is_bounded(app: ModuleType, rclient: Any) -> None:
    task_id = new_id()
    consumer, task = _claim(app, rclient, {"id": task_id})
    with pytest.raises(ValueError, match="more than 65536"):
        consumer.progress(task, {"done": 1, "total": None, "info": {"blob": "x" * 70_000}})
    # a reaper gave the task back (its in-flight field is gone): the script refuses
    rclient.delete(KEYS.inflight("d-progress"))
    assert consumer.progress(task, {"done": 1, "total": None, "info": {}}) is False
    assert not rclient.exists(KEYS.progress(task_id))
