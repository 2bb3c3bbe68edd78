"""The worker daemon end to end: real `wakaq-worker` processes, real signals, a real Redis."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import pytest
import redis

from tests.keyspace import KEYS, scan_keys
from tests.workers import StartWorker, events, wait_until

pytestmark = pytest.mark.timeout(90)


def failed_records(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    return [msgpack.unpackb(raw) for raw in client.lrange(KEYS.failed(queue), 0, -1)]


def test_strict_priority_with_one_child(app: ModuleType, start_worker: StartWorker, rclient: redis.Redis) -> None:
    for i in range(5):
        app.low.delay(i)
        app.medium.delay(i)
        app.high.delay(i)
    start_worker()
    wait_until(lambda: len(events(rclient)) >= 16, what="15 tasks")
    order = [e["task"] for e in events(rclient) if e["task"] != "after_worker_started"]
    assert order == ["high"] * 5 + ["medium"] * 5 + ["low"] * 5


def test_default_queue_and_queue_override(app: ModuleType, start_worker: StartWorker, rclient: redis.Redis) -> None:
    app.default_task.delay(1)
    app.default_task.delay(2, queue="high")
    assert rclient.llen(KEYS.queue("low")) == 1
    assert rclient.llen(KEYS.queue("high")) == 1
    start_worker()
    wait_until(lambda: len(events(rclient, "default_task")) == 2, what="both tasks")
    assert [e["i"] for e in events(rclient, "default_task")] == [2, 1]


def test_exclude_queues(app: ModuleType, start_worker: StartWorker, rclient: redis.Redis) -> None:
    app.low.delay(1)
    app.high.delay(2)
    start_worker(exclude="low")
    wait_until(lambda: events(rclient, "high"), what="the high task")
    time.sleep(0.5)  # NOTE: proving a negative: give the excluded task time to (wrongly) run
    assert events(rclient, "low") == []
    assert rclient.llen(KEYS.queue("low")) == 1


def test_two_async_tasks_overlap_with_one_child(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    start_worker()
    wait_until(lambda: events(rclient, "after_worker_started"), what="worker start")
    sent = time.time()
    app.async_sleeper.delay(1.5, tag="a")
    app.async_sleeper.delay(1.5, tag="b")
    ends = wait_until(lambda: len(events(rclient, "async-end")) == 2 and events(rclient, "async-end"), what="ends")
    assert max(e["t"] for e in ends) - sent < 2.5


def test_async_concurrency_limit_does_not_drop_tasks(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    """Six 0.3 s async tasks, limit 2: never more than 2 run at once, and 2 do overlap (the limit is a limit,
    not serial execution). Overlap is measured from each task's start and end events."""
    for i in range(6):
        app.async_sleeper.delay(0.3, tag=str(i))
    start_worker(async_concurrency=2)
    wait_until(lambda: len(events(rclient, "async-end")) == 6, timeout=15, what="6 async tasks")
    starts = {e["tag"]: e["t"] for e in events(rclient, "async-start")}
    ends = {e["tag"]: e["t"] for e in events(rclient, "async-end")}
    assert set(starts) == set(ends) == {str(i) for i in range(6)}
    marks = sorted([(t, 1) for t in starts.values()] + [(t, -1) for t in ends.values()], key=lambda m: (m[0], m[1]))
    running, most = 0, 0
    for _, step in marks:
        running += step
        most = max(most, running)
    assert most == 2, f"at most 2 async tasks at once, and 2 did overlap: {most} ran at once"


def test_soft_timeout_retries_then_fails(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis, start_method: str
) -> None:
    app.soft_sleeper.delay()
    start_worker()
    wait_until(lambda: failed_records(rclient, "retrying"), timeout=30, what="the failure record")
    assert len(events(rclient, "soft-start")) == 3
    assert len(events(rclient, "soft-timeout-seen")) == 3
    [record] = failed_records(rclient, "retrying")
    assert "soft timeout" in record["reason"]


