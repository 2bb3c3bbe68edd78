"""Task counters, `wakaq.stats.snapshot` and the Prometheus text, against real `wakaq-worker` processes.

Counts must match the tasks sent exactly, across a child recycle (max_tasks_per_worker), a child killed at its
hard timeout, a poison pill, and a daemon restart (monotonic for Prometheus).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.keyspace import KEYS
from tests.workers import StartWorker, events, wait_until
from wakaq.metrics import render_metrics
from wakaq.stats import snapshot
from wakaq.watch import CLEAR

pytestmark = pytest.mark.timeout(120)

#: the workers' heartbeat_timeout: a heartbeat (with the counters) every second
HEARTBEAT = 3


def samples(app: ModuleType, r: redis.Redis) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics, parsed by prometheus_client's own parser."""
    text = render_metrics(app.wakaq, r)
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def wait_metric(app: ModuleType, r: redis.Redis, name: str, want: float, what: str, **labels: str) -> None:
    wait_until(lambda: value(samples(app, r), name, **labels) == want, 20, 0.1, what=f"{what} ({name}={want})")


def test_counts_match_tasks_sent_across_recycles_and_restart(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis, start_method: str
) -> None:
    for i in range(23):
        app.high.delay(i)
    for _ in range(4):
        app.failing.delay()
    rclient.rpush(KEYS.queue("low"), b"\xc1")  # one undecodable element (a truncated redelivery prefix)
    worker = start_worker(concurrency=2, max_tasks=5, heartbeat=HEARTBEAT)  # 27 tasks / 5 per child: several recycles
    high = {"queue": "high", "task": "high"}
    default = {"queue": "low", "task": "failing"}
    wait_metric(app, rclient, "wakaq_tasks_done_total", 23, "23 high tasks done", **high)
    wait_metric(app, rclient, "wakaq_tasks_failed_total", 4, "4 failures", **default, reason="exception")
    wait_metric(app, rclient, "wakaq_tasks_failed_total", 1, "undecodable", queue="low", task="?", reason="undecodable")
    found = samples(app, rclient)
    assert "recycl" in worker.log_text() or worker.log_text().count("forked child") > 2
    assert set(worker.start_methods().values()) == {start_method}, "recycled children too"
    assert value(found, "wakaq_tasks_started_total", **high) == 23
    assert value(found, "wakaq_tasks_started_total", **default) == 4
    assert value(found, "wakaq_tasks_done_total", **default) == 0
    assert value(found, "wakaq_task_runtime_seconds_count", **high) == 23
    assert value(found, "wakaq_task_runtime_seconds_bucket", **high, le="+Inf") == 23
    assert value(found, "wakaq_task_runtime_seconds_sum", **high) > 0
    assert value(found, "wakaq_daemons_alive") == 1
    assert value(found, "wakaq_queue_failed_tasks", queue="low") == 5

    # a graceful restart: the daemon deregisters, its totals move to the retired hash, nothing goes down
    worker.stop()
    wait_until(lambda: not rclient.smembers(KEYS.daemons), 10, what="the daemon deregistered")
    after_stop = samples(app, rclient)
    assert value(after_stop, "wakaq_tasks_done_total", **high) == 23
    assert value(after_stop, "wakaq_daemons_alive") == 0
    for i in range(7):
        app.high.delay(i)
    start_worker(concurrency=1, heartbeat=HEARTBEAT)
    wait_metric(app, rclient, "wakaq_tasks_done_total", 30, "23 + 7 after the restart", **high)
    assert value(samples(app, rclient), "wakaq_tasks_failed_total", **default, reason="exception") == 4


