"""The worker supervisor with real processes and real signals, without Redis (`url=None`)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import redis

from tests.redis_server import RedisServer, free_port
from wakaq import _wakaq

CHILD_LINE = re.compile(r"^child (\d+) pid (\d+)$", re.M)
FORK_LINE = re.compile(r"DEBUG: forked child (\d+) \(slot (\d+), parent threads (\d+)\)")
PARENT_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] (DEBUG|INFO|WARNING|ERROR): ")


def wait_for(check: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Worker:
    def __init__(self, tmp_path: Path, mode: str, config: dict[str, object]) -> None:
        self.log_path = tmp_path / "worker.log"
        self.stderr_path = tmp_path / "stderr.txt"
        env = dict(os.environ)
        env["SUP_MODE"] = mode
        env["SUP_CONFIG"] = json.dumps({"log_file": str(self.log_path), **config})
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.apps.supervised"], env=env, stdout=err, stderr=err
            )
        self.seen_pids: set[int] = set()

    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ""

    def children(self) -> list[tuple[int, int]]:
        found = [(int(slot), int(pid)) for slot, pid in CHILD_LINE.findall(self.log())]
        self.seen_pids.update(pid for _, pid in found)
        return found

    def wait_children(self, n: int, timeout: float = 10.0) -> list[tuple[int, int]]:
        wait_for(lambda: len(self.children()) >= n, timeout, f"{n} child start lines\n{self.log()}")
        return self.children()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def cleanup(self) -> None:
        pids = set(self.seen_pids)
        try:
            pids.update(p.pid for p in psutil.Process(self.proc.pid).children(recursive=True))
        except psutil.Error:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def assert_single_threaded_forks(self) -> int:
        forks = FORK_LINE.findall(self.log())
        assert forks, self.log()
        assert all(threads == "1" for _, _, threads in forks), forks
        return len(forks)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def _start(mode: str = "idle", **config: object) -> Worker:
        w = Worker(tmp_path, mode, config)
        workers.append(w)
        return w

    try:
        yield _start
    finally:
        for w in workers:
            w.cleanup()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_forks_children_relays_output_and_stops_on_sigterm(start: Callable[..., Worker]) -> None:
    w = start(concurrency=3)
    kids = w.wait_children(3)
    assert sorted(slot for slot, _ in kids) == [0, 1, 2]
    assert len({pid for _, pid in kids}) == 3
    w.signal(signal.SIGTERM)
    assert w.wait_exit(timeout=10) == 0
    log = w.log()
    for slot, pid in kids:
        assert f"child {slot} pid {pid} got SIGTERM" in log
        assert f"child {slot} pid {pid} exiting" in log
        assert not alive(pid)
    assert "INFO: wakaq worker" in log and "started: 3 children" in log
    assert "received SIGTERM: stopping gracefully" in log
    assert log.rstrip().endswith("stopped")
    assert w.assert_single_threaded_forks() == 3
    for line in log.splitlines():
        assert PARENT_LINE.match(line) or line.startswith("child "), line


def test_sigkilled_child_is_reforked(start: Callable[..., Worker]) -> None:
    w = start(concurrency=1)
    [(_, first)] = w.wait_children(1)
    os.kill(first, signal.SIGKILL)
    kids = w.wait_children(2)
    assert kids[1][0] == 0 and kids[1][1] != first
    assert f"child {first} (slot 0) killed by signal 9" in w.log()
    w.signal(signal.SIGTERM)
    assert w.wait_exit(timeout=10) == 0
    assert w.assert_single_threaded_forks() == 2


def test_crash_loop_backs_off_and_parent_stays_responsive(start: Callable[..., Worker]) -> None:
    w = start("crash", concurrency=2)
    # Two rounds of instant deaths: delays 1 s, 2 s, then 4 s, 8 s before the third round.
    wait_for(lambda: "(4 in a row): next fork in 8s" in w.log(), timeout=15, what="crash-loop backoff")
    assert len(FORK_LINE.findall(w.log())) == 4
    cpu = psutil.Process(w.proc.pid).cpu_times()
    assert cpu.user + cpu.system < 2.0, cpu
    log = w.log()
    assert "exited with code 3" in log
    assert re.search(r"^partial line from \d+$", log, re.M), "unterminated last line flushed at exit"
    t0 = time.monotonic()
    w.signal(signal.SIGTERM)
    assert w.wait_exit(timeout=5) == 0
    assert time.monotonic() - t0 < 2.0
    w.assert_single_threaded_forks()


def test_child_exception_prints_traceback_and_exits_1(start: Callable[..., Worker]) -> None:
    w = start("raise", concurrency=1)
    wait_for(lambda: "exited with code 1" in w.log(), what="child exit 1")
    log = w.log()
    assert "Traceback (most recent call last)" in log
    assert re.search(r"RuntimeError: boom from \d+", log)
    w.signal(signal.SIGTERM)
    assert w.wait_exit(timeout=5) == 0


def test_soft_timeout_sends_sigquit_once(start: Callable[..., Worker]) -> None:
    w = start("soft", concurrency=1)
    [(_, pid)] = w.wait_children(1)
    wait_for(lambda: "child 0 finished task 1" in w.log(), what="soft timeout marker")
    log = w.log()
    assert f"SOFT-TIMEOUT child 0 pid {pid}" in log
    assert f"child {pid} (slot 0): task 1 passed its soft timeout, sent SIGQUIT" in log
    w.signal(signal.SIGTERM)
    assert w.wait_exit(timeout=10) == 0
    assert w.log().count("SOFT-TIMEOUT") == 1
    assert "hard timeout" not in w.log()


def test_hard_timeout_kills_and_reforks(start: Callable[..., Worker]) -> None:
    w = start("hard", concurrency=1)
    [(_, first)] = w.wait_children(1)
    kids = w.wait_children(2, timeout=10)
    assert kids[1][1] != first
    log = w.log()
    assert f"SOFT-TIMEOUT child 0 pid {first}" in log
    assert f"child {first} (slot 0): task 1 hard timeout: ran longer than 1s, killed" in log
    assert f"child {first} (slot 0) killed by signal 9" in log
    assert not alive(first)
    w.signal(signal.SIGTERM)
    assert w.wait_exit(timeout=10) == 0


def test_async_hard_deadline_kills_and_reforks(start: Callable[..., Worker]) -> None:
    w = start("async", concurrency=1)
    [(_, first)] = w.wait_children(1)
    kids = w.wait_children(2, timeout=10)
    assert kids[1][1] != first
    assert f"child {first} (slot 0): task 5 hard timeout: async task ran past its hard deadline, killed" in w.log()
    w.signal(signal.SIGINT)
    w.signal(signal.SIGINT)
    assert w.wait_exit(timeout=10) == 0


def test_second_sigint_kills_a_stuck_child_quickly(start: Callable[..., Worker]) -> None:
    w = start("long", concurrency=1)
    [(_, pid)] = w.wait_children(1)
    wait_for(lambda: "running long task" in w.log(), what="long task")
    w.signal(signal.SIGINT)
    wait_for(lambda: f"child 0 pid {pid} got SIGTERM" in w.log(), what="graceful SIGTERM to the child")
    assert w.proc.poll() is None and alive(pid), "a graceful stop waits for the running task"
    t0 = time.monotonic()
    w.signal(signal.SIGINT)
    assert w.wait_exit(timeout=5) == 0
    assert time.monotonic() - t0 < 2.0
    assert not alive(pid)
    assert "received SIGINT again: killing 1 children now" in w.log()


def test_shutdown_timeout_kills_what_is_left(start: Callable[..., Worker]) -> None:
    w = start("long", concurrency=1, shutdown_timeout=0.5)
    [(_, pid)] = w.wait_children(1)
    wait_for(lambda: "running long task" in w.log(), what="long task")
    w.signal(signal.SIGTERM)
    assert w.wait_exit(timeout=5) == 0
    assert not alive(pid)
    assert "shutdown_timeout passed: killing 1 children still running" in w.log()


def test_memory_limit_postpones_forking(start: Callable[..., Worker]) -> None:
    w = start(concurrency=2, max_mem_percent=0.001)
    wait_for(lambda: "max_mem_percent 0.001: recycling, not forking" in w.log(), what="memory warning")
    assert "forked child" not in w.log()
    w.signal(signal.SIGTERM)
    assert w.wait_exit(timeout=5) == 0


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "concurrency is required"),
        ({"concurrency": 0}, "concurrency must be between 1"),
        ({"concurrency": True}, "concurrency must be an int"),
        ({"concurrency": 1, "concurency": 2}, "unknown worker config key 'concurency'"),
        ({"concurrency": 1, "max_mem_percent": 150}, "max_mem_percent must be in"),
        ({"concurrency": 1, "heartbeat_interval": 2, "heartbeat_timeout": 1}, "heartbeat_timeout must be longer"),
        ({"concurrency": 1, "shutdown_timeout": -1}, "shutdown_timeout must be >= 0"),
        ({"concurrency": 1, "queues": "default"}, "queues must be a list of str"),
        ({"concurrency": 1, "url": 5}, "url must be a str"),
        ({"concurrency": 1, "wait_timeout": 0}, "wait_timeout must be a positive number"),
        ({"concurrency": 1, "queue_rates": [(1.0, "x")]}, "queue_rates must be a list of (T, tau) pairs"),
        ({"concurrency": 1, "task_rates": [("t", 1.0)]}, "task_rates must be a list of (task name, T, tau)"),
    ],
)
def test_settings_are_validated(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        _wakaq.Settings(config)


def test_settings_are_frozen_and_cross_once() -> None:
    """The parent and the children's Consumers take the one object; nothing can change it after validation."""
    settings = _wakaq.Settings({"concurrency": 2, "daemon_id": "d", "queues": ["a"], "task_rates": [["t", 1, 2]]})
    assert (settings.concurrency, settings.daemon_id, settings.queues) == (2, "d", ["a"])
    with pytest.raises(AttributeError):
        settings.concurrency = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        _wakaq.run_worker({"concurrency": 1}, lambda slot: 0)  # type: ignore[arg-type]


