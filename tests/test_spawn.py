"""Spawn mode (`--start-method=spawn`, `WakaQ(start_method="spawn")`): children are fresh interpreters that
import the app, under the same supervisor. Real `wakaq-worker` processes, real signals, a real Redis."""

from __future__ import annotations

import importlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import pytest
import redis

from tests.test_stats import samples, value
from tests.workers import Worker, events, wait_until

pytestmark = pytest.mark.timeout(90)

StartWorker = Callable[..., Worker]
THREAD_WARNING = "OS threads at fork"


@pytest.fixture
def app(redis_url: str) -> ModuleType:
    return importlib.import_module("tests.apps.worker_app")


@pytest.fixture
def start_worker(redis_url: str, tmp_path: Path) -> Iterator[StartWorker]:
    started: list[Worker] = []

    def start(children: int = 1, **options: Any) -> Worker:
        options.setdefault("concurrency", children)
        if "args" not in options:
            options.setdefault("start_method", "spawn")
        worker = Worker(tmp_path, redis_url, name=f"worker{len(started)}", **options)
        started.append(worker)
        # NOTE: a spawned child imports the app before it is ready: allow for a loaded machine.
        worker.wait_ready(children=int(options["concurrency"]), timeout=30)
        return worker

    yield start
    for worker in started:
        worker.stop()


def failed_records(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    return [msgpack.unpackb(raw) for raw in client.lrange(f"wakaq:failed:{queue}", 0, -1)]


def is_spawned(pid: int) -> bool:
    """`pid` runs `python [interpreter flags] -m wakaq._spawned ...` (exec'd, not a forked copy of the parent)."""
    argv = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    return "-m" in argv and argv[argv.index("-m") + 1] == "wakaq._spawned"


def test_fork_mode_warns_about_a_thread_started_at_import(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    """The control for the next test: the app really is unsafe to fork."""
    worker = start_worker(start_method="fork", import_thread=1)
    app.low.delay(1)
    wait_until(lambda: events(rclient, "low"), timeout=20, what="the task")
    assert THREAD_WARNING in worker.log_text()


def test_cli_spawn_runs_an_app_that_starts_a_thread_at_import(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    worker = start_worker(children=2, args=("--start-method=spawn",), import_thread=1)
    children = worker.children()
    for pid in children:
        assert is_spawned(pid)
    for i in range(20):
        app.low.delay(i)
    done = wait_until(lambda: len(events(rclient, "low")) == 20 and events(rclient, "low"), timeout=20, what="20 tasks")
    assert sorted(e["i"] for e in done) == list(range(20))
    assert {e["pid"] for e in done} <= set(children)
    # each child imported the app and ran its hook (one may still be starting while the other drained the queue)
    wait_until(
        lambda: {e["pid"] for e in events(rclient, "after_worker_started")} == set(children),
        timeout=20,
        what="both children's after_worker_started",
    )
    assert THREAD_WARNING not in worker.log_text()
    assert "spawn: exec'd interpreter" in worker.log_text()
    for pid in children:  # both have run their hook: set up and in their task loop
        # the child mapped both memory files, then closed them; none of the parent's fds (log file) leaked in
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "memfd:wakaq-slots" in maps and "memfd:wakaq-counters" in maps
        fds = [os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd")]
        assert not [fd for fd in fds if "memfd:" in fd or fd == str(worker.log)], fds


def test_app_option_spawn_soft_timeout_retries_then_fails(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    app.soft_sleeper.delay()
    start_worker()
    wait_until(lambda: failed_records(rclient, "retrying"), timeout=30, what="the failure record")
    assert len(events(rclient, "soft-start")) == 3
    assert len(events(rclient, "soft-timeout-seen")) == 3
    [record] = failed_records(rclient, "retrying")
    assert "soft timeout" in record["reason"]


def test_spawn_hard_timeout_kills_records_and_respawns(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
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
    assert is_spawned(new_child)


def test_spawn_killed_child_task_runs_again_exactly_once(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    app.once_killed.delay("k")
    start_worker()
    wait_until(lambda: len(events(rclient, "once_killed")) == 2, timeout=30, what="the second attempt")
    time.sleep(0.5)  # NOTE: proving a negative: no third attempt
    assert [e["attempt"] for e in events(rclient, "once_killed")] == [1, 2]
    assert failed_records(rclient, "low") == []


def test_spawn_sigterm_lets_the_running_task_finish(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    worker = start_worker()
    app.sleeper.delay(2, tag="graceful")
    wait_until(lambda: events(rclient, "sleeper-start"), timeout=20, what="the task to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit(15) == 0
    assert len(events(rclient, "sleeper-end")) == 1
    assert rclient.hlen(next(iter(rclient.keys("wakaq:inflight:*")), b"none")) == 0


def test_spawn_children_die_with_a_killed_parent(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    worker = start_worker(children=2)
    children = worker.children()
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait_exit(10)
    wait_until(lambda: not any(Path(f"/proc/{p}").exists() for p in children), timeout=20, what="children gone")


def test_spawn_counters_count(app: ModuleType, start_worker: StartWorker, rclient: redis.Redis) -> None:
    for i in range(12):
        app.high.delay(i)
    for _ in range(3):
        app.failing.delay()
    worker = start_worker(children=2, max_tasks=4, heartbeat=3)  # recycles: each new child maps the same memory

    def counts() -> tuple[float, float, float]:
        found = samples(app, rclient)
        return (
            value(found, "wakaq_tasks_done_total", queue="high", task="high"),
            value(found, "wakaq_task_runtime_seconds_count", queue="high", task="high"),
            value(found, "wakaq_tasks_failed_total", queue="low", task="failing", reason="exception"),
        )

    wait_until(lambda: counts() == (12, 12, 3), timeout=30, interval=0.2, what="12 done and 3 failed counted")
    assert worker.log_text().count("spawn: exec'd interpreter") >= 4  # 15 tasks, 4 per child


def test_bad_start_method_and_spawn_without_an_app_path_are_refused(redis_url: str) -> None:
    from wakaq import WakaQ
    from wakaq.daemon import run_worker
    from wakaq.exceptions import WakaQError

    with pytest.raises(WakaQError, match="start_method must be one of 'fork', 'spawn', got 'forkserver'"):
        WakaQ(url=redis_url, queues=["q"], start_method="forkserver")
    with pytest.raises(WakaQError, match="needs the app's import path"):
        run_worker(WakaQ(url=redis_url, queues=["q"]), start_method="spawn")


def test_a_spawned_child_that_cannot_import_the_app_backs_off(
    app: ModuleType, redis_url: str, tmp_path: Path, rclient: redis.Redis
) -> None:
    # NOTE: the parent imports the app fine; the child's import fails (its environment says so).
    worker = Worker(tmp_path, redis_url, start_method="spawn", fail_in_spawned_child=1)
    try:
        wait_until(lambda: "children keep dying" in worker.log_text(), timeout=30, what="the crash-loop backoff")
        assert "RuntimeError: refusing to start in a spawned child" in worker.log_text()
        assert worker.proc.poll() is None
    finally:
        worker.stop()
