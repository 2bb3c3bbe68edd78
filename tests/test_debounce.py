"""Debounce (`delay_with_options(..., unique_key=..., debounce=seconds)`): enqueue_debounce.lua keeps one pending call
per key and window; the task runs once, with the last call's arguments, when the window closes.

Real Redis and real `wakaq-worker` processes (tests/apps/progress_app.py).
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from types import ModuleType
from typing import Any

import pytest

from tests.keyspace import KEYS
from tests.workers import StartWorker, events, wait_until
from wakaq import TaskFailed, WakaQ
from wakaq._wakaq import decode_task_meta
from wakaq.exceptions import WakaQError
from wakaq.ids import new_id
from wakaq.testing import eager

pytestmark = [pytest.mark.timeout(90), pytest.mark.app("tests.apps.progress_app")]

ETA = KEYS.eta("default")


def _runs(rclient: Any, task: str = "debounced") -> list[int]:
    return [e["i"] for e in events(rclient, task)]


def _settled(rclient: Any) -> bool:
    """Nothing left to run: no eta member, nothing pending, nothing in flight."""
    inflight = sum(rclient.hlen(KEYS.inflight(d.decode())) for d in rclient.smembers(KEYS.daemons))
    return rclient.zcard(ETA) == 0 and rclient.llen(KEYS.queue("default")) == 0 and inflight == 0


def test_100_calls_within_one_window_run_once_with_the_last_arguments(
    app: ModuleType, rclient: Any, start_worker: StartWorker
) -> None:
    start_worker()
    began = time.monotonic()
    for i in range(100):
        app.debounced.delay_with_options((i,), unique_key="k100", debounce=3)
    assert time.monotonic() - began < 3, "the calls must all fall in the window for this test to mean anything"
    assert rclient.zcard(ETA) == 1, "one pending call per window"
    assert decode_task_meta(rclient.zrange(ETA, 0, 0)[0])[1] == [99]
    wait_until(lambda: _runs(rclient), 15, what="the debounced run")
    wait_until(lambda: _settled(rclient), 10, what="nothing left to run")
    assert _runs(rclient) == [99]
    wait_until(lambda: not rclient.exists(KEYS.debounce("k100")), 5, what="the window's key to expire")


def test_two_windows_run_twice(app: ModuleType, rclient: Any, start_worker: StartWorker) -> None:
    start_worker()
    for i in (1, 2):
        app.debounced.delay_with_options((i,), debounce=timedelta(milliseconds=500))  # key: the task's name
    wait_until(lambda: _runs(rclient) == [2], 15, what="the first window's run")
    for i in (3, 4):
        app.debounced.delay_with_options((i,), debounce=0.5)
    wait_until(lambda: len(_runs(rclient)) == 2, 15, what="the second window's run")
    wait_until(lambda: _settled(rclient), 10, what="nothing left to run")
    assert _runs(rclient) == [2, 4]


def test_concurrent_callers_from_threads(app: ModuleType, rclient: Any, start_worker: StartWorker) -> None:
    threads, per_thread = 4, 25
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def call(t: int) -> None:
        try:
            start.wait(timeout=10)
            for j in range(per_thread):
                app.debounced.delay_with_options((t * 1000 + j,), unique_key="threads", debounce=4)
        except BaseException as e:
            errors.append(e)

    began = time.monotonic()
    workers = [threading.Thread(target=call, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=30)
    assert errors == [] and time.monotonic() - began < 4
    (member,) = rclient.zrange(ETA, 0, -1)
    last = decode_task_meta(member)[1]
    assert last[0] % 1000 == per_thread - 1, "the last call of some thread replaced every other call"
    start_worker()
    wait_until(lambda: _runs(rclient), 15, what="the debounced run")
    wait_until(lambda: _settled(rclient), 10, what="nothing left to run")
    assert _runs(rclient) == last


def test_replaced_calls_results_read_cancelled(app: ModuleType, start_worker: StartWorker) -> None:
    first = app.debounced_result.delay_with_options((1,), debounce=0.5)
    last = app.debounced_result.delay_with_options((2,), debounce=0.5)
    assert first.id != last.id
    with pytest.raises(TaskFailed) as raised:
        first.result(timeout=0)
    assert raised.value.error_type == "Debounced" and last.id in str(raised.value)
    start_worker()
    assert last.result(timeout=15) == 2


def test_a_closed_window_is_never_extended(app: ModuleType, rclient: Any, start_worker: StartWorker) -> None:
    """The boundary: a call after the window's due time (its member not yet promoted: no worker runs) opens a new
    window instead of replacing a member about to run; so does a call whose pending member left the eta set
    (promoted, cancelled, purged) before the window's key expired."""
    broker = app.wakaq.broker
    replaced, due = broker.push_debounced("default", "debounced", (1,), {}, {"id": new_id()}, "edge", 0.3)
    assert replaced is False
    # NOTE: the key's TTL is the window, so it is normally gone by now; kept here, the due time alone must close it
    rclient.persist(KEYS.debounce("edge"))
    wait_until(lambda: _redis_now(rclient) > due, 5, what="the first window's due time on Redis's clock")
    assert rclient.zcard(ETA) == 1, "not promoted: no worker runs"
    replaced, due2 = broker.push_debounced("default", "debounced", (2,), {}, {"id": new_id()}, "edge", 10)
    assert replaced is False and due2 > due
    assert rclient.zcard(ETA) == 2
    # the second window's member leaves the set (as if promoted) while its key still lives: a new window again
    rclient.zremrangebyscore(ETA, due2 - 0.001, due2 + 0.001)
    assert rclient.exists(KEYS.debounce("edge"))
    replaced, due3 = broker.push_debounced("default", "debounced", (3,), {}, {"id": new_id()}, "edge", 0.3)
    assert replaced is False and due3 < due2, "a window of its own, not the gone member's due time"
    start_worker()
    wait_until(lambda: len(_runs(rclient)) == 2, 15, what="both open windows to run")
    wait_until(lambda: _settled(rclient), 10, what="nothing left to run")
    assert sorted(_runs(rclient)) == [1, 3]


def _redis_now(rclient: Any) -> float:
    secs, micros = rclient.time()
    return float(secs) + micros / 1e6


def test_options_refused_with_debounce_and_eager_runs_each_call(app: ModuleType, rclient: Any) -> None:
    task = app.debounced
    with pytest.raises(WakaQError, match="eta or debounce"):
        task.delay_with_options((1,), debounce=1, eta=5)
    with pytest.raises(WakaQError, match="durable enqueue does not cover debounced"):
        task.delay_with_options((1,), debounce=1, durable=True)
    with pytest.raises(WakaQError, match="positive number of seconds"):
        task.delay_with_options((1,), debounce=0)
    json_app = WakaQ(queues=["default"], url=app.wakaq.url, payload_format="json")

    @json_app.task
    def f(i: int) -> None: ...

    with pytest.raises(WakaQError, match='debounce needs payload_format="msgpack"'):
        f.delay_with_options((1,), debounce=1)
    with eager(app.wakaq):
        task.delay_with_options((1,), debounce=5)
        task.delay_with_options((2,), debounce=5)
    assert _runs(rclient) == [1, 2], "eager mode has no window: every call runs inline"
    assert rclient.zcard(ETA) == 0
