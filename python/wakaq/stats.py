"""The one read API for observability: `snapshot(app, r)`, used by `wakaq-info`, `wakaq-info --watch`, the
Prometheus exposition (`wakaq.metrics`) and the web dashboard.

Where the numbers come from (docs/internals.md, "Counters"):
- paused queues: `<prefix>:paused` (`WakaQ.pause`), one SMEMBERS;
- queue depths: LLEN / ZCARD only (never whole lists); in-flight: HLEN of each daemon's in-flight hash (exact
  totals) and at most `INFLIGHT_SAMPLE` of its entries (HRANDFIELD) to split that total by queue: exact while a
  daemon holds that many or fewer, else the sample's shares of its exact total;
- daemons: `<prefix>:daemons` (registered), `<prefix>:hb:<id>` (alive while it exists) and
  `<prefix>:daemon:<id>` (the last published info, kept until the daemon deregisters or is reaped, so a daemon
  whose heartbeat stopped is still listed, with alive=False);
- task counters: `<prefix>:stats:<id>` (each registered daemon's totals, published with its heartbeat) plus
  `<prefix>:stats:retired` (totals of daemons that deregistered or were reaped, folded in by the same Lua script
  that removes them). Summing both keeps every counter monotonic across daemon restarts. A daemon's `tasks_done`
  and `tasks_failed` are the sums of its own stats hash, so the daemon rows, the queue counters, `/metrics` and
  the dashboard all come from this one set of counters (sync and async tasks alike).
- `failed` counts tasks recorded failed by a daemon (exception, hard timeout, dead, undecodable); `cancelled`
  counts tasks an admin interrupted while they ran, apart. The failed lists (`failed_tasks`) hold the records of
  both, plus tasks cancelled before they ran (never counted by a daemon).

Two pipelined round trips, whatever the number of failed or eta tasks stored.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from wakaq.constants import RUNTIME_BUCKETS, STATS_FAILED_KINDS, STATS_SEP
from wakaq.ratelimit import parked_lists

if TYPE_CHECKING:
    import redis

    from wakaq.app import WakaQ

#: Counter names inside a (queue, task) cell, as stored in the stats hashes (integers).
SCALARS = ("started", "done", "retried", *STATS_FAILED_KINDS)
#: The failure kinds counted as `failed`; `cancelled` is counted apart (an admin's decision, not a failure).
FAILED_KINDS = tuple(k for k in STATS_FAILED_KINDS if k != "cancelled")
#: In-flight entries read per daemon per snapshot to split its in-flight total by queue (a bounded read).
INFLIGHT_SAMPLE = 32


def snapshot(app: WakaQ, r: redis.Redis) -> dict[str, Any]:
    """Everything an operator sees, read in two pipelined round trips (see the module docstring)."""
    keys = app.keys
    pipe: Any = r.pipeline(transaction=False)
    # NOTE: a Redis Cluster pipeline takes only commands with keys (it routes by them): TIME goes on its own there.
    if not keys.cluster:
        pipe.time()
    pipe.smembers(keys.daemons)
    pipe.hgetall(keys.stats_retired)
    pipe.smembers(keys.parked_registry)
    pipe.smembers(keys.paused)
    for queue in app.queues:
        pipe.llen(queue.broker_key)
        pipe.zcard(queue.broker_eta_key)
        pipe.llen(keys.failed(queue.name))
    replies = pipe.execute()
    (secs, micros), members, retired, registry, paused, *depths = [r.time(), *replies] if keys.cluster else replies
    now = secs + micros / 1e6
    daemon_ids = sorted(m.decode(errors="replace") for m in members)

    pipe = r.pipeline(transaction=False)
    for daemon in daemon_ids:
        pipe.get(keys.heartbeat(daemon))
        pipe.hgetall(keys.daemon_info(daemon))
        # NOTE: HLEN + a bounded HRANDFIELD instead of HVALS: the dashboard snapshots every second per page, and a
        # daemon with async tasks holds children x async_concurrency entries.
        pipe.hlen(keys.inflight(daemon))
        pipe.hrandfield(keys.inflight(daemon), INFLIGHT_SAMPLE, withvalues=True)
        pipe.hgetall(keys.stats(daemon))
    # NOTE: every registered parked list of our queues, also of limits this config does not have
    parked = parked_lists(keys, registry, [q.name for q in app.queues], app.tasks.values())
    for _, _, key in parked:
        pipe.llen(key)
    replies = pipe.execute()
    waiting: Counter[str] = Counter()  # pending tasks parked by a task rate limit (wakaq.ratelimit)
    for (name, _, _), count in zip(parked, replies[5 * len(daemon_ids) :], strict=True):
        waiting[name] += count

    cells = _Cells()
    cells.add(retired)
    daemons = []
    inflight: Counter[str] = Counter()
    for i, daemon in enumerate(daemon_ids):
        heartbeat, info, held, sample, counts = replies[5 * i : 5 * i + 5]
        own = _Cells()
        own.add(counts)
        daemons.append(_daemon(daemon, heartbeat, info, now, totals(own.tasks())))
        inflight.update(split_inflight(int(held), (sample or [])[1::2]))
        cells.add(counts)
    tasks = cells.tasks()
    return {
        "time": now,
        "queues": _queues(app, depths, inflight, tasks, waiting, {p.decode(errors="replace") for p in paused}),
        "daemons": daemons,
        "tasks": tasks,
    }


# ---- queues -----------------------------------------------------------------------------------------------------


def _queues(
    app: WakaQ,
    depths: list[int],
    inflight: Counter[str],
    tasks: list[dict[str, Any]],
    parked: Counter[str],
    paused: set[str],
) -> dict[str, Any]:
    per_queue: dict[str, Counter[str]] = {}
    for task in tasks:
        c = per_queue.setdefault(task["queue"], Counter())
        c.update(started=task["started"], done=task["done"], retried=task["retried"])
        c["failed"] += sum(task["failed"][k] for k in FAILED_KINDS)
        c["cancelled"] += task["failed"]["cancelled"]
    out: dict[str, Any] = {}
    for i, queue in enumerate(app.queues):
        c = per_queue.get(queue.name, Counter())
        out[queue.name] = {
            "name": queue.name,
            "priority": queue.priority,
            "broker_key": queue.broker_key,
            "broker_eta_key": queue.broker_eta_key,
            "pending_tasks": depths[3 * i] + parked.get(queue.name, 0),
            "pending_eta_tasks": depths[3 * i + 1],
            "inflight_tasks": inflight.get(queue.name, 0),
            "failed_tasks": depths[3 * i + 2],
            "paused": queue.name in paused,
            "counters": {k: c.get(k, 0) for k in ("started", "done", "failed", "cancelled", "retried")},
        }
    return out


def _entry_queue(entry: bytes) -> str:
    """In-flight hash values are `<queue name>\\n<element>`."""
    return entry.split(b"\n", 1)[0].decode(errors="replace")


def split_inflight(total: int, sample: list[bytes]) -> Counter[str]:
    """A daemon's exact in-flight `total` split by queue in the proportions of `sample` (some of its entries; all
    of them when it holds no more than `INFLIGHT_SAMPLE`), by largest remainder so the parts sum to `total`."""
    seen = Counter(_entry_queue(entry) for entry in sample)
    if not seen or total <= 0:
        return Counter()
    n = sum(seen.values())
    shares = {q: total * c / n for q, c in seen.items()}
    out = Counter({q: int(v) for q, v in shares.items()})
    for q in sorted(shares, key=lambda q: shares[q] - out[q], reverse=True)[: total - sum(out.values())]:
        out[q] += 1
    return out


# ---- daemons ----------------------------------------------------------------------------------------------------


def _daemon(
    daemon: str, heartbeat: bytes | None, raw: Mapping[bytes, bytes], now: float, counted: Mapping[str, int]
) -> dict[str, Any]:
    """One daemon: alive while its heartbeat key exists; its info is the JSON the parent publishes (coordinator.rs
    `info_json`), from the info hash that outlives the heartbeat, else from the heartbeat itself (older daemons).

    NOTE: `tasks_done`/`tasks_failed` are the sums of the daemon's stats hash (`counted`), not the info's
    `tasks_done` (the parent's own tally of finished tasks, done or failed): the counters every other view sums."""
    info = _json_object(raw.get(b"info") or heartbeat)
    seen = _float(raw.get(b"seen"))
    children = info.get("children")
    return {
        "id": daemon,
        "host": info.get("host"),
        "pid": info.get("pid"),
        "started_at": info.get("started_at"),
        "alive": heartbeat is not None,
        "last_seen": seen,
        "seen_ago": None if seen is None else max(0.0, now - seen),
        "tasks_done": counted["done"],
        "tasks_failed": counted["failed"],
        "tasks_cancelled": counted["cancelled"],
        "rss_bytes": info.get("rss_bytes"),
        "children": [_child(c) for c in children] if isinstance(children, list) else [],
    }


def _json_object(raw: bytes | None) -> dict[str, Any]:
    try:
        info = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def _child(child: Any) -> dict[str, Any]:
    if not isinstance(child, dict):  # NOTE: heartbeats of older versions list bare pids
        return {"pid": child, "busy": None, "task": None, "queue": None, "running_for": None, "rss_bytes": None}
    return {
        "pid": child.get("pid"),
        "busy": bool(child.get("busy")),
        "task": child.get("task"),
        "queue": child.get("queue"),
        "running_for": child.get("running_for"),
        "rss_bytes": child.get("rss_bytes"),
    }


def _float(value: bytes | None) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


# ---- task counters ----------------------------------------------------------------------------------------------


class _Cells:
    """Sums stats hashes (field `<counter>\\x1f<queue>\\x1f<task>` -> int) into per (queue, task) cells."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str], Counter[str]] = {}

    def add(self, counts: Mapping[bytes, bytes]) -> None:
        for field, value in counts.items():
            parts = field.decode(errors="replace").split(STATS_SEP, 2)
            if len(parts) != 3:
                continue
            try:
                n = int(value)
            except ValueError:
                continue
            counter, queue, task = parts
            self.cells.setdefault((queue, task), Counter())[counter] += n

    def tasks(self) -> list[dict[str, Any]]:
        return [_task(queue, task, c) for (queue, task), c in sorted(self.cells.items())]


def _task(queue: str, task: str, c: Counter[str]) -> dict[str, Any]:
    buckets, total = [], 0
    for i, le in enumerate(RUNTIME_BUCKETS):
        total += c.get(f"rt{i}", 0)
        buckets.append([le, total])
    total += c.get(f"rt{len(RUNTIME_BUCKETS)}", 0)
    buckets.append([float("inf"), total])
    return {
        "queue": queue,
        "task": task,
        "started": c.get("started", 0),
        "done": c.get("done", 0),
        "failed": {kind: c.get(kind, 0) for kind in STATS_FAILED_KINDS},
        "retried": c.get("retried", 0),
        "runtime": {"buckets": buckets, "sum": c.get("rt_us", 0) / 1e6, "count": total},
    }


def totals(tasks: Iterable[dict[str, Any]]) -> dict[str, int]:
    """started/done/failed/cancelled/retried summed over every (queue, task): what rates are computed from."""
    out = {"started": 0, "done": 0, "failed": 0, "cancelled": 0, "retried": 0}
    for t in tasks:
        out["started"] += t["started"]
        out["done"] += t["done"]
        out["failed"] += sum(t["failed"][k] for k in FAILED_KINDS)
        out["cancelled"] += t["failed"]["cancelled"]
        out["retried"] += t["retried"]
    return out