def test_child_main_must_be_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        _wakaq.run_worker(_wakaq.Settings({"concurrency": 1}), 5)  # type: ignore[arg-type]


@pytest.mark.parametrize("seconds", [0.3, 0.0, -1.0, float("inf"), float("nan"), 1e300])
def test_slot_calls_outside_a_child_are_noops(seconds: float) -> None:
    """Outside a worker child (eager mode, tests, a script) there is no slot: each call returns None at once,
    whatever the values (no panic from converting them, no exception), and costs well under a microsecond."""
    calls = [
        lambda: _wakaq.task_started(2**64 - 1, seconds, seconds),
        lambda: _wakaq.async_deadline(2, seconds),
        lambda: _wakaq.task_finished(),
    ]
    assert [call() for call in calls] == [None, None, None]
    started = time.perf_counter()
    for _ in range(10_000):
        _wakaq.task_started(1, seconds, seconds)
        _wakaq.task_finished()
    per_pair = (time.perf_counter() - started) / 10_000
    assert per_pair < 20e-6, f"{per_pair * 1e6:.1f} us per started/finished pair outside a child"


def test_redis_outage_is_logged_once_and_recovers(start: Callable[..., Worker], redis_server: RedisServer) -> None:
    """Redis down at start: one WARNING (coordinator) and one for pub/sub, no crash, no spin; once a server
    appears the daemon heartbeats, subscribes, relays broadcasts, and deregisters at the end.
    (`redis_server` only brings the fixture's skip-or-fail rule when redis-server is missing.)"""
    port = free_port()
    w = start(concurrency=1, url=f"redis://127.0.0.1:{port}/0", daemon_id="sup-outage", heartbeat_interval=0.2)
    w.wait_children(1)
    wait_for(lambda: "WARNING: redis unavailable" in w.log(), what="outage warning")
    server = RedisServer(port=port).start()
    try:
        client = redis.Redis.from_url(server.url)
        wait_for(lambda: "INFO: redis available again" in w.log(), what="recovery")
        wait_for(lambda: client.sismember("wakaq:daemons", "sup-outage"), what="registration")

        def subscribers() -> int:
            return min(dict(client.pubsub_numsub("wakaq-broadcast", "wakaq-eta")).values())

        wait_for(lambda: subscribers() == 1, what="pub/sub subscription")
        assert client.publish("wakaq-broadcast", b"\x81\xa4name\xa1x") == 1
        wait_for(lambda: client.llen("wakaq:bcast:sup-outage") == 1, what="relayed broadcast")
        assert client.publish("wakaq-eta", b"default") == 1
        w.signal(signal.SIGTERM)
        assert w.wait_exit(timeout=10) == 0
        log = w.log()
        assert log.count("WARNING: redis unavailable") == 1, log
        assert log.count("WARNING: redis pub/sub unavailable") == 1, log
        assert "INFO: pub/sub subscribed again" in log
        assert not client.sismember("wakaq:daemons", "sup-outage")
        client.close()
    finally:
        server.cleanup()


