"""What only spawn mode does (`--start-method=spawn`, `WakaQ(start_method="spawn")`): children are fresh
interpreters that import the app. The worker behaviour shared with fork mode is tested under both start methods
(the `start_method` fixture) in tests/test_worker.py, tests/test_stats.py and tests/test_cancel.py."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import pytest
import redis

from tests.workers import StartWorker, events, is_spawned, wait_until

pytestmark = pytest.mark.timeout(90)

THREAD_WARNING = "OS threads at fork"


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
    worker = start_worker(concurrency=2, args=("--start-method=spawn",), import_thread=1, ready_timeout=30)
    children = worker.children()
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
    assert set(worker.start_methods().values()) == {"spawn"}
    for pid in children:  # both have run their hook: set up and in their task loop
        assert is_spawned(pid)
        # the child mapped both memory files, then closed them; none of the parent's fds (log file) leaked in
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "memfd:wakaq-slots" in maps and "memfd:wakaq-counters" in maps
        fds = [os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd")]
        assert not [fd for fd in fds if "memfd:" in fd or fd == str(worker.log)], fds


def test_the_app_option_spawns_children(app: ModuleType, start_worker: StartWorker, rclient: redis.Redis) -> None:
    """`WakaQ(start_method="spawn")` without the command line flag (worker_app reads WAKAQ_TEST_START_METHOD)."""
    worker = start_worker(concurrency=2, start_method="spawn", ready_timeout=30)
    assert set(worker.start_methods().values()) == {"spawn"}
    app.low.delay(7)
    [event] = wait_until(lambda: events(rclient, "low"), timeout=20, what="the task")
    assert event["i"] == 7 and event["pid"] in worker.children()


def test_bad_start_method_and_spawn_without_an_app_path_are_refused(redis_url: str) -> None:
    from wakaq import WakaQ
    from wakaq.daemon import run_worker
    from wakaq.exceptions import WakaQError

    with pytest.raises(WakaQError, match="start_method must be one of 'fork', 'spawn', got 'forkserver'"):
        WakaQ(url=redis_url, queues=["q"], start_method="forkserver")
    with pytest.raises(WakaQError, match="needs the app's import path"):
        run_worker(WakaQ(url=redis_url, queues=["q"]), start_method="spawn")


def test_a_spawned_child_that_cannot_import_the_app_backs_off(app: ModuleType, start_worker: StartWorker) -> None:
    # NOTE: the parent imports the app fine; the child's import fails (its environment says so).
    worker = start_worker(start_method="spawn", fail_in_spawned_child=1, wait=False)
    wait_until(lambda: "children keep dying" in worker.log_text(), timeout=30, what="the crash-loop backoff")
    assert "RuntimeError: refusing to start in a spawned child" in worker.log_text()
    assert worker.proc.poll() is None
