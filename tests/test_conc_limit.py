"""Per-key concurrency (issue 22 item 5): `@app.task(concurrency_key=..., concurrency_limit=N)` runs at most N per
key across every daemon, never holds up other keys, and a crashed holder's permit comes back with its task. Real
redis-server, real `wakaq-worker` daemons (tests/apps/conc_app.py counts every run's overlap in Redis)."""

from __future__ import annotations

import os
import signal
from types import ModuleType
from typing import Any

import msgpack
import pytest

from tests.workers import StartWorker, wait_until
from wakaq import WakaQ
from wakaq.conclimit import MAX_KEY_BYTES
from wakaq.exceptions import WakaQError

pytestmark = [pytest.mark.timeout(180), pytest.mark.app("tests.apps.conc_app")]


def ends(rclient: Any) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in rclient.hgetall("ends").items()}


def runs(rclient: Any) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in rclient.hgetall("runs").items()}


def peak(rclient: Any, key: str) -> int:
    return int(rclient.get(f"peak:{key}") or 0)


def conc_state(app: ModuleType, rclient: Any, task: str, keys: list[str]) -> list[int]:
    """Sizes of the permit hashes, waiter lists and the registry: all 0 once everything ran."""
    k = app.wakaq.keys
    sizes = [rclient.hlen(k.conc(task, key)) for key in keys]
    sizes += [rclient.llen(k.conc_wait(task, key)) for key in keys]
    return [*sizes, rclient.scard(k.conc_registry)]


# ---- the producer ------------------------------------------------------------------------------------------------


def test_the_key_travels_in_meta(app: ModuleType, rclient: Any) -> None:
    app.keyed.delay("acme", 1)
    app.keyed.delay_many([(("globex", 2), {}), (("initech",), {"i": 3})])
    app.held.delay("x", 4)
    app.plain.delay(5)
    sent = [msgpack.unpackb(raw) for raw in rclient.lrange(app.wakaq.keys.queue("default"), 0, -1)]
    assert [p.get("meta") for p in sent] == [{"ck": "acme"}, {"ck": "globex"}, {"ck": "initech"}, {"ck": "h-x"}, None]


def test_bad_options_and_keys_are_refused(app: ModuleType) -> None:
    w = WakaQ(queues=["default"], url=app.wakaq.url)

    def f(customer: str) -> None: ...

    with pytest.raises(WakaQError, match="go together"):
        w.task(concurrency_key="customer")(f)
    with pytest.raises(WakaQError, match="not one of its parameters"):
        w.task(concurrency_key="nope", concurrency_limit=1)(f)
    with pytest.raises(WakaQError, match="must be an int from 1"):
        w.task(concurrency_key="customer", concurrency_limit=0)(f)
    t = w.task(concurrency_key=lambda customer: customer, concurrency_limit=2)(f)
    assert t.concurrency is not None
    assert t.concurrency.key_of((7,), {}) == "7"
    assert t.concurrency.key_of((None,), {}) is None, "None: not limited"
    with pytest.raises(WakaQError, match="must be a str, an int or None, got float"):
        t.concurrency.key_of((1.5,), {})
    with pytest.raises(WakaQError, match=f"1 to {MAX_KEY_BYTES} bytes"):
        t.concurrency.key_of(("k" * (MAX_KEY_BYTES + 1),), {})


def test_eager_mode_runs_inline(app: ModuleType, rclient: Any) -> None:
    app.wakaq.eager = True
    try:
        assert app.keyed.delay("acme", 1, 0.0) is None
    finally:
        app.wakaq.eager = False
    assert ends(rclient) == {"acme:1": 1}


# ---- real daemons ------------------------------------------------------------------------------------------------


def test_at_most_the_limit_per_key_over_four_daemons(app: ModuleType, rclient: Any, start_worker: StartWorker) -> None:
    """4 daemons x 4 children, limit 2: 16 children could run 16 of a key; never more than 2 do, every task runs
    exactly once, and the permits, waiters and registry end empty."""
    customers = ["acme", "globex", "initech"]
    calls = [((c, i), {}) for i in range(25) for c in customers]
    assert app.keyed.delay_many(calls) == 75
    for n in range(4):
        start_worker(concurrency=4, wait=n == 3)
    wait_until(lambda: len(ends(rclient)) == 75, 120, what="75 tasks")
    assert runs(rclient) == {f"{c}:{i}": 1 for (c, i), _ in calls}
    assert ends(rclient) == {f"{c}:{i}": 1 for (c, i), _ in calls}
    assert {c: peak(rclient, c) for c in customers} == dict.fromkeys(customers, 2)
    pids = {c: {int(p) for p in rclient.lrange(f"pids:{c}", 0, -1)} for c in customers}
    assert all(len(p) > 2 for p in pids.values()), f"a key ran on several children: {pids}"
    wait_until(lambda: conc_state(app, rclient, "keyed", customers) == [0] * 7, 10, what="no permit left")


