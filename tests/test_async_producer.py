"""The async producer (`await task.adelay()` and friends; wakaq.aio, wakaq.coalesce) on a real Redis, under asyncio's
default loop and uvloop: what it enqueues is what `.delay()` enqueues, errors reach the caller, the loop runs on
during a round trip, cancelled callers leave nothing half done."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from datetime import timedelta
from types import ModuleType
from typing import Any

import pytest
import redis

from tests.keyspace import KEYS
from wakaq import WakaQ, WakaQError, _wakaq, coalesce
from wakaq.exceptions import BrokerError

#: nothing listens on port 1: a connection is refused at once
NO_REDIS = "redis://127.0.0.1:1/0"

Run = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    """Runs a coroutine to its end on a new loop of that kind."""
    if request.param == "uvloop":
        import uvloop

        return uvloop.run  # type: ignore[no-any-return]
    return asyncio.run


def queued(client: redis.Redis, queue: str) -> list[tuple[str, list[Any], dict[str, Any]]]:
    found = []
    for element in client.lrange(KEYS.queue(queue), 0, -1):
        name, args, kwargs, _ = _wakaq.decode_task(_wakaq.split_element(element)[1])
        found.append((name, args, kwargs))
    return found


def test_adelay_enqueues_what_delay_does(app: ModuleType, rclient: redis.Redis, run: Run) -> None:
    app.high.delay(1)
    app.default_task.delay(2, queue="medium")
    sync = [queued(rclient, q) for q in ("high", "medium")]
    rclient.flushall()

    async def main() -> list[Any]:
        return [await app.high.adelay(1), await app.default_task.adelay(2, queue="medium")]

    assert run(main()) == [None, None]
    assert (
        [queued(rclient, q) for q in ("high", "medium")] == sync == [[("high", [1], {})], [("default_task", [2], {})]]
    )


def test_eta_options_many_and_broadcast(app: ModuleType, rclient: redis.Redis, run: Run) -> None:
    async def main() -> tuple[Any, ...]:
        return (
            await app.low.adelay(1, eta=timedelta(minutes=5)),
            await app.low.adelay_with_options([2], {}, queue="high"),
            await app.low.adelay_many([([i], {}) for i in range(5)], queue="medium"),
            await app.low.abroadcast(3),
        )

    assert run(main()) == (None, None, 5, 0)  # NOTE: no worker daemon listens: the broadcast reached 0
    assert rclient.zcard(KEYS.eta("low")) == 1
    assert queued(rclient, "high") == [("low", [2], {})]
    assert [args for _, args, _ in queued(rclient, "medium")] == [[i] for i in range(5)]


def test_concurrent_callers_each_enqueue_once(app: ModuleType, rclient: redis.Redis, run: Run) -> None:
    """200 coroutines, 1,000 tasks over two queues (coalesced into batches): exactly those tasks, each once."""

    async def caller(c: int) -> None:
        for i in range(5):
            task = app.high if (c + i) % 2 else app.low
            await task.adelay(c * 5 + i)

    async def main() -> None:
        await asyncio.gather(*(caller(c) for c in range(200)))

    run(main())
    sent = sorted(args[0] for q in ("high", "low") for _, args, _ in queued(rclient, q))
    assert sent == list(range(1000))


def test_the_loop_runs_during_a_round_trip(app: ModuleType, rclient: redis.Redis, run: Run) -> None:
    """Redis pauses its clients for 0.5 s: the awaiting `adelay` waits it out while a ticker keeps ticking."""
    ticks: list[float] = []

    async def ticker(until: float) -> None:
        while time.monotonic() < until:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def main(send: Callable[[], Coroutine[Any, Any, Any]]) -> float:
        started = time.monotonic()
        rclient.execute_command("CLIENT", "PAUSE", 500, "ALL")
        ticking = asyncio.ensure_future(ticker(started + 0.4))
        await send()
        await ticking
        return time.monotonic() - started

    for send in (lambda: app.high.adelay(1), lambda: app.high.adelay(2, eta=30)):
        ticks.clear()
        assert run(main(send)) >= 0.45  # NOTE: the push waited for the pause
        assert len(ticks) >= 20, f"the loop ticked {len(ticks)} times in 0.4 s"
    assert queued(rclient, "high") == [("high", [1], {})]
    assert rclient.zcard(KEYS.eta("high")) == 1


@pytest.mark.parametrize("coalesced", [True, False])
def test_redis_errors_reach_the_caller(run: Run, coalesced: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coalesce, "ENABLED", coalesced)
    down = WakaQ(queues=["default"], url=NO_REDIS, socket_connect_timeout=1)

    @down.task
    def t(x: int) -> None: ...

    async def main() -> list[BaseException]:
        calls = [t.adelay(1), t.adelay(2, eta=5), t.adelay_many([([3], {})]), t.abroadcast(4)]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    errors = run(main())
    assert [type(e) for e in errors] == [BrokerError] * 4, errors
    with pytest.raises(WakaQError, match="unknown"):
        run(t.adelay(1, queue="nowhere"))  # type: ignore[arg-type]


def test_a_caller_cancelled_before_its_batch_leaves_is_not_sent(
    app: ModuleType, rclient: redis.Redis, run: Run
) -> None:
    async def main() -> None:
        dropped = asyncio.ensure_future(app.high.adelay(1))
        await asyncio.sleep(0)  # NOTE: its step ran: it waits in the batcher, whose batch leaves on the next step
        assert not dropped.done()
        dropped.cancel()
        await app.high.adelay(2)  # the batcher is not wedged by the cancelled caller
        with pytest.raises(asyncio.CancelledError):
            await dropped

    run(main())
    assert queued(rclient, "high") == [("high", [2], {})]


def test_cancelled_in_flight_callers_corrupt_nothing(app: ModuleType, rclient: redis.Redis, run: Run) -> None:
    """Callers cancelled at random points: each task is in the queue once or not at all, and the producer goes on."""

    async def main() -> None:
        sends = [asyncio.ensure_future(app.low.adelay(i)) for i in range(300)]
        for _ in range(3):
            await asyncio.sleep(0)
        for send in sends[::2]:
            send.cancel()
        await asyncio.gather(*sends, return_exceptions=True)
        await app.low.adelay(-1)

    run(main())
    sent = [args[0] for _, args, _ in queued(rclient, "low")]
    assert len(sent) == len(set(sent)) and -1 in sent
    assert set(range(1, 300, 2)) <= set(sent)  # NOTE: every caller that was not cancelled