def test_eta_message_wakes_the_parent_and_promotion_is_on_time(
    start: Callable[..., Worker], redis_url: str, rclient: redis.Redis
) -> None:
    """With pub/sub the parent sleeps up to 30 s between promotions; an eta announcement makes it re-plan,
    and it then promotes the task when it is due, not before and not much later."""
    w = start(concurrency=1, url=redis_url, queues=["default"], daemon_id="sup-eta")
    w.wait_children(1)
    wait_for(lambda: min(dict(rclient.pubsub_numsub("wakaq-eta")).values()) == 1, what="subscription")
    secs, micros = rclient.time()
    due = secs + micros / 1e6 + 0.7
    rclient.zadd("wakaq:eta:default", {b"eta-payload": due})
    assert rclient.publish("wakaq-eta", b"default") == 1
    wait_for(lambda: rclient.llen("wakaq:default") == 1, timeout=5, what="promotion")
    secs, micros = rclient.time()
    arrived = secs + micros / 1e6
    assert due <= arrived < due + 0.5, (due, arrived)
    assert rclient.lrange("wakaq:default", 0, -1) == [b"eta-payload"]
    assert rclient.zcard("wakaq:eta:default") == 0
    w.signal(signal.SIGTERM)
    assert w.wait_exit(timeout=10) == 0
