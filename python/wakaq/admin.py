"""Operations behind the admin commands (`wakaq-info`, `wakaq-purge`, `wakaq-failed`), on redis-py.

NOTE: these are rare, human-driven commands: they read with redis-py (pipelines, one round trip per step); what
changes a task's delivery state (requeueing a failed task) goes through a script of the Rust broker.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import redis

from wakaq.connection import redis_py_client
from wakaq.ratelimit import parked_lists

if TYPE_CHECKING:
    from wakaq.app import WakaQ


def connect(app: WakaQ) -> redis.Redis:
    """A redis-py client with the app's URL, timeouts and TLS options (a `RedisCluster` for a cluster URL)."""
    return redis_py_client(app)


# ---- info -------------------------------------------------------------------------------------------------------


def inspect(app: WakaQ, r: redis.Redis) -> dict[str, Any]:
    """WakaQ's `wakaq-info` shape: queues keyed by name (WakaQ's fields, then ours), `workers` = the number of
    live worker daemons; daemon details (live ones and ones whose heartbeat stopped, not yet reaped) under
    `daemons`; tasks parked by a task rate limit per queue and task (every registered list, also of queues and
    limits this config does not have) under `parked`; the failure records of broadcasts (every daemon's) under
    `failed_broadcasts`; recent workflows (the index the dashboard lists, not expired) by status under `workflows`."""
    from wakaq.stats import snapshot
    from wakaq.workflow import recent_counts

    snap = snapshot(app, r)
    return {
        "queues": snap["queues"],
        "workers": sum(1 for d in snap["daemons"] if d["alive"]),
        "daemons": snap["daemons"],
        "parked": parked(app, r),
        "failed_broadcasts": r.llen(app.keys.broadcast_failed),
        "workflows": recent_counts(app, r),
    }


def parked(app: WakaQ, r: redis.Redis) -> dict[str, dict[str, int]]:
    """Tasks parked by a task rate limit: queue -> task -> count, lists that hold some only."""
    registry: Any = r.smembers(app.keys.parked_registry)
    queues = {q.name for q in app.queues}
    queues.update(pair[0] for member in registry if (pair := app.keys.parse_parked_member(member)))
    lists = parked_lists(app.keys, registry, queues, app.tasks.values())
    pipe: Any = r.pipeline(transaction=False)
    for _, _, key in lists:
        pipe.llen(key)
    out: dict[str, dict[str, int]] = {}
    for (queue, task, _), count in zip(lists, pipe.execute() if lists else [], strict=True):
        if count:
            out.setdefault(queue, {})[task] = count
    return out


# ---- purge ------------------------------------------------------------------------------------------------------


def purge(app: WakaQ, r: redis.Redis, queue_name: str) -> dict[str, Any]:
    """Empty a queue: its pending list, its tasks parked by a task rate limit (every registered parked list of the
    queue, also of limits this config does not have) and its eta set; returns how many tasks each held.

    NOTE: the Rust broker does it (rust/src/broker/purge.rs): each purged task's uniqueness lock is released and its
    result record says "cancelled", in the script that removes it. `r` is not used (kept for callers)."""
    queue = app.get_queue(queue_name, "--queue")
    limited = sorted(t.name for t in app.tasks.values() if t.rate_limit)
    pending, eta = app.broker.purge(queue.name, limited)
    return {"queue": queue.name, "purged_tasks": pending, "purged_eta_tasks": eta}


# ---- failed -----------------------------------------------------------------------------------------------------


def failed_queues(app: WakaQ, r: redis.Redis, queue_name: str | None) -> list[str]:
    """Queue names whose failed lists to act on: one (an app queue, or any name with a failed list) or all."""
    if queue_name is not None:
        if queue_name not in app.queues_by_name and not r.exists(app.keys.failed(queue_name)):
            app.get_queue(queue_name, "--queue")  # raises, naming the queue
        return [queue_name]
    found = {key.decode()[len(app.keys.failed("")) :] for key in r.scan_iter(match=app.keys.failed("*"), count=500)}
    return [q.name for q in app.queues] + sorted(found - set(app.queues_by_name))


def list_failed(app: WakaQ, r: redis.Redis, queues: list[str], limit: int) -> list[dict[str, Any]]:
    """Failure records, newest first per queue, decoded for people."""
    pipe: Any = r.pipeline(transaction=False)
    for name in queues:
        pipe.lrange(app.keys.failed(name), 0, limit - 1)
    return [describe(raw) for records in pipe.execute() for raw in records]


def describe(raw: bytes) -> dict[str, Any]:
    """A failure record as a JSON-ready dict, with the task's name and arguments decoded."""
    from wakaq._wakaq import decode_task

    record = _unpack_record(raw)
    payload = record.get("payload", b"")
    out: dict[str, Any] = {
        "queue": record.get("queue"),
        "reason": record.get("reason"),
        "traceback": record.get("traceback"),
        "time": _time(record),
        "worker": record.get("worker"),
        "deliveries": record.get("deliveries"),
    }
    try:
        name, args, kwargs, retry = decode_task(payload)
        out.update(name=name, args=args, kwargs=kwargs, retry=retry)
    except Exception as e:  # a garbage payload is still listed, with why it cannot be read
        out.update(name=None, payload_error=str(e), payload=bytes(payload[:200]).hex())
    return out


def _unpack_record(raw: bytes) -> dict[str, Any]:
    from wakaq._wakaq import unpackb

    try:
        record = unpackb(raw)
    except Exception as e:
        return {"reason": f"unreadable failure record: {e}", "payload": b""}
    return record if isinstance(record, dict) else {"reason": f"unexpected failure record {record!r}"}


def _time(record: dict[str, Any]) -> str | None:
    if isinstance(record.get("time_ms"), int):
        return datetime.fromtimestamp(record["time_ms"] / 1000, tz=timezone.utc).isoformat()
    value = record.get("time")
    return value.isoformat() if isinstance(value, datetime) else None if value is None else str(value)


def requeue_failed(app: WakaQ, r: redis.Redis, queues: list[str]) -> dict[str, int]:
    """Push failed tasks back onto the end of their queues, oldest first.

    Each record is removed, its task pushed and its result record dropped (so its new run may write one) in one
    script of the Rust broker (requeue_failed.lua: LREM of that exact record, so failures recorded meanwhile are
    untouched). Records of queues this app does not define (e.g. broadcasts) are left in place.
    """
    requeued = skipped = 0
    for name in queues:
        key = app.keys.failed(name)
        records: Any = r.lrange(key, 0, -1)
        for raw in reversed(records):
            record = _unpack_record(raw)
            queue, payload = record.get("queue", name), record.get("payload")
            if queue not in app.queues_by_name or not isinstance(payload, bytes) or not payload:
                skipped += 1
                continue
            if app.broker.requeue_failed(name, raw, queue, payload):
                requeued += 1
            else:
                skipped += 1  # NOTE: requeued or dropped by someone else meanwhile
    return {"requeued": requeued, "skipped": skipped}


def drop_failed(app: WakaQ, r: redis.Redis, queues: list[str]) -> dict[str, int]:
    """Delete the failed lists (one script of the Rust broker); returns how many records they held."""
    return {"dropped": app.broker.drop_failed(queues)}


def to_json(value: Any) -> str:
    """JSON for the terminal; task arguments may hold datetimes, bytes, Decimals."""
    return json.dumps(value, indent=2, default=_json_default, ensure_ascii=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode(errors="backslashreplace")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)
