"""The scheduler (`python/wakaq/scheduler.py`) against a real Redis.

Most tests drive `Scheduler` on a fake clock (its `sleep` advances the clock), so a minute of schedule takes
milliseconds. The multi-process tests use every-second crons (croniter's sixth field is seconds); one slow test
runs real `wakaq-worker` and `wakaq-scheduler` processes on a `* * * * *` schedule.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import ROOT
from tests.keyspace import KEYS, scan_keys
from tests.redis_server import RedisServer, free_port
from tests.workers import StartScheduler, StartWorker, wait_until
from wakaq import CronTask, WakaQ, WakaQError
from wakaq._wakaq import decode_task, encode_task
from wakaq.constants import EXIT_USAGE
from wakaq.scheduler import STARTUP_GRACE, Scheduler, build_entries, list_schedules, resolve_queue

SCHED_APP = "tests.apps.sched_app.app"
FIRED = re.compile(r"INFO: fired tick on queue high for slot [^(]+\((\d+)\)")
T0 = datetime(2024, 1, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp()


def at(offset: float) -> float:
    """Unix time `offset` seconds after 2024-01-01 12:00:00 UTC."""
    return T0 + offset


def make_app(url: str, schedules: list[Any]) -> WakaQ:
    app = WakaQ(url=url, queues=[(0, "high"), (1, "med"), "default"], schedules=schedules, socket_timeout=2)

    @app.task(queue="high")
    def on_high() -> None: ...

    @app.task
    def plain(*args: Any, **kwargs: Any) -> None: ...

    return app


class FakeClock:
    """`now()` and `sleep()` for a Scheduler: sleeping advances the clock (plus `overshoot`, like a real OS)."""

    def __init__(self, start: float, overshoot: float = 0.0) -> None:
        self.t = start
        self.overshoot = overshoot
        self.actions: list[tuple[float, Callable[[], object]]] = []
        self.on_sleep: Callable[[float], None] = lambda _t: None

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, timezone.utc)

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.on_sleep(self.t)
        self.t += seconds + self.overshoot
        while self.actions and self.actions[0][0] <= self.t:
            self.actions.pop(0)[1]()


def drive(app: WakaQ, clock: FakeClock, until: float, ident: str = "test") -> Scheduler:
    """Run a Scheduler on `clock` until the clock passes `until`."""

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.t >= until:
            scheduler.stop()

    scheduler = Scheduler(app, clock=clock.now, sleep=sleep, ident=ident)
    scheduler.run()
    return scheduler


def fire_times(app: WakaQ, clock: FakeClock, client: redis.Redis) -> list[float]:
    """Clock times at which the total of queued tasks grew (read before each sleep: fires take no fake time)."""
    seen: list[float] = []
    total = [0]

    def check(t: float) -> None:
        now = sum(int(client.llen(q.broker_key)) for q in app.queues)
        seen.extend([t] * (now - total[0]))
        total[0] = now

    clock.on_sleep = check
    return seen


def claimed_slots(client: redis.Redis) -> list[int]:
    keys = scan_keys(client, f"{KEYS.namespace}:sched:*")
    return sorted(int(key.rsplit(b":", 1)[1]) for key in keys)


def fired_slots(records: list[logging.LogRecord]) -> list[int]:
    return [int(str(r.args[3])) for r in records if r.msg.startswith("fired") and isinstance(r.args, tuple)]


# ---- timing ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overshoot", [0.0, 0.3])
def test_fires_at_due_second_without_drift(redis_url: str, rclient: redis.Redis, overshoot: float) -> None:
    app = make_app(redis_url, [("* * * * *", "plain")])
    clock = FakeClock(at(30.25), overshoot)
    seen = fire_times(app, clock, rclient)
    drive(app, clock, until=at(4 * 60 + 30))
    assert seen == pytest.approx([at(60) + overshoot, at(120) + overshoot, at(180) + overshoot, at(240) + overshoot])
    assert claimed_slots(rclient) == [int(at(60)), int(at(120)), int(at(180)), int(at(240))]


def test_seconds_field_and_several_schedules(redis_url: str, rclient: redis.Redis) -> None:
    app = make_app(redis_url, [("* * * * * */20", "plain"), ("* * * * *", "on_high")])
    clock = FakeClock(at(STARTUP_GRACE + 1))
    seen = fire_times(app, clock, rclient)
    drive(app, clock, until=at(61))
    assert seen == [at(20), at(40), at(60), at(60)]
    assert rclient.llen(KEYS.queue("default")) == 3
    assert rclient.llen(KEYS.queue("high")) == 1


def test_sleeps_in_chunks_until_a_far_slot(redis_url: str, rclient: redis.Redis) -> None:
    app = make_app(redis_url, [("0 0 * * *", "plain")])
    clock = FakeClock(at(0))
    sleeps: list[float] = []
    clock.on_sleep = lambda _t: sleeps.append(clock.t)
    drive(app, clock, until=at(12 * 3600 + 1))
    assert rclient.llen(KEYS.queue("default")) == 1
    assert claimed_slots(rclient) == [int(at(12 * 3600))]
    assert max(b - a for a, b in itertools.pairwise(sleeps)) <= 10


# ---- what gets enqueued -----------------------------------------------------------------------------------------


def test_queue_resolution_and_payloads(redis_url: str, rclient: redis.Redis) -> None:
    app = make_app(
        redis_url,
        [
            CronTask("* * * * *", "on_high"),
            CronTask("* * * * *", "on_high", queue="med"),
            ("* * * * *", "plain"),
            ("* * * * *", "plain", [1, "two", [3]], {"k": {"v": None}}),
        ],
    )
    assert [resolve_queue(app, c).name for c in app.schedules] == ["high", "med", "default", "default"]
    drive(app, FakeClock(at(59)), until=at(61))
    assert rclient.lrange(KEYS.queue("high"), 0, -1) == [encode_task("on_high", [], {}, 0)]
    assert rclient.lrange(KEYS.queue("med"), 0, -1) == [encode_task("on_high", [], {}, 0)]
    default = [decode_task(e) for e in rclient.lrange(KEYS.queue("default"), 0, -1)]  # type: ignore[arg-type]
    assert default == [("plain", [], {}, 0), ("plain", [1, "two", [3]], {"k": {"v": None}}, 0)]
    for queue in ("high", "med", "default"):
        assert rclient.lrange(KEYS.bell(queue), 0, -1) == [b"1"]  # a worker's doorbell, one token


def test_schedule_ids_differ_per_schedule_and_are_stable(redis_url: str) -> None:
    schedules: list[Any] = [
        ("* * * * *", "plain"),
        ("*/5 * * * *", "plain"),
        ("* * * * *", "plain", [1]),
        ("* * * * *", "plain", [], {"a": 1}),
        CronTask("* * * * *", "plain", queue="med"),
    ]
    ids = [e.id for e in build_entries(make_app(redis_url, schedules))]
    assert len(set(ids)) == len(ids)
    assert ids == [e.id for e in build_entries(make_app(redis_url, schedules))]


def test_claim_ttl_covers_the_slot(redis_url: str, rclient: redis.Redis) -> None:
    app = make_app(redis_url, [("*/10 * * * *", "plain"), ("* * * * * *", "on_high")])
    every_ten, every_second = build_entries(app)
    assert every_ten.claim_ttl(int(at(0))) == 1200
    assert every_second.claim_ttl(int(at(0))) == 60
    assert every_ten.late_limit(int(at(0))) == at(600)
    drive(app, FakeClock(at(599.5)), until=at(600.5))
    ttls = {key: int(rclient.ttl(key)) for key in scan_keys(rclient, f"{KEYS.namespace}:sched:*")}
    assert ttls[KEYS.schedule_slot(every_ten.id, int(at(600))).encode()] > 1190
    assert ttls[KEYS.schedule_slot(every_second.id, int(at(600))).encode()] > 50


# ---- restarts and several schedulers ----------------------------------------------------------------------------


def test_restart_within_the_slot_does_not_fire_again(
    redis_url: str, rclient: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wakaq.scheduler")
    app = make_app(redis_url, [("* * * * *", "plain")])
    drive(app, FakeClock(at(59.5)), until=at(60.5), ident="first")
    assert rclient.llen(KEYS.queue("default")) == 1
    assert rclient.get(KEYS.schedule_slot(build_entries(app)[0].id, int(at(60)))) == b"first"
    # a new scheduler process starting 1 s into the slot tries it (STARTUP_GRACE) and loses the claim
    drive(app, FakeClock(at(61)), until=at(90), ident="second")
    assert rclient.llen(KEYS.queue("default")) == 1
    assert any("already fired by another scheduler" in r.getMessage() for r in caplog.records)
    drive(app, FakeClock(at(61)), until=at(120.5), ident="third")
    assert rclient.llen(KEYS.queue("default")) == 2


def test_start_fires_a_just_due_slot_but_does_not_replay_older_ones(redis_url: str, rclient: redis.Redis) -> None:
    app = make_app(redis_url, [("* * * * *", "plain")])
    drive(app, FakeClock(at(60 + STARTUP_GRACE + 1)), until=at(119))
    assert rclient.llen(KEYS.queue("default")) == 0
    drive(app, FakeClock(at(121)), until=at(122))
    assert claimed_slots(rclient) == [int(at(120))]


def test_paused_scheduler_fires_only_the_latest_due_slot(
    redis_url: str, rclient: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(redis_url, [("* * * * *", "plain")])
    clock = FakeClock(at(59))
    clock.actions.append((at(60), lambda: setattr(clock, "t", at(200))))  # e.g. the VM was suspended
    drive(app, clock, until=at(241))
    assert claimed_slots(rclient) == [int(at(180)), int(at(240))]
    assert any("not replaying missed slot" in r.getMessage() for r in caplog.records)


def test_three_schedulers_fire_each_slot_exactly_once(rclient: redis.Redis, start_scheduler: StartScheduler) -> None:
    procs = [start_scheduler(SCHED_APP, cron="* * * * * *") for _ in range(3)]
    wait_until(lambda: all(p.alive() and "started" in p.text() for p in procs), 20, what="three schedulers")
    first = math.ceil(time.time()) + 1
    wait_until(lambda: len([s for s in claimed_slots(rclient) if s >= first]) >= 4, 20, what="four slots")
    assert [p.stop() for p in procs] == [0, 0, 0]
    logs = [p.text() for p in procs]
    fired = [int(slot) for log in logs for slot in FIRED.findall(log)]
    slots = claimed_slots(rclient)
    assert sorted(fired) == slots  # each claimed slot was fired by exactly one scheduler
    assert rclient.llen(KEYS.queue("high")) == len(slots)
    assert sum(log.count("already fired by another scheduler") for log in logs) >= 4
    assert all("stopped" in log for log in logs)


def test_outage_logs_once_and_fires_slots_due_after_recovery(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG, logger="wakaq.scheduler")
    port = free_port()
    server = RedisServer(port=port, dir=str(tmp_path)).start()
    try:
        app = make_app(server.url, [("* * * * *", "plain")])
        clock = FakeClock(at(59))
        clock.actions = [
            (at(90), server.stop),  # down during slot 120, back 20 s later: 120 fires late
            (at(140), server.start),
            (at(210), server.stop),  # down across 240 and 300, back at 310: only 300 fires
            (at(310), server.start),
        ]
        drive(app, clock, until=at(361))
    finally:
        server.stop()
    assert fired_slots(caplog.records) == [int(at(s)) for s in (60, 120, 180, 300, 360)]
    warnings = [r.levelno for r in caplog.records if "unreachable" in r.getMessage()]
    assert warnings == [logging.WARNING, logging.WARNING]  # once per outage
    recovered = [r.levelno for r in caplog.records if "reachable again" in r.getMessage()]
    assert recovered == [logging.INFO, logging.INFO]
    assert any("s late)" in r.getMessage() for r in caplog.records)


# ---- startup errors and --list ----------------------------------------------------------------------------------


def test_startup_errors_name_the_culprit(redis_url: str) -> None:
    with pytest.raises(WakaQError, match="'no_such_task'"):
        Scheduler(make_app(redis_url, [("*/5 * * * *", "no_such_task")]))
    with pytest.raises(WakaQError, match="no schedules"):
        Scheduler(make_app(redis_url, []))
    with pytest.raises(WakaQError, match=r"'0 0 30 2 \*'.*never fires"):
        Scheduler(make_app(redis_url, [("0 0 30 2 *", "plain")]))
    with pytest.raises(WakaQError, match="'plain'"):
        Scheduler(make_app(redis_url, [("* * * * *", "plain", [object()])]))
    with pytest.raises(WakaQError, match="'61 \\* \\* \\* \\*'"):
        make_app(redis_url, [("61 * * * *", "plain")])
    with pytest.raises(WakaQError, match="'nope'"):
        make_app(redis_url, [CronTask("* * * * *", "plain", queue="nope")])


def wakaq_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wakaq", "scheduler", *args],
        cwd=ROOT,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("tests.apps.sched_app.unknown_task", "unknown task 'no_such_task'"),
        ("tests.apps.sched_app.no_schedules", "no schedules"),
        ("tests.apps.sched_bad_cron_app.app", "invalid cron '61 * * * *'"),
    ],
)
def test_cli_startup_errors_exit_at_once(redis_url: str, app: str, message: str) -> None:
    result = wakaq_cli("--app", app)
    assert result.returncode == EXIT_USAGE
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("wakaq-scheduler: error: "), result.stderr
    assert message in lines[0]


def test_list_prints_next_three_fire_times(redis_url: str) -> None:
    app = make_app(redis_url, [("*/10 * * * *", "plain"), CronTask("0 9 * * 1-5", "on_high", args=[1])])
    out = io.StringIO()
    list_schedules(app, out, now=datetime.fromtimestamp(at(5 * 60), timezone.utc))
    lines = out.getvalue().splitlines()
    assert len(lines) == 8
    assert lines[0].startswith("'*/10 * * * *' plain on queue default (id ")
    assert lines[1:4] == ["    2024-01-01 12:10:00 UTC", "    2024-01-01 12:20:00 UTC", "    2024-01-01 12:30:00 UTC"]
    assert lines[4].startswith("'0 9 * * 1-5' on_high on queue high args=[1] (id ")
    assert lines[5:] == ["    2024-01-02 09:00:00 UTC", "    2024-01-03 09:00:00 UTC", "    2024-01-04 09:00:00 UTC"]


def test_cli_list_works_without_redis() -> None:
    result = wakaq_cli("--app", "tests.apps.sched_app.app", "--list", WAKAQ_TEST_URL=f"redis://127.0.0.1:{free_port()}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("'* * * * *' tick on queue high args=[1] kwargs={'label': 'cron'}")
    assert len(lines) == 4 and all(line.endswith(":00 UTC") for line in lines[1:])


def test_sigint_stops_with_exit_0(start_scheduler: StartScheduler) -> None:
    scheduler = start_scheduler(SCHED_APP, cron="0 0 1 1 *")
    wait_until(lambda: scheduler.alive() and "started" in scheduler.text(), 20, what="scheduler start")
    scheduler.signal(signal.SIGINT)
    assert scheduler.wait_exit(10) == 0
    assert "received SIGINT" in scheduler.text()


# ---- end to end -------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_worker_runs_a_minutely_task_within_two_seconds(
    rclient: redis.Redis, start_worker: StartWorker, start_scheduler: StartScheduler
) -> None:
    worker = start_worker(SCHED_APP)
    scheduler = start_scheduler(SCHED_APP, cron="* * * * *")
    procs = [worker, scheduler]
    wait_until(lambda: scheduler.alive() and "started" in scheduler.text(), 20, what="scheduler start")
    boundary = math.ceil(time.time() / 60) * 60

    def ran_after_boundary() -> dict[str, Any]:
        found = [json.loads(raw) for raw in rclient.lrange("events", 0, -1)]
        return next((e for e in found if e["t"] >= boundary), {})

    try:
        event = wait_until(ran_after_boundary, boundary - time.time() + 15, what="the scheduled task to run")
    except AssertionError as e:
        raise AssertionError(f"{e}\n" + "\n".join(p.text()[-3000:] for p in procs)) from None
    assert event["t"] - boundary <= 2.0, event
    assert (event["n"], event["label"]) == (1, "cron")
    assert boundary in claimed_slots(rclient)
    assert [scheduler.stop(30), worker.stop(30)] == [0, 0]