def test_counts_since_the_last_heartbeat_survive_a_graceful_stop(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    worker = start_worker(concurrency=1, heartbeat=60)  # a heartbeat every 2 s
    for i in range(10):
        app.high.delay(i)
    wait_until(lambda: len(events(rclient, "high")) == 10, 15, 0.01, what="10 tasks run")
    worker.stop()  # most likely before the next heartbeat
    assert worker.proc.returncode == 0
    assert not rclient.smembers(KEYS.daemons)
    assert value(samples(app, rclient), "wakaq_tasks_done_total", queue="high", task="high") == 10


def test_hard_timeout_poison_pill_and_retries_are_counted(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    app.hard_sleeper.delay()
    app.suicide.delay()  # kills its child on every delivery: dead-listed after 3
    app.soft_sleeper.delay()  # 2 retries (its queue's max_retries), then failed
    app.async_hard.delay()
    app.suicide_at.delay(datetime(2026, 1, 2, 3, 4, 5, 600_000))  # an ext type in the args
    start_worker(concurrency=2, heartbeat=HEARTBEAT)
    hard = {"queue": "low", "task": "hard_sleeper"}
    pill = {"queue": "low", "task": "suicide"}
    soft = {"queue": "retrying", "task": "soft_sleeper"}
    wait_metric(app, rclient, "wakaq_tasks_failed_total", 1, "hard timeout", **hard, reason="hard_timeout")
    wait_metric(app, rclient, "wakaq_tasks_failed_total", 1, "poison pill", **pill, reason="dead")
    wait_metric(app, rclient, "wakaq_tasks_failed_total", 1, "soft timeouts", **soft, reason="exception")
    wait_metric(
        app,
        rclient,
        "wakaq_tasks_failed_total",
        1,
        "async hard timeout",
        queue="low",
        task="async_hard",
        reason="hard_timeout",
    )
    wait_metric(
        app, rclient, "wakaq_tasks_failed_total", 1, "poison pill", queue="low", task="suicide_at", reason="dead"
    )
    found = samples(app, rclient)
    assert value(found, "wakaq_tasks_failed_total", queue="low", task="?", reason="dead") == 0
    assert value(found, "wakaq_tasks_started_total", queue="low", task="async_hard") == 1
    assert value(found, "wakaq_tasks_retried_total", **soft) == 2
    assert value(found, "wakaq_tasks_started_total", **soft) == 3
    assert value(found, "wakaq_tasks_started_total", **pill) == 3
    assert value(found, "wakaq_tasks_failed_total", **hard, reason="exception") == 0
    assert value(found, "wakaq_tasks_done_total", **hard) == 0


def test_dead_daemon_is_listed_until_reaped_and_its_counts_carry_over(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    for i in range(5):
        app.high.delay(i)
    victim = start_worker(name="victim", concurrency=1, heartbeat=HEARTBEAT)
    high = {"queue": "high", "task": "high"}
    wait_metric(app, rclient, "wakaq_tasks_done_total", 5, "5 tasks", **high)
    snap = snapshot(app.wakaq, rclient)
    (daemon,) = snap["daemons"]
    assert daemon["alive"] is True and daemon["pid"] == victim.pid and daemon["rss_bytes"] > 0
    (child,) = daemon["children"]
    assert child["pid"] in victim.children() and child["busy"] is False and child["rss_bytes"] > 0
    for pid in [victim.pid, *victim.children()]:
        os.kill(pid, signal.SIGKILL)
    victim.proc.wait(10)
    # heartbeat_timeout is 3 s: after it the daemon is dead, still registered, its counters still counted
    wait_until(lambda: not snapshot(app.wakaq, rclient)["daemons"][0]["alive"], 10, 0.2, what="daemon seen dead")
    snap = snapshot(app.wakaq, rclient)
    assert [d["id"] for d in snap["daemons"]] == [daemon["id"]]
    assert value(samples(app, rclient), "wakaq_tasks_done_total", **high) == 5
    # another daemon reaps it: gone from the list, its counters now in the retired totals
    start_worker(name="reaper", concurrency=1, heartbeat=HEARTBEAT)
    wait_until(
        lambda: daemon["id"] not in [d["id"] for d in snapshot(app.wakaq, rclient)["daemons"]], 15, 0.2, what="reaped"
    )
    assert value(samples(app, rclient), "wakaq_tasks_done_total", **high) == 5


def test_daemon_reaped_while_stalled_does_not_count_twice(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis
) -> None:
    """A daemon frozen past its heartbeat timeout is reaped (its totals carried over), then wakes up: it must
    publish only what it did after the reap, or Prometheus would see its old counts twice."""
    for i in range(5):
        app.high.delay(i)
    stalled = start_worker(name="stalled", concurrency=1, heartbeat=HEARTBEAT)
    high = {"queue": "high", "task": "high"}
    wait_metric(app, rclient, "wakaq_tasks_done_total", 5, "5 tasks", **high)
    frozen = [stalled.pid, *stalled.children()]
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        start_worker(name="reaper", concurrency=1, heartbeat=HEARTBEAT)
        wait_until(lambda: len(rclient.smembers(KEYS.daemons)) == 1, 20, 0.2, what="the frozen daemon reaped")
        assert value(samples(app, rclient), "wakaq_tasks_done_total", **high) == 5
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    wait_until(lambda: len(rclient.smembers(KEYS.daemons)) == 2, 20, 0.2, what="the woken daemon registered again")
    for i in range(5):
        app.high.delay(i)
    wait_metric(app, rclient, "wakaq_tasks_done_total", 10, "5 + 5", **high)
    time.sleep(2.5)  # two more heartbeats of each daemon: still exact
    assert value(samples(app, rclient), "wakaq_tasks_done_total", **high) == 10
    assert value(samples(app, rclient), "wakaq_tasks_started_total", **high) == 10


def test_snapshot_shows_the_running_task(app: ModuleType, start_worker: StartWorker, rclient: redis.Redis) -> None:
    start_worker(concurrency=1, heartbeat=HEARTBEAT)
    app.sleeper.delay(3.0, "long")

    def running() -> dict[str, Any] | None:
        for d in snapshot(app.wakaq, rclient)["daemons"]:
            for c in d["children"]:
                if c["task"] == "sleeper" and c["running_for"] and c["running_for"] > 0.5:
                    return c
        return None

    child = wait_until(running, 15, 0.1, what="the child seen running sleeper")
    assert child["busy"] is True and child["queue"] == "low"


def test_snapshot_is_fast_with_100000_failed_tasks(app: ModuleType, rclient: redis.Redis) -> None:
    record = b"\x81\xa6reason\xa4boom" + b"x" * 200
    pipe = rclient.pipeline(transaction=False)
    for _ in range(100):
        pipe.lpush(KEYS.failed("low"), *([record] * 1000))
    pipe.execute()
    assert rclient.llen(KEYS.failed("low")) == 100_000
    snapshot(app.wakaq, rclient)
    best = min(_timed(lambda: snapshot(app.wakaq, rclient)) for _ in range(5))
    assert snapshot(app.wakaq, rclient)["queues"]["low"]["failed_tasks"] == 100_000
    assert best < 0.05, f"snapshot took {best * 1000:.1f} ms"


def _timed(f: Callable[[], object]) -> float:
    started = time.perf_counter()
    f()
    return time.perf_counter() - started


# ---- wakaq-info --watch ---------------------------------------------------------------------------------------


def test_watch_redraws_shows_rates_and_exits_0_on_ctrl_c(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis, tmp_path: Path
) -> None:
    start_worker(concurrency=1, heartbeat=HEARTBEAT)
    out = (tmp_path / "watch.out").open("w+b")
    proc = subprocess.Popen(
        [sys.executable, "-m", "wakaq", "info", "--app", "tests.apps.worker_app.wakaq", "--watch", "--interval", "0.2"],
        stdout=out,
        stderr=subprocess.PIPE,
    )
    try:

        def screens() -> list[str]:
            return (tmp_path / "watch.out").read_bytes().decode(errors="replace").split(CLEAR)

        wait_until(lambda: len(screens()) >= 3, 20, 0.1, what="three screens")
        for i in range(40):
            app.high.delay(i)
        app.sleeper.delay(5.0)
        wait_until(lambda: "sleeper" in screens()[-1], 20, 0.1, what="the running task on screen")
        last = screens()[-1]
        assert "alive" in last and "high" in last and "low" in last
        assert any(_rate(s, "high") > 0 for s in screens()), "a done/s rate for queue high"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        assert "Traceback" not in stderr, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if proc.stderr:
            proc.stderr.close()
        out.close()


def _rate(screen: str, queue: str) -> float:
    for line in screen.splitlines():
        fields = line.split()
        if fields and fields[0] == queue and len(fields) == 7 and fields[5] != "-":
            return float(fields[5])
    return 0.0


def test_inflight_split_by_queue_sums_to_the_exact_total() -> None:
    from wakaq.stats import split_inflight

    assert split_inflight(3, [b"high\nx", b"high\ny", b"low\nz"]) == {"high": 2, "low": 1}
    # a sample of 3 entries of a daemon holding 100: its shares of the exact total
    assert split_inflight(100, [b"high\nx", b"high\ny", b"low\nz"]) == {"high": 67, "low": 33}
    assert split_inflight(0, []) == {}
