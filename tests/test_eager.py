"""Eager mode (`wakaq.testing`): `.delay()` runs inline, as a worker would, with no Redis."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from wakaq import WakaQ, WakaQError
from wakaq.testing import eager

# NOTE: nothing listens on port 1: any Redis access would fail the test loudly.
NO_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def app() -> WakaQ:
    return WakaQ(queues=[(0, "high"), "default"], url=NO_REDIS, eager=True)


def test_sync_task_runs_inline_and_returns(app: WakaQ) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert add.delay(1, 2) == 3
    assert add.delay(1, y=5, queue="high", eta=timedelta(hours=1)) == 6
    assert app._broker is None


def test_context_manager_and_decorator() -> None:
    app = WakaQ(queues=["default"], url=NO_REDIS)
    calls: list[int] = []

    @app.task
    def t(x: int) -> None:
        calls.append(x)

    with eager(app) as same:
        assert same is app and app.eager
        t.delay(1)
    assert app.eager is False

    @eager(app)
    def body() -> None:
        t.delay(2)

    body()
    assert calls == [1, 2]
    assert app.eager is False


def test_arguments_round_trip_through_the_codec(app: WakaQ) -> None:
    seen: list[Any] = []

    @app.task
    def capture(*args: Any, **kwargs: Any) -> None:
        seen.append((args, kwargs))

    aware = datetime(2030, 1, 1, 12, 0, 0, 750000, tzinfo=timezone(timedelta(hours=2)))
    capture.delay((1, 2), {3}, when=aware)
    ((args, kwargs),) = seen
    assert args == ([1, 2], [3])
    assert kwargs == {"when": datetime(2030, 1, 1, 10, 0, 0, 750000)}
    assert kwargs["when"].tzinfo is None


def test_unsupported_argument_raises_type_error(app: WakaQ) -> None:
    ran: list[bool] = []

    @app.task
    def t(x: object) -> None:
        ran.append(True)

    with pytest.raises(TypeError):
        t.delay(object())
    assert ran == []


def test_queue_and_eta_are_validated(app: WakaQ) -> None:
    @app.task
    def t() -> None:
        pass

    with pytest.raises(WakaQError, match="unknown queue 'nope'"):
        t.delay(queue="nope")
    with pytest.raises(WakaQError, match="unknown eta type"):
        t.delay(eta="soon")


def test_exception_propagates_and_after_callback_still_runs(app: WakaQ) -> None:
    events: list[str] = []
    app.after_task_finished(lambda: events.append("after"))

    @app.task
    def boom() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        boom.delay()
    assert events == ["after"]


def test_async_task_without_a_loop(app: WakaQ) -> None:
    @app.task
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    assert fetch.delay(21) == 42


def test_async_task_inside_a_running_loop_returns_an_asyncio_task(app: WakaQ) -> None:
    @app.task
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    async def main() -> int:
        pending = fetch.delay(4)
        assert isinstance(pending, asyncio.Task)
        return await pending

    assert asyncio.run(main()) == 8


def test_broadcast_and_delay_many(app: WakaQ) -> None:
    calls: list[int] = []

    @app.task
    def t(x: int) -> None:
        calls.append(x)

    assert t.broadcast(7) == 1
    assert t.delay_many([((1,), {}), ((), {"x": 2})]) == 2
    assert calls == [7, 1, 2]


def test_callbacks_and_current_task(app: WakaQ) -> None:
    events: list[Any] = []

    @app.before_task_started
    def before() -> None:
        events.append(("before", app.current_task))

    @app.after_task_finished
    async def after() -> None:
        events.append(("after", app.current_task))

    @app.task
    def work() -> None:
        events.append(("work", app.current_task))

    work.delay()
    assert events == [("before", work), ("work", work), ("after", work)]
    assert app.current_task is None


def test_wrappers_first_registered_is_outermost(app: WakaQ) -> None:
    events: list[str] = []

    def make(label: str) -> Callable[[Callable[..., Any], Sequence[Any], dict[str, Any]], Any]:
        def wrapper(fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
            events.append(f"{label}>")
            try:
                return fn(*args, **kwargs)
            finally:
                events.append(f"<{label}")

        return wrapper

    app.wrap_tasks_with(make("outer"))
    app.wrap_tasks_with(make("inner"))

    @app.task
    def t(x: int) -> int:
        events.append(f"task {x}")
        return x

    assert t.delay(1) == 1
    assert events == ["outer>", "inner>", "task 1", "<inner", "<outer"]


def test_wrapper_can_change_arguments(app: WakaQ) -> None:
    @app.wrap_tasks_with
    def double(fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        return fn(*[a * 2 for a in args], **kwargs)

    @app.task
    def ident(x: int) -> int:
        return x

    assert ident.delay(5) == 10


def test_readme_async_wrapper_around_sync_and_async_tasks(app: WakaQ) -> None:
    events: list[str] = []

    @app.wrap_tasks_with
    async def custom_task_decorator(fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> None:
        events.append("before")
        if inspect.iscoroutinefunction(fn):
            await fn(*args, **kwargs)
        else:
            fn(*args, **kwargs)
        events.append("after")

    @app.task
    def a_cpu_intensive_task() -> None:
        events.append("cpu")

    @app.task
    async def an_io_intensive_task() -> None:
        events.append("io")

    a_cpu_intensive_task.delay()
    an_io_intensive_task.delay()
    assert events == ["before", "cpu", "after", "before", "io", "after"]


def test_sync_wrapper_around_async_task_is_an_error(app: WakaQ) -> None:
    @app.wrap_tasks_with
    def sync_wrapper(fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        return fn(*args, **kwargs)

    @app.task
    async def io() -> None:
        pass

    with pytest.raises(WakaQError, match=r"sync wrapper .*sync_wrapper.* cannot wrap async task 'io'"):
        io.delay()


def test_calling_the_task_directly_skips_everything(app: WakaQ) -> None:
    events: list[str] = []
    app.before_task_started(lambda: events.append("before"))

    @app.task
    def t(x: int) -> int:
        return x

    assert t(3) == 3
    assert events == []
