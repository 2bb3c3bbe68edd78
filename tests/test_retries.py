"""Retries on exceptions (wakaq.retries): backoff, `Retry`, the eta path, the failed record, eager mode.

The integration tests run a real `wakaq-worker` on tests/apps/retry_app.py against a real Redis.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import datetime, timedelta, timezone
from types import ModuleType
from typing import Any

import msgpack
import pytest
import redis

from tests.keyspace import KEYS, scan_keys
from tests.keyspace import consumer as make_consumer
from tests.workers import StartWorker, events, wait_until
from wakaq import Retry, WakaQ, current_task
from wakaq._wakaq import decode_task_meta, encode_task
from wakaq.exceptions import WakaQError
from wakaq.retries import RetryOptions, RetryPolicy, backoff_delay, failure_reason, next_attempt, resolve
from wakaq.testing import eager

pytestmark = [pytest.mark.timeout(60), pytest.mark.app("tests.apps.retry_app")]


# ---- the backoff formula and the settings -------------------------------------------------------------------


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    delays = [backoff_delay(n, 0.5, 10.0, False) for n in range(1, 8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff_delay(1, 0.0, 10.0, False) == 0.0
    assert backoff_delay(5, 3.0, 1.0, False) == 1.0  # a cap below the base still caps
    # far attempts neither overflow nor pass the cap
    assert backoff_delay(10_000, 1.0, 600.0, False) == 600.0
    assert backoff_delay(10_000, 1e300, 1e308, False) == 1e308


def test_full_jitter_is_uniform_below_the_capped_delay() -> None:
    assert backoff_delay(3, 1.0, 600.0, True, lambda: 0.0) == 0.0
    assert backoff_delay(3, 1.0, 600.0, True, lambda: 0.5) == 2.0
    assert backoff_delay(20, 1.0, 600.0, True, lambda: 0.5) == 300.0
    rng = random.Random(7)
    samples = [backoff_delay(4, 1.0, 600.0, True, rng.random) for _ in range(2000)]
    assert all(0.0 <= s < 8.0 for s in samples)
    assert min(samples) < 0.5 and max(samples) > 7.5  # spread over the whole range, not clustered
    assert 3.5 < sum(samples) / len(samples) < 4.5  # mean of uniform(0, 8)


def test_task_settings_override_the_app_and_retry_on_empty_catches_only_retry() -> None:
    app = WakaQ(queues=["q"], max_retries=4, retry_on=KeyError, retry_backoff=timedelta(seconds=2))

    def plain() -> None: ...

    def own() -> None: ...

    plain_task = app.task(plain)
    own_task = app.task(retry_on=(TimeoutError,), retry_backoff_max=5, retry_jitter=False, max_retries=1)(own)
    queue = app.default_queue
    assert app.retry_policy_for(plain_task, queue) == RetryPolicy((KeyError,), 4, 2.0, 600.0, True)
    assert app.retry_policy_for(own_task, queue) == RetryPolicy((TimeoutError,), 1, 2.0, 5.0, False)
    off = resolve(None, RetryOptions(), 0)
    assert off.retry_on == () and off.catches == (Retry,) and not off.keeps_errors
    assert isinstance(Retry(), off.catches) and not isinstance(TimeoutError(), off.catches)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retry_on": "TimeoutError"}, "retry_on of task 't' must be an exception class or a tuple"),
        ({"retry_on": (TimeoutError, int)}, "retry_on of task 't' must hold exception classes, got <class 'int'>"),
        ({"retry_backoff": -1}, "retry_backoff of task 't' must be a number of seconds >= 0"),
        ({"retry_backoff_max": float("inf")}, "retry_backoff_max of task 't' must be a number of seconds >= 0"),
        ({"retry_backoff": True}, "retry_backoff of task 't' must be a number"),
        ({"retry_jitter": 1}, "retry_jitter of task 't' must be True or False"),
    ],
)
def test_bad_retry_settings_are_named(options: dict[str, Any], message: str) -> None:
    app = WakaQ(queues=["q"])

    def t() -> None: ...

    with pytest.raises(WakaQError, match=message.replace("(", r"\(").replace(")", r"\)")):
        app.task(**options)(t)


def test_retry_asks_for_a_countdown_or_an_eta() -> None:
    now = 1_000_000.0
    assert Retry(countdown=5).delay(now) == 5.0
    assert Retry(countdown=timedelta(minutes=1)).delay(now) == 60.0
    due = datetime.fromtimestamp(now + 30, tz=timezone.utc)
    assert Retry(eta=due).delay(now) == 30.0
    assert Retry(eta=due.replace(tzinfo=None)).delay(now) == 30.0  # naive = UTC
    assert Retry(eta=datetime.fromtimestamp(now - 30, tz=timezone.utc)).delay(now) == 0.0
    assert Retry().delay(now) is None
    with pytest.raises(WakaQError, match="countdown= or eta=, not both"):
        Retry(countdown=1, eta=due)
    with pytest.raises(WakaQError, match="Retry eta must be a datetime"):
        Retry(eta=5)  # type: ignore[arg-type]
    assert str(Retry()) == "retry requested" and str(Retry("later")) == "later"


def test_next_attempt_counts_against_max_retries_and_keeps_the_reasons() -> None:
    policy = RetryPolicy((TimeoutError,), 2, 1.0, 600.0, False)
    first = next_attempt(policy, 0, TimeoutError("a"), None, now=100.0)
    assert first is not None and first.due == 101.0
    assert first.meta["errors"] == ["TimeoutError: a"] and len(first.meta["id"]) == 32
    second = next_attempt(policy, 1, TimeoutError("b"), first.meta, now=200.0)
    assert second is not None and second.due == 202.0
    assert second.meta == {"errors": ["TimeoutError: a", "TimeoutError: b"], "id": first.meta["id"]}
    assert next_attempt(policy, 2, TimeoutError("c"), second.meta, now=300.0) is None
    # Retry: its own delay (0: straight back to the queue), and `raise Retry() from exc` names exc
    try:
        raise Retry(countdown=0) from OSError("disk")
    except Retry as e:
        now = next_attempt(policy, 0, e, {"id": "mine"}, now=5.0)
    assert now is not None and now.due is None and now.meta == {"id": "mine", "errors": ["OSError: disk"]}
    reason = failure_reason("TimeoutError: c", second.meta, 2, 2)
    assert reason == (
        "TimeoutError: c (retries exhausted: attempt 3, max_retries 2; attempt 1: TimeoutError: a; "
        "attempt 2: TimeoutError: b; attempt 3: TimeoutError: c)"
    )
    assert failure_reason("ValueError: x", None, 0, 2) == "ValueError: x"


# ---- eager mode ----------------------------------------------------------------------------------------------


@pytest.fixture
def eager_app() -> WakaQ:
    return WakaQ(queues=["q"], max_retries=3, retry_on=(TimeoutError,), eager=True)


def test_eager_retries_inline_with_the_attempt_visible(eager_app: WakaQ) -> None:
    seen: list[tuple[int, list[str]]] = []

    @eager_app.task
    def flaky(fails: int) -> str:
        seen.append((current_task.attempt, current_task.errors))
        if current_task.attempt <= fails:
            raise TimeoutError(f"run {current_task.attempt}")
        return "ok"

    started = time.monotonic()
    assert flaky.delay(2) == "ok"
    assert time.monotonic() - started < 0.5  # no backoff sleep (the default backoff is 1 s, then 2 s)
    assert seen == [(1, []), (2, ["TimeoutError: run 1"]), (3, ["TimeoutError: run 1", "TimeoutError: run 2"])]
    assert current_task.attempt == 0 and not current_task

    seen.clear()
    with pytest.raises(TimeoutError, match="run 4") as info:
        flaky.delay(10)
    assert [attempt for attempt, _ in seen] == [1, 2, 3, 4]
    (note,) = info.value.__notes__
    assert note.startswith("wakaq: gave up after 4 attempts (max_retries 3): attempt 1: TimeoutError: run 1;")
    assert note.endswith("attempt 4: TimeoutError: run 4")


def test_eager_does_not_retry_other_exceptions_and_honours_retry(eager_app: WakaQ) -> None:
    runs: list[int] = []

    @eager_app.task
    def wrong() -> None:
        runs.append(current_task.attempt)
        raise ValueError("no")

    with pytest.raises(ValueError, match="no") as info:
        wrong.delay()
    assert runs == [1] and not getattr(info.value, "__notes__", None)

    @eager_app.task(retry_on=(), max_retries=1)
    def asks() -> int:
        if current_task.attempt == 1:
            raise Retry(countdown=60)  # eager: retried at once
        return current_task.attempt

    assert asks.delay() == 2


def test_eager_retries_async_tasks(eager_app: WakaQ) -> None:
    @eager_app.task
    async def flaky() -> int:
        await asyncio.sleep(0)
        if current_task.attempt < 3:
            raise TimeoutError("async")
        return current_task.attempt

    assert flaky.delay() == 3

    async def inside_a_loop() -> Any:
        return await flaky.delay()

    assert asyncio.run(inside_a_loop()) == 3


def test_eager_without_retries_propagates_at_once() -> None:
    app = WakaQ(queues=["q"])
    runs: list[int] = []

    @app.task(retry_on=TimeoutError)  # max_retries 0 (the app's default): nothing to retry
    def t() -> None:
        runs.append(current_task.attempt)
        raise TimeoutError("x")

    with eager(app), pytest.raises(TimeoutError):
        t.delay()
    assert runs == [1]


# ---- finish.lua's eta mode, through the Consumer ---------------------------------------------------------------


def test_retry_at_moves_the_claim_to_the_eta_set_once(redis_url: str, rclient: redis.Redis) -> None:
    consumer = make_consumer(redis_url, ["default"], "d1", client=rclient)
    rclient.rpush(KEYS.queue("default"), encode_task("t", [1], {}))
    (task,) = consumer.claim([], 1)
    assert rclient.hlen(KEYS.inflight("d1")) == 1
    pubsub = rclient.pubsub()
    pubsub.subscribe(KEYS.eta_channel)
    wait_until(lambda: (m := pubsub.get_message(timeout=0.1)) is not None and m["type"] == "subscribe")
    retried = encode_task("t", [1], {}, 1, {"id": "x"})
    seconds, micros = rclient.time()
    due = seconds + micros / 1e6 + 60  # NOTE: the delay counts on Redis's clock
    consumer.retry_at(task, 60, {"id": "x"})
    consumer.retry_at(task, 65, {"id": "x"})  # a resend after a lost reply: already settled
    assert rclient.hlen(KEYS.inflight("d1")) == 0
    assert rclient.llen(KEYS.queue("default")) == 0
    ((payload, score),) = rclient.zrange(KEYS.eta("default"), 0, -1, withscores=True)
    assert payload == retried and abs(score - due) < 0.5
    message = wait_until(lambda: pubsub.get_message(timeout=0.1), what="the eta channel")
    assert message["data"] == KEYS.eta("default").encode()
    pubsub.close()
    with pytest.raises(ValueError, match="delay must be a finite number of seconds"):
        consumer.retry_at(task, float("nan"), {"id": "x"})


# ---- a real worker -------------------------------------------------------------------------------------------


def failed_records(rclient: redis.Redis) -> list[dict[str, Any]]:
    return [msgpack.unpackb(raw) for raw in rclient.lrange(KEYS.failed("default"), 0, -1)]


def settled(rclient: redis.Redis) -> bool:
    """Nothing pending, waiting or in flight."""
    inflight = sum(rclient.hlen(k) for k in scan_keys(rclient, KEYS.inflight("*")))
    return not rclient.llen(KEYS.queue("default")) and not rclient.zcard(KEYS.eta("default")) and not inflight


def retired_count(rclient: redis.Redis, counter: str, task: str) -> int:
    return int(rclient.hget(KEYS.stats_retired, f"{counter}\x1fdefault\x1f{task}") or 0)


def test_a_flaky_task_is_retried_through_the_eta_set_until_it_succeeds(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    app.flaky.delay("f", 2)
    w = start_worker()
    wait_until(lambda: len(events(rclient, "flaky")) == 3, 15, what="three attempts")
    wait_until(lambda: settled(rclient), what="the queue, eta set and in-flight hash to drain")
    runs = events(rclient, "flaky")
    assert [e["attempt"] for e in runs] == [1, 2, 3]
    assert [e["errors"] for e in runs] == [
        [],
        ["TimeoutError: slow backend, run 1"],
        [
            "TimeoutError: slow backend, run 1",
            "TimeoutError: slow backend, run 2",
        ],
    ]
    assert runs[0]["id"] is None and runs[1]["id"] and runs[1]["id"] == runs[2]["id"]
    assert {e["name"] for e in runs} == {"flaky"}
    # the backoff (0.2 s, then 0.4 s; no jitter in this app) was waited in the eta set
    assert runs[1]["t"] - runs[0]["t"] >= 0.15 and runs[2]["t"] - runs[1]["t"] >= 0.35
    assert failed_records(rclient) == []
    assert w.log_text().count("retry 1 of 3") == 1 and "retry 2 of 3" in w.log_text()
    w.stop()
    assert retired_count(rclient, "retried", "flaky") == 2
    assert retired_count(rclient, "exception", "flaky") == 0


def test_exhausted_retries_leave_one_failed_record_listing_every_reason(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    app.always_fails.delay("a")
    w = start_worker()
    wait_until(lambda: failed_records(rclient), 15, what="the failed record")
    wait_until(lambda: settled(rclient), what="nothing left")
    assert [e["attempt"] for e in events(rclient, "always_fails")] == [1, 2, 3]
    (record,) = failed_records(rclient)
    assert record["reason"] == (
        "TimeoutError: down, run 3 (retries exhausted: attempt 3, max_retries 2; attempt 1: TimeoutError: down, "
        "run 1; attempt 2: TimeoutError: down, run 2; attempt 3: TimeoutError: down, run 3)"
    )
    assert "TimeoutError: down, run 3" in record["traceback"]
    name, args, _, retry, meta = decode_task_meta(record["payload"])
    assert (name, args, retry) == ("always_fails", ["a"], 2)
    assert meta is not None and meta["errors"] == ["TimeoutError: down, run 1", "TimeoutError: down, run 2"]
    w.stop()
    assert retired_count(rclient, "retried", "always_fails") == 2
    assert retired_count(rclient, "exception", "always_fails") == 1


def test_raise_retry_waits_in_the_eta_set_while_the_child_runs_other_tasks(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    app.retry_later.delay("r")
    app.quick.delay("meanwhile")
    start_worker(concurrency=1)
    waiting = wait_until(lambda: rclient.zrange(KEYS.eta("default"), 0, -1, withscores=True), what="the eta entry")
    ((payload, due),) = waiting
    name, args, _, retry, meta = decode_task_meta(payload)
    assert (name, args, retry) == ("retry_later", ["r"], 1)
    assert meta is not None and meta["errors"] == ["Retry: retry requested"]
    wait_until(lambda: len(events(rclient, "retry_later")) == 2, 10, what="the second attempt")
    first, second = events(rclient, "retry_later")
    (quick,) = events(rclient, "quick")
    # the one child ran another task while the retry waited (no sleep in the child), and the retry came ~1 s later
    assert first["t"] < quick["t"] < second["t"] and quick["eta_waiting"] == 1
    assert first["t"] + 1 <= due < first["t"] + 3 and second["t"] >= due - 0.05
    assert second["attempt"] == 2 and second["errors"] == ["Retry: retry requested"]
    wait_until(lambda: settled(rclient), what="nothing left")
    assert failed_records(rclient) == []


def test_other_exceptions_and_plain_tasks_fail_as_before(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    app.wrong_error.delay("w")
    app.plain_fails.delay("p")
    start_worker()
    wait_until(lambda: len(failed_records(rclient)) == 2, 10, what="two failed records")
    assert [e["attempt"] for e in events(rclient)] == [1, 1]
    by_task = {decode_task_meta(r["payload"])[0]: r for r in failed_records(rclient)}
    assert by_task["wrong_error"]["reason"] == "ValueError: not a timeout"
    assert by_task["plain_fails"]["reason"] == "TimeoutError: no retry_on here"
    # the failed payload is the one sent, byte for byte: no meta, retry 0
    assert by_task["plain_fails"]["payload"] == encode_task("plain_fails", ["p"], {})
    assert rclient.zcard(KEYS.eta("default")) == 0


def test_a_child_killed_during_a_retried_attempt_loses_nothing(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    app.killed_on_second.delay("k")
    w = start_worker()
    wait_until(lambda: len(events(rclient, "killed_on_second")) == 3, 20, what="three runs")
    wait_until(lambda: settled(rclient), what="nothing left")
    runs = events(rclient, "killed_on_second")
    # run 2 (attempt 2) died with its child; the parent gave attempt 2 back, meta and all, and it ran again
    assert [(e["run"], e["attempt"]) for e in runs] == [(1, 1), (2, 2), (3, 2)]
    assert runs[1]["pid"] != runs[2]["pid"]
    assert runs[2]["errors"] == ["TimeoutError: first run"] and runs[2]["id"] == runs[1]["id"]
    assert failed_records(rclient) == []
    assert len(w.children()) == 1


def test_async_tasks_retry_too(app: ModuleType, start_worker: StartWorker, rclient: redis.Redis) -> None:
    app.async_flaky.delay("af", 2)
    start_worker()
    wait_until(lambda: len(events(rclient, "async_flaky")) == 3, 15, what="three async attempts")
    wait_until(lambda: settled(rclient), what="nothing left")
    runs = events(rclient, "async_flaky")
    assert [e["attempt"] for e in runs] == [1, 2, 3]
    assert runs[2]["errors"] == ["TimeoutError: async run 1", "TimeoutError: async run 2"]
    assert failed_records(rclient) == []


def test_soft_timeouts_and_exceptions_share_the_retry_counter(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    app.slow_then_flaky.delay("s")
    start_worker()
    wait_until(lambda: failed_records(rclient), 20, what="the failed record")
    runs = events(rclient, "slow_then_flaky")
    assert [e["attempt"] for e in runs] == [1, 2, 3]  # max_retries 2 in all, not 2 of each kind
    assert runs[2]["errors"] == ["SoftTimeout: soft timeout", "TimeoutError: flaky, run 2"]
    (record,) = failed_records(rclient)
    assert record["reason"].endswith(
        "(retries exhausted: attempt 3, max_retries 2; attempt 1: SoftTimeout: soft timeout; "
        "attempt 2: TimeoutError: flaky, run 2; attempt 3: TimeoutError: flaky, run 3)"
    )
    wait_until(lambda: settled(rclient), what="nothing left")
