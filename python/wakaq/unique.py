"""Unique tasks (opt-in): at most one task per key pending or running at a time.

`@app.task(unique_for=timedelta(minutes=5))` or `.delay(..., unique_key="...")`. The enqueue is one script
(`lua/unique_enqueue.lua`): `SET <ns>:unique:<key> <task id> NX PX <ttl>` and, only when the lock was free, the push
(RPUSH and the bell, or the eta ZADD and its PUBLISH) exactly as the broker's own scripts do. The payload meta carries
`id` and `unique` (the lock's full key); the worker deletes the lock when the task is done or failed, only if it still
holds this task's id (`results.finish_meta`), so a lock that expired and was taken again is never released by the
older task. A crashed worker's lock expires after its TTL (`unique_for`, plus the wait for an eta task).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from wakaq.config import to_seconds
from wakaq.results import ResultsHost, client, redis_errors

#: lock TTL of `.delay(unique_key=...)` on a task without `unique_for` (seconds)
DEFAULT_UNIQUE_FOR = 3600.0


def to_unique_for(value: timedelta | float | None, where: str) -> float | None:
    """`unique_for` as seconds (None: not unique); WakaQError for anything but a positive timedelta or number."""
    return to_seconds(value, f"unique_for of {where}")


def default_key(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """The task name and a hash of its encoded arguments (the codec is deterministic, so equal calls agree)."""
    import hashlib  # NOTE: here, not at the top: `import wakaq` stays free of it

    from wakaq._wakaq import encode_task

    digest = hashlib.sha256(encode_task(name, args, kwargs)).hexdigest()[:32]
    return f"{name}:{digest}"


def enqueue(
    app: ResultsHost,
    queue: str,
    lock: str,
    task_id: str,
    ttl: float,
    payload: bytes,
    due: float | None,
    eta_channel: str,
) -> str | None:
    """Take the lock and push `payload` in one script; None when enqueued, else the id of the task holding it."""
    keys = app.keys
    target = keys.queue(queue) if due is None else keys.eta(queue)
    args: list[str | int | bytes] = [
        task_id,
        max(1, int(ttl * 1000)),
        payload,
        "" if due is None else repr(due),
        eta_channel,
    ]
    with redis_errors(app):
        pushed, holder = client(app).scripts["unique_enqueue"](keys=[lock, target, keys.bell(queue)], args=args)
    if pushed:
        return None
    return holder.decode() if isinstance(holder, bytes) else str(holder)
