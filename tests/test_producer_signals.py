"""A producer call survives a signal that arrives while it waits for Redis, as redis-py's socket calls do (PEP 475):
the call completes, the Python handler runs right after it, and an exception the handler raises reaches the caller.

A push cannot simply be sent again after EINTR (it may have run), so an interrupted push used to raise
`BrokerError: redis call interrupted by a signal` while the task sat in the queue: an error for a task that was sent.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from types import FrameType

import pytest
import redis

from wakaq import Queue, WakaQ

# NOTE: the thread method: these tests own SIGALRM (pytest-timeout's signal method uses it too)
pytestmark = pytest.mark.timeout(60, method="thread")

INTERVAL = 0.0002  # seconds between SIGALRMs: shorter than a round trip to Redis, so many land inside one
PUSHES = 3000


@pytest.fixture
def alarms() -> Iterator[list[int]]:
    """SIGALRM every INTERVAL seconds with a handler that counts them; restored afterwards."""
    seen: list[int] = []

    def count(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)

    previous = signal.signal(signal.SIGALRM, count)
    try:
        yield seen
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_pushes_complete_under_a_stream_of_signals(redis_url: str, rclient: redis.Redis, alarms: list[int]) -> None:
    app = WakaQ(queues=[Queue("q")], url=redis_url)

    @app.task
    def add(x: int) -> None:
        raise AssertionError("never run here")

    deadline = time.monotonic() + 30
    signal.setitimer(signal.ITIMER_REAL, INTERVAL, INTERVAL)
    sent = 0
    for i in range(PUSHES):
        add.delay(i)
        sent += 1
        if i % 100 == 0:
            add.delay_many([((j,), {}) for j in range(5)])
            sent += 5
        if time.monotonic() > deadline:
            break
    signal.setitimer(signal.ITIMER_REAL, 0)
    assert len(alarms) > 100, "the signals must arrive during the pushes, or this test proves nothing"
    assert rclient.llen(app.keys.queue("q")) == sent == PUSHES + 5 * (PUSHES // 100)


def test_an_exception_from_the_handler_reaches_the_caller_after_the_push(redis_url: str, rclient: redis.Redis) -> None:
    app = WakaQ(queues=[Queue("q")], url=redis_url)

    @app.task
    def add(x: int) -> None:
        raise AssertionError("never run here")

    class Stop(Exception):
        pass

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Stop

    add.delay(-1)  # NOTE: connected and warm before the alarm is armed
    returned = 1
    previous = signal.signal(signal.SIGALRM, stop)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.005)
        with pytest.raises(Stop):
            for i in range(PUSHES):
                add.delay(i)
                returned += 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    pushed = rclient.llen(app.keys.queue("q"))
    assert 1 < returned < PUSHES
    assert returned <= pushed <= returned + 1, "the interrupted push either ran whole or never started"
