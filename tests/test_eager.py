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


# ---- tasks with results or uniqueness (defect 9: eager mode hid what a worker would show) -------------------------


@pytest.mark.parametrize("option", [{"store_results": True}, {"unique_for": 60}], ids=["results", "unique"])
def test_a_tracked_tasks_exception_propagates_from_delay(app: WakaQ, option: dict[str, Any]) -> None:
    """As for every eager task: the exception reaches the caller, it is not kept in the handle."""

    @app.task(**option)
    def boom() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        boom.delay()


def test_a_results_tasks_value_is_what_a_worker_would_store(app: WakaQ) -> None:
    """The value goes through the codec as on a worker: a tuple comes back a list, an aware datetime naive UTC."""
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))

    @app.task(store_results=True)
    def pair() -> tuple[int, datetime]:
        return (1, when)

    @app.task
    def plain_pair() -> tuple[int, datetime]:
        return (1, when)

    assert pair.delay().result() == [1, datetime(2026, 1, 2, 1, 4, 5)]
    # NOTE: a worker discards a plain task's return value; eager `.delay()` returns it as the task returned it
    assert plain_pair.delay() == (1, when)


def test_an_unencodable_result_raises_the_type_error_a_worker_records(app: WakaQ) -> None:
    @app.task(store_results=True)
    def opaque() -> object:
        return object()

    @app.task(unique_for=60)
    def unique_opaque() -> object:
        return object()  # not stored (no results): fine on a worker, fine here

    with pytest.raises(TypeError, match=r"^cannot encode the task's return value: "):
        opaque.delay()
    assert unique_opaque.delay().status() == "done"


def test_async_results_task_inside_a_running_loop(app: WakaQ) -> None:
    @app.task(store_results=True)
    async def fetch(x: int) -> tuple[int, int]:
        await asyncio.sleep(0)
        if x < 0:
            raise ValueError(f"negative {x}")
        return (x, x * 2)

    async def main() -> Any:
        handle = fetch.delay(4)
        failing = fetch.delay(-1)
        with pytest.raises(ValueError, match="negative -1"):
            await failing.aresult()
        return await handle.aresult()

    assert asyncio.run(main()) == [4, 8]
    with pytest.raises(ValueError, match="negative -2"):
        fetch.delay(-2)


@pytest.mark.parametrize("option", [{"store_results": True}, {"unique_for": 60}], ids=["results", "unique"])
def test_current_task_id_is_the_handles_id_on_every_attempt(app: WakaQ, option: dict[str, Any]) -> None:
    from wakaq import current_task

    seen: list[str | None] = []

    @app.task(retry_on=TimeoutError, max_retries=2, **option)
    def flaky() -> None:
        seen.append(current_task.id)
        if len(seen) < 3:
            raise TimeoutError("again")

    @app.task(retry_on=TimeoutError, max_retries=1, **option)
    async def async_flaky() -> None:
        seen.append(current_task.id)
        if len(seen) < 5:
            raise TimeoutError("again")

    handle = flaky.delay()
    async_handle = async_flaky.delay()
    assert seen == [handle.id] * 3 + [async_handle.id] * 2
    assert handle.id and async_handle.id != handle.id
    assert current_task.id is None


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_async_producer_runs_inline_and_awaits_async_tasks(app: WakaQ, loop: str) -> None:
    """`await t.adelay()` in eager mode: the task ran when it returns, sync or async; its value or its exception."""
    ran: list[Any] = []

    @app.task
    def add(x: int, y: int) -> int:
        ran.append(("add", x, y))
        return x + y

    @app.task
    async def aadd(x: int, y: int) -> int:
        await asyncio.sleep(0)
        ran.append(("aadd", x, y))
        return x + y

    @app.task
    async def boom() -> None:
        raise KeyError("async")

    @app.task(store_results=True)
    async def stored(x: int) -> tuple[int, int]:
        return (x, x)

    async def main() -> list[Any]:
        values = [
            await add.adelay(1, 2, queue="high", eta=5),
            await aadd.adelay(3, y=4),
            await aadd.adelay_with_options((5, 6), queue="high"),
            await aadd.adelay_many([((7, 8), {}), ((9,), {"y": 10})]),
            await aadd.abroadcast(11, 12),
        ]
        handle = await stored.adelay(1)
        values.append((handle.status(), handle.result()))
        with pytest.raises(KeyError, match="async"):
            await boom.adelay()
        with pytest.raises(WakaQError):
            await add.adelay(1, 2, queue="nowhere")
        return values

    runner: Any = asyncio.run
    if loop == "uvloop":
        import uvloop

        runner = uvloop.run
    assert runner(main()) == [3, 7, 11, 2, 1, ("done", [1, 1])]
    assert ran == [("add", 1, 2), ("aadd", 3, 4), ("aadd", 5, 6), ("aadd", 7, 8), ("aadd", 9, 10), ("aadd", 11, 12)]
    assert app._broker is None
