"""Workflows: chains, groups, callbacks, their handle and cancel (python/wakaq/workflow.py, lua/workflow.lua).

Real Redis and real `wakaq-worker` processes (tests/apps/workflow_app.py). The fault scenario (a 1,000-member group
while children are killed) is tests/faults/test_workflow_kills.py.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from tests.keyspace import KEYS
from tests.workers import StartWorker, events, wait_until
from wakaq import TaskFailed, WorkflowHandle, chain, group
from wakaq._wakaq import decode_task_meta
from wakaq.exceptions import WakaQError

pytestmark = [pytest.mark.timeout(90), pytest.mark.app("tests.apps.workflow_app")]


def _idle(rclient: Any) -> bool:
    """Nothing queued or in flight (every step that was enqueued has been settled)."""
    queued = sum(rclient.llen(KEYS.queue(q)) for q in ("high", "low"))
    inflight = sum(rclient.hlen(k) for k in rclient.scan_iter(KEYS.inflight("*")))
    return queued == 0 and inflight == 0


def test_a_three_step_chain_passes_results_in_order(app: ModuleType, rclient: Any, start_worker: StartWorker) -> None:
    start_worker()
    handle = chain(app.add.s(1, 2), app.add.s(10), app.mul.s(3)).delay()
    assert isinstance(handle, WorkflowHandle)
    assert handle.result(timeout=20) == 39
    assert handle.status() == "done"
    steps = [(e["task"], e["a"], e["b"]) for e in events(rclient) if e["task"] in ("add", "mul")]
    assert steps == [("add", 1, 2), ("add", 3, 10), ("mul", 13, 3)]
    assert {e.get("workflow") for e in events(rclient, "add")} == {handle.id}

    piped = (app.add.s(1, 2) | app.add.s(10) | app.mul.s(3)).delay()
    assert piped.result(timeout=20) == 39
    # `.si()` ignores the previous result
    assert (app.add.s(1, 2) | app.add.si(5, 5)).delay().result(timeout=20) == 10


def test_a_group_of_50_with_a_callback_gets_the_results_in_member_order(
    app: ModuleType, rclient: Any, start_worker: StartWorker
) -> None:
    start_worker(concurrency=3)
    handle = group([app.add.s(i, i) for i in range(50)]).then(app.collect.s(tag="cb")).delay()
    assert handle.result(timeout=30) == [2 * i for i in range(50)]
    wait_until(lambda: _idle(rclient), what="idle")
    callbacks = events(rclient, "collect")
    assert len(callbacks) == 1
    assert callbacks[0]["results"] == [2 * i for i in range(50)] and callbacks[0]["tag"] == "cb"
    members = handle.members()
    assert [m["status"] for m in members] == ["done"] * 51
    assert [m["task"] for m in members] == ["add"] * 50 + ["collect"]
    # every key of the workflow, and each step's result record, expires
    for key in (KEYS.workflow(handle.id), KEYS.workflow_results(handle.id), KEYS.workflow_ready(handle.id)):
        assert 0 < rclient.pttl(key) <= 86_400_000, key
    assert all(0 < rclient.pttl(KEYS.result(m["id"])) <= 86_400_000 for m in members)


def test_a_member_that_fails_fails_the_workflow_and_the_callback_never_runs(
    app: ModuleType, rclient: Any, start_worker: StartWorker
) -> None:
    start_worker()
    handle = group([app.add.s(1, 1), app.boom.s("bad"), app.add.s(2, 2)]).then(app.collect.s()).delay()
    with pytest.raises(TaskFailed) as failed:
        handle.result(timeout=20)
    assert (failed.value.error_type, failed.value.message, failed.value.status) == ("ValueError", "bad", "failed")
    assert handle.status() == "failed"
    wait_until(lambda: len(events(rclient, "add")) == 2 and _idle(rclient), what="the other members ran")
    assert events(rclient, "collect") == []
    statuses = {m["task"]: m["status"] for m in handle.members()}
    assert statuses == {"add": "done", "boom": "failed", "collect": "waiting"}

    later = chain(app.boom.s("first"), app.add.s(1)).delay()
    with pytest.raises(TaskFailed):
        later.result(timeout=20)
    wait_until(lambda: _idle(rclient), what="idle")
    assert len(events(rclient, "add")) == 2, "a later chain step never runs"


def test_a_dead_listed_member_fails_the_workflow(app: ModuleType, rclient: Any, start_worker: StartWorker) -> None:
    """A step the supervisor dead-lists (its child died on it 3 times) ends in the workflow too: no hang."""
    start_worker()
    handle = group([app.add.s(1, 1), app.die.s()]).then(app.collect.s()).delay()
    with pytest.raises(TaskFailed) as failed:
        handle.result(timeout=40)
    assert failed.value.error_type == "WorkerLost"
    assert len(events(rclient, "die")) == 3
    assert events(rclient, "collect") == []


def test_allow_failure_runs_the_callback_once_with_the_error_in_place(
    app: ModuleType, rclient: Any, start_worker: StartWorker
) -> None:
    start_worker()
    members = [app.add.s(1, 1), app.boom.s("bad"), app.add.s(2, 2)]
    handle = group(members).then(app.collect.s(), allow_failure=True).delay()
    assert handle.result(timeout=20) == [2, "ValueError: bad", 4]
    wait_until(lambda: _idle(rclient), what="idle")
    assert len(events(rclient, "collect")) == 1
    same = group(members, allow_failure=True).then(app.collect.s()).delay()
    assert same.result(timeout=20) == [2, "ValueError: bad", 4]


def test_a_group_inside_a_chain_inside_a_group_completes(
    app: ModuleType, rclient: Any, start_worker: StartWorker
) -> None:
    start_worker(concurrency=3)
    inner = group([app.mul.s(2), app.mul.s(3)]).then(app.collect.s(tag="inner"))
    outer = group([chain(app.add.s(1, 1), inner), app.add.s(5, 5)]).then(app.collect.s(tag="outer"))
    handle = outer.delay()
    assert handle.result(timeout=30) == [[4, 6], 10]
    tags = sorted(e["tag"] for e in events(rclient, "collect"))
    assert tags == ["inner", "outer"]


def test_the_handle_reads_each_members_status(app: ModuleType, rclient: Any, start_worker: StartWorker) -> None:
    handle = chain(app.add.s(1, 2), app.add.s(3)).delay()
    assert handle.status() == "running"
    first, second = handle.members()
    assert (first["status"], second["status"]) == ("pending", "waiting")
    assert first["id"] == f"{handle.id}-1" and second["id"] == f"{handle.id}-2"
    # the first step's payload: meta id, results and wf; the second is not queued yet
    (raw,) = rclient.lrange(KEYS.queue("low"), 0, -1)
    assert decode_task_meta(raw)[4] == {"id": first["id"], "results": 86400, "wf": handle.id}
    with pytest.raises(TimeoutError):
        handle.result(timeout=0.2)
    start_worker()
    assert handle.result(timeout=20) == 6
    assert [m["status"] for m in handle.members()] == ["done", "done"]
    assert app.wakaq.workflow_handle(handle.id).result(timeout=1) == 6


def test_a_redelivered_member_counts_once(app: ModuleType, rclient: Any, start_worker: StartWorker) -> None:
    """A member that runs twice (here: its element pushed twice, as a redelivery would) completes the group once."""
    handle = group([app.add.s(1, 1), app.nap.s(1.0, "slow")]).then(app.collect.s()).delay()
    (first, _) = rclient.lrange(KEYS.queue("low"), 0, -1)
    rclient.rpush(KEYS.queue("low"), first)
    start_worker(concurrency=3)
    assert handle.result(timeout=20) == [2, "slow"]
    wait_until(lambda: len(events(rclient, "add")) == 2 and _idle(rclient), what="both copies ran")
    assert len(events(rclient, "collect")) == 1


def test_cancel_of_a_workflow(app: ModuleType, rclient: Any, start_worker: StartWorker) -> None:
    pending = group([app.add.s(i, i) for i in range(5)]).then(app.collect.s()).delay()
    assert app.wakaq.cancel(pending.id) == "cancelled"
    assert pending.status() == "cancelled"
    assert rclient.llen(KEYS.queue("low")) == 0, "the queued members are removed"
    assert rclient.llen(KEYS.failed("low")) == 5, "and recorded failed"
    assert {m["status"] for m in pending.members()} == {"cancelled", "waiting"}
    with pytest.raises(TaskFailed) as failed:
        pending.result(timeout=1)
    assert failed.value.status == "cancelled"
    assert app.wakaq.cancel(pending.id) == "not found", "a workflow that ended is not cancelled again"

    # cancelled while a step runs: that step finishes, the next never starts
    running = chain(app.nap.s(1.0, "a"), app.add.si(7, 7)).delay()
    start_worker()
    wait_until(lambda: events(rclient, "nap"), what="the first step started")
    assert app.wakaq.cancel(running.id) == "cancelled"
    wait_until(lambda: running.members()[0]["status"] == "done" and _idle(rclient), what="the first step ended")
    assert running.status() == "cancelled"
    assert running.members()[1]["status"] == "waiting"
    assert events(rclient, "add") == []


def test_canvas_values_are_checked(app: ModuleType) -> None:
    with pytest.raises(WakaQError, match="at least one"):
        group([])
    with pytest.raises(WakaQError, match="at least one"):
        chain()
    with pytest.raises(WakaQError, match="must be a signature"):
        chain(app.add.s(1, 2), app.add)
    assert repr(app.add.s(1, 2) | app.add.si(3, 4)) == "add.s(1, 2) | add.si(3, 4)"


def test_eager_mode_runs_a_workflow_inline() -> None:
    from wakaq import WakaQ

    eager_app = WakaQ(queues=["default"], url="redis://127.0.0.1:1", eager=True)

    @eager_app.task
    def inc(x: int, by: int = 1) -> int:
        return x + by

    @eager_app.task
    def fail() -> None:
        raise KeyError("k")

    @eager_app.task
    def total(values: list[Any]) -> Any:
        return values

    assert (inc.s(1) | inc.s(by=10)).delay().result() == 12
    flow = group([inc.s(1), fail.s(), chain(inc.s(2), inc.s())]).then(total.s(), allow_failure=True)
    assert flow.delay().result() == [2, "KeyError: 'k'", 4]
    with pytest.raises(KeyError):
        group([inc.s(1), fail.s()]).then(total.s()).delay()
