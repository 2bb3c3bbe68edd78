"""Unique tasks (opt-in): at most one task per key pending or running at a time.

`@app.task(unique_for=timedelta(minutes=5))` or `.delay_with_options(..., unique_key="...")`. The enqueue is one
script of the Rust broker (`rust/src/broker/lua/enqueue_unique.lua`): `SET <ns>:unique:<key> <task id> NX PX <ttl>`
and, only when the lock was free, the push (RPUSH and the bell, or the eta ZADD and its PUBLISH). The payload meta
carries `id` and `unique` (the lock's full key); the script that settles the task (finish.lua, or the supervisor's
and the admin's scripts) deletes the lock when the task is done, failed or cancelled, only if it still holds this
task's id, so a lock that expired and was taken again is never released by the older task. A crashed worker's lock
expires after its TTL (`unique_for`, counted from when an eta task is due).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from wakaq.config import to_seconds

if TYPE_CHECKING:
    from wakaq._wakaq import Broker


class UniqueHost(Protocol):
    @property
    def broker(self) -> Broker: ...


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
    app: UniqueHost,
    queue: str,
    name: str,
    args: Any,
    kwargs: Any,
    meta: dict[str, Any],
    ttl: float,
    delay: float | None = None,
    due: float | None = None,
) -> str | None:
    """Take the lock `meta["unique"]` and push the task in one script of the Rust broker (enqueue_unique.lua); None
    when enqueued, else the id of the task holding the lock. `delay`: an eta task due that many seconds from now on
    Redis's clock; `due`: at that unix time. The lock lives `ttl` seconds from when the task is due."""
    holder: str | None = app.broker.push_unique(
        queue, name, args, kwargs, meta, meta["unique"], ttl, delay=delay, due=due
    )
    if holder is None or holder == meta["id"]:  # NOTE: its own id: a resend of a push that went through
        return None
    return holder
