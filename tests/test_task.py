"""Task registration and what `.delay()` / `.broadcast()` hand to the broker (a recording fake here; the real
Redis round trip is in test_readme.py)."""

import inspect
import os
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.fakes import FakeBroker, install_fake_broker
from wakaq import Queue, Task, WakaQ, WakaQError, _wakaq


@pytest.fixture
def app() -> WakaQ:
    return WakaQ(queues=[(0, "high"), (1, "med"), "default"])


def test_bare_decorator(app: WakaQ) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        """Adds."""
        return x + y

    assert isinstance(add, Task)
    assert add.name == "add" and add.__name__ == "add" and add.__doc__ == "Adds."
    assert app.tasks == {"add": add}
    assert add(1, 2) == 3
    assert add.fn(2, 2) == 4
    assert add.is_async is False
    assert add.queue is None and add.max_retries is None
    assert add.wakaq is app and add.app is app


def test_decorator_with_options(app: WakaQ) -> None:
    @app.task(queue="med", max_retries=7, soft_timeout=420, hard_timeout=timedelta(seconds=480))
    async def fetch() -> None:
        pass

    assert fetch.is_async is True
    assert fetch.queue is app.queues_by_name["med"]
    assert fetch.max_retries == 7
    assert (fetch.soft_timeout, fetch.hard_timeout) == (timedelta(seconds=420), timedelta(seconds=480))


def test_delay_pushes_to_task_queue_or_default(app: WakaQ) -> None:
    fake = install_fake_broker(app)

    @app.task(queue="med")
    def on_med(x: int, y: int) -> None:
        pass

    @app.task
    def anywhere() -> None:
        pass

    assert on_med.delay(1, y=2) is None
    on_med.delay(1, 1, queue="high")
    on_med.delay(1, 1, queue=Queue("high"))
    anywhere.delay()
    assert fake.calls == [
        ("push", "med", "on_med", (1,), {"y": 2}),
        ("push", "high", "on_med", (1, 1), {}),
        ("push", "high", "on_med", (1, 1), {}),
        ("push", "default", "anywhere", (), {}),
    ]


def test_delay_unknown_queue(app: WakaQ) -> None:
    fake = install_fake_broker(app)

    @app.task
    def t() -> None:
        pass

    with pytest.raises(WakaQError, match=r"unknown queue 'nope'"):
        t.delay(queue="nope")
    assert fake.calls == []


@pytest.mark.parametrize(
    ("eta", "offset"),
    [
        (timedelta(seconds=10), 10.0),
        (10, 10.0),
        (2.5, 2.5),
        (timedelta(0), 0.0),
    ],
)
def test_delay_relative_eta(app: WakaQ, eta: object, offset: float) -> None:
    fake = install_fake_broker(app)

    @app.task
    def t(a: int) -> None:
        pass

    t.delay(5, eta=eta)
    (call,) = fake.calls
    # NOTE: relative etas go as such: the script adds them to Redis's clock (issue 19, defect 8)
    assert call == ("push_eta", "default", "t", (5,), {}, offset, True)


def test_delay_absolute_eta(app: WakaQ) -> None:
    fake = install_fake_broker(app)

    @app.task
    def t() -> None:
        pass

    t.delay(eta=datetime(2030, 1, 2, 3, 4, 5, 500000))  # naive = UTC
    t.delay(eta=datetime(2030, 1, 2, 4, 4, 5, 500000, tzinfo=timezone(timedelta(hours=1))))
    expected = datetime(2030, 1, 2, 3, 4, 5, 500000, tzinfo=timezone.utc).timestamp()
    assert [c[5] for c in fake.calls] == [expected, expected]


@pytest.mark.parametrize("eta", ["10", True, [1], object()])
def test_delay_unknown_eta_type(app: WakaQ, eta: object) -> None:
    install_fake_broker(app)

    @app.task
    def t() -> None:
        pass

    with pytest.raises(WakaQError, match="unknown eta type"):
        t.delay(eta=eta)


def test_delay_many(app: WakaQ) -> None:
    fake = install_fake_broker(app)

    @app.task(queue="med")
    def t(x: int) -> None:
        pass

    assert t.delay_many([((1,), {}), ((2,), {"x": 3})]) == 2
    assert t.delay_many([((4,), {})], queue="high") == 1
    assert t.delay_many([]) == 0
    assert fake.calls == [
        ("push_many", [("med", "t", (1,), {}), ("med", "t", (2,), {"x": 3})]),
        ("push_many", [("high", "t", (4,), {})]),
    ]


def test_broadcast_returns_number_of_daemons(app: WakaQ) -> None:
    fake = install_fake_broker(app)

    @app.task
    def reload_config(section: str) -> None:
        pass

    assert reload_config.broadcast("all") == 3
    assert fake.calls == [("broadcast", "reload_config", ("all",), {})]


def test_broker_is_lazy_and_recreated_after_fork(app: WakaQ, monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[tuple[object, ...]] = []

    class RecordingBroker:
        def __init__(self, *args: object, **options: object) -> None:
            created.append(args)

    from wakaq import _wakaq

    monkeypatch.setattr(_wakaq, "Broker", RecordingBroker, raising=False)
    assert created == []
    first = app.broker
    assert app.broker is first
    assert created == [("redis://localhost:6379/0", "wakaq", 15.0, 15.0)]
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as seen from a forked child
    second = app.broker
    assert second is not first and len(created) == 2
    assert app._stale_brokers == [first]  # the parent's connection is kept, never dropped, in the child


def test_current_task_is_none_outside_tasks(app: WakaQ) -> None:
    assert app.current_task is None


@pytest.mark.parametrize("method", [m for m in vars(FakeBroker) if not m.startswith("_")])
def test_fake_broker_has_the_native_signatures(method: str) -> None:
    """The fake stands in for `_wakaq.Broker` in these tests: a method it has must take the same parameters
    (names, kinds, defaults) as the native one, or a test could pass against an API that does not exist."""
    fake = inspect.signature(getattr(FakeBroker, method))
    native = inspect.signature(getattr(_wakaq.Broker, method))

    def shape(sig: inspect.Signature) -> list[tuple[str, Any, Any]]:
        return [(p.name, p.kind, p.default) for p in list(sig.parameters.values())[1:]]  # NOTE: minus self

    assert shape(fake) == shape(native), f"FakeBroker.{method}{fake} vs Broker.{method}{native}"