def test_a_full_key_does_not_hold_up_other_keys(app: ModuleType, rclient: Any, start_worker: StartWorker) -> None:
    """12 long tasks of one key sit in front of 6 short tasks of others: with the key full (2 running), the others
    run at once on the free children, long before the full key's backlog drains."""
    app.keyed.delay_many([(("busy", i, 1.0), {}) for i in range(12)])
    app.keyed.delay_many([((f"other{i % 3}", i, 0.0), {}) for i in range(6)])
    app.plain.delay(0)
    start_worker(concurrency=4)
    wait_until(lambda: sum(1 for k in ends(rclient) if not k.startswith("busy")) == 7, 15, what="the other keys")
    busy_done = sum(1 for k in ends(rclient) if k.startswith("busy"))
    assert busy_done <= 4, f"other keys waited for the full key: {busy_done} busy tasks had finished"
    assert peak(rclient, "busy") == 2
    wait_until(lambda: len(ends(rclient)) == 19, 30, what="all 19 tasks")
    want = {**{f"busy:{i}": 1 for i in range(12)}, **{f"other{i % 3}:{i}": 1 for i in range(6)}}
    assert runs(rclient) == want
    assert ends(rclient) == {**want, "plain:0": 1}
    wait_until(lambda: conc_state(app, rclient, "keyed", ["busy"]) == [0, 0, 0], 10, what="no permit left")


def test_a_killed_holder_gives_its_permit_back_with_its_task(
    app: ModuleType, rclient: Any, start_worker: StartWorker
) -> None:
    """Limit 1: the child running the key's task is killed with SIGKILL. The task is redelivered, it takes the
    permit again (the dead holder's is stale), then the two waiters run; the permit hash ends empty."""
    for i in range(3):
        app.held.delay("k", i)
    start_worker(concurrency=3)
    first = wait_until(lambda: rclient.lrange("pids:h-k", 0, -1), 15, what="the first start")
    assert len(first) == 1
    k = app.wakaq.keys
    assert rclient.hlen(k.conc("held", "h-k")) == 1
    assert rclient.llen(k.conc_wait("held", "h-k")) == 2, "the other two wait parked, not in the queue"
    os.kill(int(first[0]), signal.SIGKILL)
    wait_until(lambda: rclient.llen("pids:h-k") == 2, 20, what="the killed task's redelivery")
    assert rclient.llen(k.conc_wait("held", "h-k")) == 2, "still one at a time after the kill"
    assert rclient.hlen(k.conc("held", "h-k")) == 1, "the dead holder's permit was dropped, the new one taken"
    rclient.set("go", 1)
    wait_until(lambda: len(ends(rclient)) == 3, 30, what="3 tasks")
    assert ends(rclient) == {"h-k:0": 1, "h-k:1": 1, "h-k:2": 1}
    assert runs(rclient) == {"h-k:0": 2, "h-k:1": 1, "h-k:2": 1}
    # NOTE: the killed run never counted its end: it stays "running" in the app's counter, so the peak is the
    # redelivered run plus that ghost, and every later run saw the same (never 3)
    assert peak(rclient, "h-k") == 2
    assert int(rclient.get("running:h-k")) == 1
    wait_until(lambda: conc_state(app, rclient, "held", ["h-k"]) == [0, 0, 0], 10, what="no permit left")


def test_a_malformed_key_is_recorded_failed(app: ModuleType, rclient: Any, start_worker: StartWorker) -> None:
    app.wakaq.broker.push("default", "keyed", ["acme", 1], {}, 0, {"ck": 5})
    app.wakaq.broker.push("default", "keyed", ["acme", 2], {}, 0, {"ck": ""})
    app.keyed.delay("acme", 3)
    start_worker()

    def failed() -> list[dict[str, Any]]:
        return [msgpack.unpackb(raw) for raw in rclient.lrange(app.wakaq.keys.failed("default"), 0, -1)]

    records = wait_until(lambda: len(failed()) == 2 and failed(), 15, what="2 failed records")
    reasons = sorted(r["reason"] for r in records)
    assert reasons == [
        "malformed meta: 'ck' must be 1 to 256 bytes, got 0",
        "malformed meta: 'ck' must be a str, got int",
    ]
    wait_until(lambda: ends(rclient) == {"acme:3": 1}, 15, what="the good task")
    assert runs(rclient) == {"acme:3": 1}
    wait_until(lambda: conc_state(app, rclient, "keyed", ["acme"]) == [0, 0, 0], 10, what="no permit left")
