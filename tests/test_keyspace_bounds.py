"""Keys that must not grow with every daemon run or every garbage payload (issue 19, defect 11): failed broadcasts
(dead-listed by the parent: a broadcast that kills its child) go to one failed list (the pseudo queue "broadcast"),
not one per daemon run; `stats:retired` counts tasks with garbage names under "?". Real redis-server, real
`wakaq-worker` daemons (tests/apps/parked_app.py)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import msgpack
import pytest

from tests.keyspace import KEYS, lua_script, scan_keys
from tests.workers import StartWorker, wait_until
from wakaq import _wakaq
from wakaq.admin import inspect
from wakaq.constants import STATS_SEP
from wakaq.keys import Keys

pytestmark = [pytest.mark.timeout(90), pytest.mark.app("tests.apps.parked_app")]

GHOST = "ghost:1:dead"


def test_failed_broadcasts_of_every_daemon_run_share_one_list(
    app: ModuleType, start_worker: StartWorker, rclient: Any
) -> None:
    for run in (1, 2):
        worker = start_worker(name=f"run{run}")
        try:
            wait_until(lambda: rclient.scard(KEYS.daemons) == 1, what="the daemon registered")
            assert app.wakaq.tasks["crash"].broadcast() == 1
            wait_until(lambda: rclient.llen(KEYS.broadcast_failed) == run, timeout=30, what="the dead-listing")  # noqa: B023
        finally:
            worker.stop()
    assert scan_keys(rclient, f"{KEYS.namespace}:failed:bcast:*") == []
    assert inspect(app.wakaq, rclient)["failed_broadcasts"] == 2


@pytest.mark.parametrize("cluster", [False, True])
def test_one_failed_list_for_broadcasts_in_rust_and_python(cluster: bool) -> None:
    keys = Keys("app", cluster)
    assert _wakaq.key_layout("app", cluster)["broadcast_failed"] == keys.broadcast_failed
    assert keys.broadcast_failed == f"{keys.namespace}:failed:broadcast"


def _dead_entry(name: str) -> bytes:
    """An in-flight entry of queue default delivered twice already: the reap of its daemon dead-lists it."""
    return b"default\n\xc1\x02" + msgpack.packb({"name": name, "args": [], "kwargs": {}, "retry": 0})


def _dead_list(rclient: Any, names: list[str]) -> dict[str, int]:
    """Dead-list tasks of these names as a parent does when a child died on each of them a third time (requeue.lua,
    the delivery counted); the retired "dead" counters of queue default, by task name.

    NOTE: a reap no longer dead-lists (it counts no delivery: issue 19, defect 3), so the child-death path it is."""
    script = lua_script("requeue.lua")
    inflight = KEYS.inflight(GHOST)
    rclient.hset(inflight, mapping={f"1:{i}": _dead_entry(n) for i, n in enumerate(names, 1)})
    keys = [inflight, KEYS.stats_retired, KEYS.queue("default"), KEYS.bell("default"), KEYS.failed("default")]
    rclient.eval(script, len(keys), *keys, 1, "1:", "*", 3, "w", 10_000, "poison", "", "default", 0)
    assert rclient.llen(KEYS.failed("default")) == len(names)
    prefix = f"dead{STATS_SEP}default{STATS_SEP}"
    found = {k.decode(errors="replace"): int(v) for k, v in rclient.hgetall(KEYS.stats_retired).items()}
    return {k[len(prefix) :]: v for k, v in found.items() if k.startswith(prefix)}


def test_garbage_task_names_are_counted_under_one_name(rclient: Any) -> None:
    garbage = [f"junk {i}\x00\x07" for i in range(40)] + ["x" * 300, "", "a\nb"]
    assert _dead_list(rclient, [*garbage, "send", "tests.apps.mod.send_v2"]) == {
        "?": len(garbage),
        "send": 1,
        "tests.apps.mod.send_v2": 1,
    }


def test_new_task_names_stop_adding_fields_past_the_cap(rclient: Any) -> None:
    rclient.hset(KEYS.stats_retired, mapping={f"filler{i}": 1 for i in range(20_000)})
    assert _dead_list(rclient, [f"name{i}" for i in range(30)]) == {"?": 30}
