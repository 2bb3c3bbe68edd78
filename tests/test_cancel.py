"""Cancel (`app.cancel`, `app.cancel_task`, `wakaq-cancel`): pending, parked and eta tasks removed and recorded,
running ones left alone or interrupted on request, against a real Redis and real `wakaq-worker` processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

from tests.keyspace import CLUSTER, KEYS
from tests.workers import StartWorker, events, wait_until
from wakaq._wakaq import encode_task, unpackb
from wakaq.cancel import CHUNK, Outcome, cancel, cancel_task, derived_id, list_tasks, task_id
from wakaq.constants import CANCELLED_REASON
from wakaq.ids import new_id

pytestmark = [pytest.mark.timeout(90), pytest.mark.app("tests.apps.cancel_app")]

APP = "tests.apps.cancel_app.wakaq"
ROOT = Path(__file__).resolve().parent.parent


def failed(rclient: Any, queue: str = "low") -> list[dict[str, Any]]:
    return [unpackb(raw) for raw in rclient.lrange(KEYS.failed(queue), 0, -1)]


def tags(rclient: Any, task: str) -> list[str]:
    return [e["tag"] for e in events(rclient, task)]


def pending_names(rclient: Any, queue: str = "low") -> list[str]:
    return [unpackb(raw)["name"] for raw in rclient.lrange(KEYS.queue(queue), 0, -1)]


def running_entry(app: ModuleType, rclient: Any, name: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        running = [t for t in list_tasks(app.wakaq, rclient, name=name) if t["state"] == "running"]
        return running[0] if running else None

    return wait_until(found, what=f"{name} in flight")


# ---- pending and eta, no worker ---------------------------------------------------------------------------------


def test_cancel_pending_by_derived_and_meta_id(app: ModuleType, rclient: Any) -> None:
    broker = app.wakaq.broker
    app.note.delay("a")
    app.note.delay("b")
    meta_id = new_id()
    broker.push("low", "note", ["m"], {}, 0, {"id": meta_id})
    plain_id = derived_id(encode_task("note", ["a"], {}, 0))
    assert task_id(encode_task("note", ["a"], {}, 0)) == plain_id and len(plain_id) == 17
    assert task_id(encode_task("note", ["a"], {}, 0, {"id": meta_id})) == meta_id
    listed = {t["id"]: t for t in list_tasks(app.wakaq, rclient)}
    assert listed[plain_id]["args"] == ["a"] and listed[plain_id]["state"] == "pending"
    assert listed[meta_id]["args"] == ["m"]

    assert app.wakaq.cancel(plain_id) == Outcome.CANCELLED == "cancelled"
    assert app.wakaq.cancel(plain_id) == Outcome.NOT_FOUND
    assert app.wakaq.cancel(meta_id) is Outcome.CANCELLED
    assert [unpackb(raw)["args"] for raw in rclient.lrange(KEYS.queue("low"), 0, -1)] == [["b"]]
    records = failed(rclient)
    assert [(r["reason"], r["worker"], r["queue"]) for r in records] == [(CANCELLED_REASON, "admin", "low")] * 2
    assert [unpackb(r["payload"])["args"] for r in records] == [["m"], ["a"]]


def test_cancel_a_redelivered_element_and_one_of_equal_payloads(app: ModuleType, rclient: Any) -> None:
    payload = encode_task("note", ["same"], {}, 0)
    rclient.rpush(KEYS.queue("low"), b"\xc1\x02" + payload, payload)
    assert app.wakaq.cancel(derived_id(payload)) == Outcome.CANCELLED
    assert rclient.lrange(KEYS.queue("low"), 0, -1) == [payload]
    (record,) = failed(rclient)
    assert record["payload"] == payload and record["deliveries"] == 2
    assert app.wakaq.cancel(derived_id(payload)) == Outcome.CANCELLED
    assert rclient.llen(KEYS.queue("low")) == 0
    assert app.wakaq.cancel(derived_id(payload)) == Outcome.NOT_FOUND


def test_cancel_an_eta_task(app: ModuleType, rclient: Any) -> None:
    app.note.delay("later", eta=3600)
    (listed,) = list_tasks(app.wakaq, rclient)
    assert listed["state"] == "eta" and listed["eta"].startswith("20")
    assert app.wakaq.cancel(listed["id"]) == Outcome.CANCELLED
    assert rclient.zcard(KEYS.eta("low")) == 0
    assert [r["reason"] for r in failed(rclient)] == [CANCELLED_REASON]


def test_cancel_task_by_name_counts_exactly_across_windows(
    app: ModuleType, rclient: Any, start_worker: StartWorker
) -> None:
    elements = []
    for i in range(1500):
        elements.append(encode_task("note" if i % 5 else "other", [str(i)], {}, 0))
    rclient.rpush(KEYS.queue("low"), *elements)  # 1200 notes and 300 others, interleaved: three LRANGE windows
    for i in range(3):
        app.note.delay(f"eta{i}", eta=3600)
    app.other.delay("eta-other", eta=3600)
    assert app.wakaq.cancel_task("note") == 1203
    assert app.wakaq.cancel_task("note") == 0
    assert pending_names(rclient) == ["other"] * 300
    assert [unpackb(m)["name"] for m in rclient.zrange(KEYS.eta("low"), 0, -1)] == ["other"]
    assert rclient.llen(KEYS.failed("low")) == 1203
    worker = start_worker()
    try:
        wait_until(lambda: len(events(rclient, "other")) == 300, 30, what="the other tasks")
    finally:
        worker.stop()
    assert events(rclient, "note") == []


class CountingReads:
    """The real redis-py client, with the range reads it is asked for recorded."""

    def __init__(self, client: Any) -> None:
        self.client, self.reads = client, []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if name not in ("lrange", "zrange"):
            return attr

        def read(*args: Any, **kwargs: Any) -> Any:
            self.reads.append((name, args[0], args[1], args[2]))
            return attr(*args, **kwargs)

        return read


def test_reads_are_bounded_windows_and_a_listing_stops_at_its_limit(app: ModuleType, rclient: Any) -> None:
    rclient.rpush(KEYS.queue("low"), *(encode_task("note", [str(i)], {}, 0) for i in range(2000)))
    counting = CountingReads(rclient)
    assert [t["args"] for t in list_tasks(app.wakaq, counting, limit=3)] == [["0"], ["1"], ["2"]]
    high, low = KEYS.queue("high"), KEYS.queue("low")
    assert counting.reads == [("lrange", high, 0, 499), ("zrange", KEYS.eta("high"), 0, 499), ("lrange", low, 0, 499)]
    counting.reads.clear()
    assert cancel_task(app.wakaq, "note", r=counting) == 2000
    assert counting.reads and all(stop - start + 1 == CHUNK for _, _, start, stop in counting.reads)
    assert rclient.llen(KEYS.queue("low")) == 0
    assert rclient.llen(KEYS.failed("low")) == 2000


# ---- running tasks ----------------------------------------------------------------------------------------------


def test_a_running_task_is_left_alone_without_terminate(
    app: ModuleType, rclient: Any, start_worker: StartWorker
) -> None:
    worker = start_worker()
    try:
        app.busy.delay(1.0, "r")
        wait_until(lambda: tags(rclient, "busy-start") == ["r"], what="busy started")
        entry = running_entry(app, rclient, "busy")
        assert entry["id"] == derived_id(encode_task("busy", [1.0, "r"], {}, 0))
        assert app.wakaq.cancel(entry["id"]) == Outcome.RUNNING
        wait_until(lambda: tags(rclient, "busy-end") == ["r"], what="busy finished")
    finally:
        worker.stop()
    assert failed(rclient) == [] and tags(rclient, "busy-cancelled") == []


@pytest.mark.parametrize("task", ["busy", "async_busy"])
def test_terminate_a_running_task(
    app: ModuleType, rclient: Any, start_worker: StartWorker, task: str, start_method: str
) -> None:
    worker = start_worker()
    try:
        (pid,) = worker.children()
        task_id = new_id()
        app.wakaq.broker.push("low", task, [60.0, "t"], {}, 0, {"id": task_id})
        started = "busy-start" if task == "busy" else "async-start"
        wait_until(lambda: tags(rclient, started) == ["t"], 30, what=f"{task} started")
        assert app.wakaq.cancel(task_id, terminate=True) == Outcome.TERMINATING
        wait_until(lambda: failed(rclient), 10, what="the failure record")
        app.note.delay("next")
        wait_until(lambda: tags(rclient, "note") == ["next"], what="the next task")
        assert [e["pid"] for e in events(rclient, "note")] == [pid] == worker.children()
        cancelled = "busy-cancelled" if task == "busy" else "async-cancelled"
        assert tags(rclient, cancelled) == ["t"]
        (record,) = failed(rclient)
        assert record["reason"] == CANCELLED_REASON and unpackb(record["payload"])["meta"] == {"id": task_id}
        assert "TaskCancelled" in record["traceback"] or "CancelledError" in record["traceback"]
        assert app.wakaq.cancel(task_id, terminate=True) == Outcome.NOT_FOUND
        (daemon,) = [d.decode() for d in rclient.smembers(KEYS.daemons)]
        field = f"cancelled\x1flow\x1f{task}"
        wait_until(lambda: rclient.hget(KEYS.stats(daemon), field) == b"1", 10, what="the cancelled counter")
        assert rclient.llen(KEYS.queue("low")) == 0
    finally:
        worker.stop()
    assert tags(rclient, "busy-end") == tags(rclient, "async-end") == []


def test_a_stale_or_foreign_terminate_is_harmless(app: ModuleType, rclient: Any, start_worker: StartWorker) -> None:
    worker = start_worker()
    try:
        (pid,) = worker.children()
        app.busy.delay(0.5, "first")
        entry = running_entry(app, rclient, "busy")
        wait_until(lambda: tags(rclient, "busy-end") == ["first"], what="the first task")
        daemon, seq = entry["daemon"], entry["seq"]
        app.busy.delay(1.0, "second")
        wait_until(lambda: tags(rclient, "busy-start") == ["first", "second"], what="the second task")
        channel = KEYS.control_channel
        for message in [f"cancel {daemon} {pid} {seq}", f"cancel other {pid} 999", f"cancel {daemon} 1 1", "junk"]:
            rclient.publish(channel, message)
        wait_until(lambda: "cancel of task 1: child 1 is not running here" in worker.log_text(), what="log line")
        wait_until(lambda: tags(rclient, "busy-end") == ["first", "second"], what="the second task finishing")
        # NOTE: and while the child is idle (blocked on the doorbells): the SIGUSR2 interrupts that wait only
        rclient.publish(channel, f"cancel {daemon} {pid} {seq}")
        wait_until(lambda: worker.log_text().count(f"cancel of task {seq} requested") == 2, what="the second request")
        app.note.delay("after")
        wait_until(lambda: tags(rclient, "note") == ["after"], what="a task after the idle signal")
        assert worker.children() == [pid]
    finally:
        worker.stop()
    assert failed(rclient) == []
    assert f"cancel of task {seq} requested" in worker.log_text()


# ---- the command line -------------------------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wakaq", "cancel", "--app", APP, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cli_json(*args: str, code: int = 0) -> Any:
    result = cli(*args)
    assert result.returncode == code, result.stderr
    return json.loads(result.stdout)


def test_cli_lists_cancels_by_id_and_by_name(app: ModuleType, rclient: Any) -> None:
    for i in range(3):
        app.note.delay(f"n{i}")
    app.other.delay("o")
    app.note.delay("later", eta=3600)
    listed = cli_json("list", "--task", "note", "--limit", "2")
    assert [(t["name"], t["args"]) for t in listed] == [("note", ["n0"]), ("note", ["n1"])]
    assert cli_json("list", "--queue", "high") == []
    assert cli_json(listed[0]["id"]) == {"id": listed[0]["id"], "result": "cancelled"}
    assert cli_json(listed[0]["id"], code=1) == {"id": listed[0]["id"], "result": "not found"}
    assert cli_json("--task", "note") == {"task": "note", "cancelled": 3}
    assert pending_names(rclient) == ["other"] and rclient.zcard(KEYS.eta("low")) == 0
    assert len(failed(rclient)) == 4
    result = cli()
    assert result.returncode == 2 and "give a task id, `list`, or --task NAME" in result.stderr
    result = cli("list", "--queue", "nope")
    assert result.returncode == 2 and "unknown queue 'nope'" in result.stderr
    script = Path(sys.executable).parent / "wakaq-cancel"
    installed = subprocess.run(
        [str(script), "--app", APP, "list"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert installed.returncode == 0 and json.loads(installed.stdout)[0]["name"] == "other", installed.stderr


def test_cancel_reaches_a_worker_through_the_cli(
    app: ModuleType, rclient: redis.Redis, start_worker: StartWorker
) -> None:
    worker = start_worker()
    try:
        app.busy.delay(60.0, "cli")
        wait_until(lambda: tags(rclient, "busy-start") == ["cli"], what="busy started")
        entry = running_entry(app, rclient, "busy")
        assert cli_json(entry["id"]) == {"id": entry["id"], "result": "running"}
        assert cli_json(entry["id"], "--terminate") == {"id": entry["id"], "result": "terminating"}
        wait_until(lambda: tags(rclient, "busy-cancelled") == ["cli"], what="the task interrupted")
    finally:
        worker.stop()


# ---- a task that moves while cancel reads (issue 19, defect 6) ---------------------------------------------------


class _RetryLands(redis.Redis):
    """The admin's client. At one exact point of `cancel`'s reads (`when`), the task's attempt ends in a retry: the
    in-flight entry goes to the eta set in one MULTI, as finish.lua moves it, so the reads see the real race order."""

    def __init__(self, url: str, when: str, inflight: str, field: str, eta: str, member: bytes) -> None:
        super().__init__(connection_pool=redis.ConnectionPool.from_url(url))
        self.when, self.move = when, (inflight, field, eta, member)

    def _land(self) -> None:
        inflight, field, eta, member = self.move
        with self.pipeline(transaction=True) as p:
            p.hdel(inflight, field).zadd(eta, {member: 4102444800}).execute()
        self.when = ""

    def hscan_iter(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if self.when == "before the in-flight read":
            self._land()
        return super().hscan_iter(*args, **kwargs)

    def publish(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        reply = super().publish(*args, **kwargs)
        if self.when == "after the terminate request":
            self._land()
        return reply


@pytest.mark.skipif(CLUSTER, reason="the race is driven through a single-node client (the scripts are the same)")
@pytest.mark.parametrize("when", ["before the in-flight read", "after the terminate request"])
def test_cancel_finds_an_attempt_that_just_moved_to_the_eta_set_as_a_retry(
    app: ModuleType, rclient: Any, redis_url: str, when: str
) -> None:
    """Failed before the fix: `cancel(terminate=True)` read the queues, then the in-flight hashes, once each. An
    attempt that ended in a retry between the two reads answered NOT_FOUND; one that ended just after the terminate
    request answered TERMINATING while the retry waited in the eta set to run again. Either way nothing was
    cancelled."""
    task = new_id()
    payload = encode_task("note", ["r"], {}, 1, {"id": task})
    daemon, field = "host:1:aa", "4242:7"
    rclient.sadd(KEYS.daemons, daemon)
    rclient.hset(KEYS.inflight(daemon), field, b"low\n" + payload)
    client = _RetryLands(redis_url, when, KEYS.inflight(daemon), field, KEYS.eta("low"), payload)
    try:
        outcome = cancel(app.wakaq, task, terminate=True, r=client)
    finally:
        client.close()
    assert outcome == Outcome.CANCELLED, outcome
    assert rclient.zcard(KEYS.eta("low")) == 0
    assert [(r["reason"], unpackb(r["payload"])["args"]) for r in failed(rclient)] == [(CANCELLED_REASON, ["r"])]


def test_terminate_a_task_claimed_in_a_batch_but_not_started(
    app: ModuleType, rclient: Any, start_worker: StartWorker
) -> None:
    """Defect 6, the batch case: a sync task claimed in a batch behind a slow one is in its daemon's in-flight hash
    but not started. `cancel(terminate=True)` must end it cancelled: not run later here, not handed back to its
    queue to run elsewhere."""
    worker = start_worker()
    try:
        # NOTE: async tasks first: they start at once, so the child's claims grow to batches (1, 2, 4, ... 32),
        # and the next batch takes the last of them, busy and the target together
        target = new_id()
        warm = [("low", "async_busy", [0.0, "w"], {}) for _ in range(64)]
        app.wakaq.broker.push_many([*warm, ("low", "busy", [1.5, "b"], {}), ("low", "note", ["t"], {}, {"id": target})])
        wait_until(lambda: tags(rclient, "busy-start") == ["b"], what="busy started")
        states = {t["id"]: t["state"] for t in list_tasks(app.wakaq, rclient)}
        assert states.get(target) == "running", f"claimed in busy's batch, not started: {states}"
        assert app.wakaq.cancel(target, terminate=True) == Outcome.TERMINATING
        wait_until(lambda: tags(rclient, "busy-end") == ["b"], what="busy finished")
        wait_until(lambda: [r["reason"] for r in failed(rclient)] == [CANCELLED_REASON], what="the record")
    finally:
        worker.stop()
    assert "t" not in tags(rclient, "note")
    (record,) = failed(rclient)
    assert unpackb(record["payload"])["meta"] == {"id": target}
    assert rclient.llen(KEYS.queue("low")) == 0