def test_max_retries_zero_on_a_task_means_no_retry(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    app.soft_no_retry.delay()
    start_worker()
    wait_until(lambda: failed_records(rclient, "retrying"), timeout=20, what="the failure record")
    assert len(events(rclient, "soft-no-retry-start")) == 1


def test_async_soft_timeout_cancels(app: ModuleType, start_worker: StartWorker, rclient: redis.Redis) -> None:
    app.async_soft.delay()
    start_worker()
    wait_until(lambda: failed_records(rclient, "low"), timeout=20, what="the failure record")
    assert len(events(rclient, "async-cancelled-seen")) == 1


def test_hard_timeout_kills_records_and_moves_on(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis, start_method: str
) -> None:
    app.hard_sleeper.delay()
    app.low.delay(99)
    worker = start_worker()
    first_child = worker.children()
    wait_until(lambda: events(rclient, "low"), timeout=30, what="the next task")
    [record] = failed_records(rclient, "low")
    assert "hard timeout" in record["reason"]
    assert events(rclient, "hard-end") == []
    assert len(events(rclient, "hard-start")) == 1
    [new_child] = worker.children()
    assert [new_child] != first_child
    assert worker.start_methods()[new_child] == start_method, "the replacement child is started the same way"


def test_exceptions_and_sys_exit_are_recorded_and_the_child_lives(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    app.failing.delay()
    app.exiter.delay(3)
    app.low.delay(1)
    worker = start_worker()
    child = worker.children()
    wait_until(lambda: events(rclient, "low"), what="the task after the failures")
    reasons = sorted(r["reason"] for r in failed_records(rclient, "low"))
    assert reasons == ["ValueError: failing on purpose", "task called sys.exit(3)"]
    assert "Traceback" in failed_records(rclient, "low")[0]["traceback"]
    assert worker.children() == child, worker.log_text()
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit(10) == 0


def test_max_tasks_per_worker_recycles_the_child(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    start_worker(max_tasks=3)
    for i in range(7):
        app.low.delay(i)
    wait_until(lambda: len(events(rclient, "low")) == 7, what="7 tasks")
    pids = [e["pid"] for e in events(rclient, "low")]
    assert pids[0] == pids[1] == pids[2] != pids[3]
    assert pids[3] == pids[4] == pids[5] != pids[6]


def test_broadcast_runs_once_on_each_daemon(app: ModuleType, start_worker: StartWorker, rclient: redis.Redis) -> None:
    one = start_worker(concurrency=2)
    two = start_worker(concurrency=2)
    # NOTE: broadcast() hands the task to every live registered daemon (broadcast.lua)
    wait_until(lambda: rclient.scard(KEYS.daemons) == 2, what="two registered daemons")
    assert app.bcast.broadcast("x") == 2
    ran = wait_until(lambda: len(events(rclient, "bcast")) == 2 and events(rclient, "bcast"), what="2 broadcasts")
    daemons = {pid: w for w in (one, two) for pid in w.children()}
    assert {daemons[e["pid"]].pid for e in ran} == {one.pid, two.pid}
    time.sleep(0.5)  # NOTE: proving a negative: no third run
    assert len(events(rclient, "bcast")) == 2


def test_eta_task_runs_on_time(app: ModuleType, start_worker: StartWorker, rclient: redis.Redis) -> None:
    start_worker()
    wait_until(lambda: events(rclient, "after_worker_started"), what="worker start")
    due = time.time() + 1.2
    app.eta_task.delay(due, eta=1.2)
    [event] = wait_until(lambda: events(rclient, "eta"), timeout=10, what="the eta task")
    assert due <= event["t"] < due + 0.5


def test_sigterm_lets_the_running_task_finish(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis, start_method: str
) -> None:
    worker = start_worker()
    app.sleeper.delay(2, tag="graceful")
    wait_until(lambda: events(rclient, "sleeper-start"), timeout=20, what="the task to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit(15) == 0
    assert len(events(rclient, "sleeper-end")) == 1
    assert rclient.hlen(next(iter(scan_keys(rclient, KEYS.inflight("*"))), b"none")) == 0


def test_second_sigint_returns_the_running_task(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    worker = start_worker()
    app.sleeper.delay(30, tag="stuck")
    wait_until(lambda: events(rclient, "sleeper-start"), what="the task to start")
    worker.signal(signal.SIGINT)
    time.sleep(0.2)
    worker.signal(signal.SIGINT)
    assert worker.wait_exit(10) == 0
    assert rclient.llen(KEYS.queue("low")) == 1


def test_killed_child_task_runs_again_exactly_once(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis, start_method: str
) -> None:
    app.once_killed.delay("k")
    start_worker()
    wait_until(lambda: len(events(rclient, "once_killed")) == 2, timeout=30, what="the second attempt")
    time.sleep(0.5)  # NOTE: proving a negative: no third attempt
    assert [e["attempt"] for e in events(rclient, "once_killed")] == [1, 2]
    assert failed_records(rclient, "low") == []


def test_poison_pill_is_dead_listed_after_three_deliveries(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    app.suicide.delay()
    app.low.delay(1)
    start_worker()
    wait_until(lambda: failed_records(rclient, "low"), timeout=30, what="the dead-list record")
    assert len(events(rclient, "suicide")) == 3
    wait_until(lambda: events(rclient, "low"), what="the next task")


def test_killed_daemon_tasks_finish_on_another(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    doomed = start_worker(concurrency=2, heartbeat=3)
    for i in range(2):
        app.sleeper.delay(20, tag=f"doomed{i}")
    wait_until(lambda: len(events(rclient, "sleeper-start")) == 2, what="both tasks to start")
    for pid in [*doomed.children(), doomed.pid]:
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    rclient.delete("events")
    app.sleeper.delay(0, tag="marker")
    start_worker(concurrency=2, heartbeat=3)
    starts = wait_until(
        lambda: len(events(rclient, "sleeper-start")) >= 3 and events(rclient, "sleeper-start"),
        timeout=3 + 5 + 5,
        what="the orphaned tasks to restart",
    )
    assert time.monotonic() - killed_at < 3 + 5 + 5
    assert {e["tag"] for e in starts} == {"doomed0", "doomed1", "marker"}


def test_children_die_with_a_killed_parent(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis, start_method: str
) -> None:
    worker = start_worker(concurrency=2)
    children = worker.children()
    assert [worker.start_methods()[pid] for pid in children] == [start_method] * 2
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait_exit(10)
    wait_until(lambda: not any(Path(f"/proc/{p}").exists() for p in children), timeout=20, what="children gone")


def test_parent_has_one_thread_at_every_fork(app: ModuleType, start_worker: StartWorker, rclient: redis.Redis) -> None:
    worker = start_worker(concurrency=2, max_tasks=1)
    for i in range(4):
        app.low.delay(i)
    wait_until(lambda: len(events(rclient, "low")) == 4, what="4 tasks")
    forks = wait_until(
        lambda: len(found := re.findall(r"parent threads (\d+)", worker.log_text())) >= 5 and found, what="fork lines"
    )
    assert set(forks) == {"1"}


def test_task_output_reaches_the_log_file(app: ModuleType, start_worker: StartWorker, rclient: redis.Redis) -> None:
    worker = start_worker()
    app.printer.delay("hello from a task")
    wait_until(lambda: "hello from a task" in worker.log_text(), what="the print in the log")
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit(10) == 0


def test_async_after_worker_started_is_awaited(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    start_worker(concurrency=2)
    wait_until(lambda: len(events(rclient, "after_worker_started")) == 2, what="both children's callback")


def test_slow_tasks_after_fast_ones_are_shared_between_children(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    """Fast tasks grow the claim batch (up to 32); slow tasks queued behind them must not be taken 32 at a time
    by one child while its sibling idles: the rest of a batch that turned slow goes back to the queue.

    Before the fix one child ran (nearly) every sleeper one after another."""
    for i in range(400):
        app.low.delay(i)
    for i in range(16):
        app.sleeper.delay(0.15, tag=str(i))
    start_worker(concurrency=2)
    wait_until(lambda: len(events(rclient, "sleeper-end")) == 16, timeout=30, what="16 sleepers")
    by_pid: dict[int, int] = {}
    for e in events(rclient, "sleeper-start"):
        by_pid[e["pid"]] = by_pid.get(e["pid"], 0) + 1
    assert sorted(by_pid.values()) != [16] and max(by_pid.values()) <= 11, f"sleepers per child: {by_pid}"
    assert len(events(rclient, "low")) == 400
    assert rclient.llen("wakaq:low") == 0
