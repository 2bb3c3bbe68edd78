"""Task results (opt-in): TaskHandle, the record the worker writes before the ack, first writer wins.

Real Redis and real `wakaq-worker` processes (tests/apps/results_app.py); also run on a Redis Cluster.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import timedelta
from types import ModuleType
from typing import Any

import pytest

from tests.keyspace import KEYS
from tests.keyspace import consumer as make_consumer
from tests.workers import StartWorker, events, wait_until
from wakaq import TaskFailed, TaskHandle, WakaQ
from wakaq._wakaq import ClaimedTask, Consumer, decode_task_meta, packb
from wakaq.connection import redis_py_client
from wakaq.ids import new_id
from wakaq.results import DONE, FAILED, FINAL, PENDING, RETRYING, RUNNING

pytestmark = [pytest.mark.timeout(90), pytest.mark.app("tests.apps.results_app")]


def test_plain_delay_returns_none_and_its_payload_has_no_meta(app: ModuleType, rclient: Any) -> None:
    assert app.plain.delay(1) is None
    assert app.plain.delay_with_options((2,)) is None
    handle = app.add.delay(1, 2)
    assert isinstance(handle, TaskHandle)
    raw = rclient.lrange(KEYS.queue("low"), 0, -1)
    assert [decode_task_meta(r)[4] for r in raw] == [None, None, {"id": handle.id, "results": 600}]
    assert handle.status() == PENDING
    assert not rclient.exists(KEYS.result(handle.id)), "no record is written at enqueue"


def test_status_sequence_and_result_of_a_sync_task(app: ModuleType, rclient: Any, start_worker: StartWorker) -> None:
    handle = app.slow.delay(1.0, "seq")
    assert handle.status() == PENDING
    worker = start_worker()
    try:
        seen = [handle.status()]
        deadline = time.monotonic() + 15
        while seen[-1] != DONE and time.monotonic() < deadline:
            status = handle.status()
            if status != seen[-1]:
                seen.append(status)
            time.sleep(0.01)
        assert seen == [PENDING, RUNNING, DONE] or seen == [RUNNING, DONE], seen
        assert RUNNING in seen
        assert handle.result(timeout=1) == "slept seq"
        assert app.add.delay(20, 22).result(timeout=10) == 42
    finally:
        worker.stop()
    ttl = rclient.pttl(KEYS.result(handle.id))
    assert 0 < ttl <= 86_400_000
    assert rclient.llen(KEYS.result_ready(handle.id)) == 1


def test_result_ttl_of_the_task_is_the_records_ttl(app: ModuleType, rclient: Any, start_worker: StartWorker) -> None:
    handle = app.add.delay(1, 1)
    worker = start_worker()
    try:
        assert handle.result(timeout=10) == 2
    finally:
        worker.stop()
    assert 590_000 < rclient.pttl(KEYS.result(handle.id)) <= 600_000
    assert 590_000 < rclient.pttl(KEYS.result_ready(handle.id)) <= 600_000


def test_async_task_result_and_aresult_does_not_block_the_loop(app: ModuleType, start_worker: StartWorker) -> None:
    handle = app.async_pair.delay("x")

    async def wait_and_tick() -> tuple[Any, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick = asyncio.create_task(ticker())
        try:
            # NOTE: the worker starts only after this wait began: the loop must keep turning meanwhile
            return await handle.aresult(timeout=20), ticks
        finally:
            tick.cancel()

    worker = start_worker(wait=False)
    try:
        value, ticks = asyncio.run(wait_and_tick())
    finally:
        worker.stop()
    assert value == {"tag": "x", "items": [1, 2.5, None], "when": timedelta(seconds=3)}
    assert ticks >= 10, f"the event loop turned only {ticks} times while waiting"
    assert handle.status() == DONE
    assert handle.result(timeout=0) == value


def test_failed_tasks_raise_task_failed_with_type_and_message(app: ModuleType, start_worker: StartWorker) -> None:
    sync_failure = app.broken.delay("no such thing")
    async_failure = app.async_broken.delay()
    bad_value = app.unencodable.delay()
    worker = start_worker()
    try:
        with pytest.raises(TaskFailed) as caught:
            sync_failure.result(timeout=10)
        assert (caught.value.error_type, caught.value.message) == ("KeyError", "'no such thing'")
        assert caught.value.task_id == sync_failure.id
        with pytest.raises(TaskFailed, match="RuntimeError: async boom"):
            asyncio.run(async_failure.aresult(timeout=10))
        with pytest.raises(TaskFailed) as caught:
            bad_value.result(timeout=10)
        assert caught.value.error_type == "TypeError"
        assert "cannot encode the task's return value" in caught.value.message
    finally:
        worker.stop()
    assert [sync_failure.status(), async_failure.status(), bad_value.status()] == [FAILED, FAILED, FAILED]


def test_result_times_out(app: ModuleType) -> None:
    handle = app.add.delay(1, 2)
    began = time.monotonic()
    with pytest.raises(TimeoutError, match=r"has not finished after 0\.3s"):
        handle.result(timeout=0.3)
    assert 0.3 <= time.monotonic() - began < 2.0
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(handle.aresult(timeout=0.2))
    assert 0.2 <= time.monotonic() - began < 2.0


def test_a_waiting_result_wakes_when_the_record_is_written(app: ModuleType) -> None:
    """The wait blocks on the ready list, so it returns soon after the write, not at the end of a poll interval;
    and every waiter wakes (the token is rotated, not taken)."""
    handle = app.add.delay(1, 2)
    wakaq: WakaQ = app.wakaq
    # NOTE: the write: the task claimed and settled as a worker child does
    queues = [q.name for q in wakaq.queues]
    consumer = make_consumer(wakaq.url, queues, "d-waiters", client=redis_py_client(wakaq), prefix=wakaq.keys.prefix)

    def write() -> None:
        (task,) = consumer.claim([], 1)
        consumer.done(task, packb("written"))

    async def two_waiters() -> list[Any]:
        waiting = [asyncio.create_task(handle.aresult(timeout=10)) for _ in range(2)]
        await asyncio.sleep(0.3)
        assert not any(w.done() for w in waiting)
        began = time.monotonic()
        await asyncio.to_thread(write)
        values = await asyncio.gather(*waiting)
        assert time.monotonic() - began < 0.9
        return values

    assert asyncio.run(two_waiters()) == ["written", "written"]


def test_child_killed_mid_task_result_written_once(app: ModuleType, rclient: Any, start_worker: StartWorker) -> None:
    handle = app.slow.delay(1.5, "killed")
    worker = start_worker()
    try:
        wait_until(lambda: handle.status() == RUNNING, what="status running")
        (start,) = wait_until(lambda: events(rclient, "slow-start"), what="the first run")
        os.kill(start["pid"], signal.SIGKILL)
        assert handle.result(timeout=30) == "slept killed"
        assert handle.status() == DONE
    finally:
        worker.stop()
    assert len(events(rclient, "slow-start")) == 2
    assert len(events(rclient, "slow-end")) == 1
    assert rclient.llen(KEYS.result_ready(handle.id)) == 1, "one final write"


def _claimed(
    app: ModuleType, rclient: Any, meta: dict[str, Any], daemon: str = "d-results"
) -> tuple[Consumer, ClaimedTask]:
    """A task with `meta` pushed and claimed by a bare Consumer (registered as a daemon): the calls a worker child
    makes to settle it, without a worker."""
    consumer = make_consumer(app.wakaq.url, ["low"], daemon, client=rclient, prefix=app.wakaq.keys.prefix)
    app.wakaq.broker.push("low", "broken", ["x"], {}, 0, meta)
    (task,) = consumer.claim([], 1)
    return consumer, task


def test_a_rerun_after_the_final_write_cannot_change_it(
    app: ModuleType, rclient: Any, start_worker: StartWorker
) -> None:
    """What a child that crashed after writing its result and before its ack leaves behind: the record is final,
    the task is delivered again and runs again; its write is refused, the first outcome stays."""
    task_id = new_id()
    consumer, task = _claimed(app, rclient, {"id": task_id, "results": 60})
    consumer.done(task, packb("first run"))
    app.wakaq.broker.push("low", "broken", ["second run"], {}, 0, {"id": task_id, "results": 60})
    worker = start_worker()
    try:
        wait_until(lambda: events(rclient, "broken"), what="the rerun")
    finally:
        worker.stop()
    handle = app.wakaq.result_handle(task_id)
    assert handle.status() == DONE
    assert handle.result(timeout=0) == "first run"
    assert rclient.llen(KEYS.result_ready(task_id)) == 1
    assert "KeyError" in worker.log_text(), "the rerun did run and fail"


@pytest.mark.parametrize("final", sorted(FINAL))
def test_first_writer_wins(app: ModuleType, rclient: Any, final: str) -> None:
    wakaq: WakaQ = app.wakaq
    task_id = new_id()
    meta = {"id": task_id, "results": 60}
    handle = TaskHandle(wakaq, task_id)
    assert handle == wakaq.result_handle(task_id)
    assert handle.status() == PENDING
    consumer, task = _claimed(app, rclient, meta)
    assert consumer.start(task)
    assert handle.status() == RUNNING
    consumer.retry(task, meta, error=("ValueError", "try again"))
    assert handle.status() == RETRYING
    (task,) = consumer.claim([], 1)
    assert task.decode() == ("broken", ["x"], {}, 1, meta)
    if final == DONE:
        consumer.done(task, packb(1))
    else:
        consumer.fail(task, "X: y", "", error=("X", "y"), status=final)
    assert handle.status() == final
    app.wakaq.broker.push("low", "broken", ["x"], {}, 0, meta)  # a redelivery after the final write
    (task,) = consumer.claim([], 1)
    consumer.start(task)
    consumer.retry(task, meta, error=("ValueError", "again"))
    assert handle.status() == final
    (task,) = consumer.claim([], 1)
    consumer.fail(task, "Z: z", "", error=("Z", "z"))
    assert handle.status() == final
    assert rclient.llen(KEYS.result_ready(task_id)) == 1


def test_a_task_with_an_id_and_no_results_writes_no_record(app: ModuleType, rclient: Any) -> None:
    consumer, task = _claimed(app, rclient, {"id": "a"})
    consumer.fail(task, "X: y", "", error=("X", "y"))
    assert not rclient.exists(KEYS.result("a"))


def test_eager_mode_returns_a_finished_handle(app: ModuleType) -> None:
    from wakaq.testing import eager

    with eager(app.wakaq):
        assert app.add.delay(2, 3).result() == 5
        assert app.plain.delay(7) == 7
        with pytest.raises(KeyError, match="eager"):  # NOTE: as any eager task's, its exception propagates
            app.broken.delay("eager")
        assert asyncio.run(app.async_pair.delay("e").aresult())["tag"] == "e"


def test_store_results_options_are_validated(redis_url: str) -> None:
    from wakaq import WakaQError

    with pytest.raises(WakaQError, match="store_results must be True or False"):
        WakaQ(queues=["q"], url=redis_url, store_results="yes")  # type: ignore[arg-type]
    with pytest.raises(WakaQError, match="result_ttl must be a positive number"):
        WakaQ(queues=["q"], url=redis_url, result_ttl=0)
    app = WakaQ(queues=["q"], url=redis_url, store_results=True, result_ttl=timedelta(hours=1))

    @app.task
    def on() -> None: ...

    @app.task(store_results=False)
    def off() -> None: ...

    assert (on.result_ttl, on.tracked, off.result_ttl, off.tracked) == (3600.0, True, None, False)


@pytest.mark.parametrize("way", ["wakaq-failed", "dashboard"])
def test_requeue_of_a_failed_task_reopens_its_record(
    app: ModuleType, rclient: Any, start_worker: StartWorker, way: str
) -> None:
    from wakaq import admin
    from wakaq.web import records

    handle = app.broken.delay("first")
    worker = start_worker()
    try:
        with pytest.raises(TaskFailed):
            handle.result(timeout=10)
    finally:
        worker.stop()
    if way == "wakaq-failed":
        assert admin.requeue_failed(app.wakaq, rclient, ["low"]) == {"requeued": 1, "skipped": 0}
    else:
        assert records.requeue_all(app.wakaq, rclient, "low") == {"requeued": 1, "skipped": 0}
    assert handle.status() == PENDING
    assert not rclient.exists(KEYS.result_ready(handle.id))
    (raw,) = rclient.lrange(KEYS.queue("low"), 0, -1)
    assert decode_task_meta(raw)[4] == {"id": handle.id, "results": 86400}
