"""Cancel tasks: a pending, parked or eta task by id, every pending task of a name, a running one on request
(`app.cancel`, `app.cancel_task`, `wakaq-cancel`). docs/internals.md "Cancel" has the design.

Ids: the payload's meta `id` when it has one (results handles, `wakaq.ids.new_id()`), else a derived id, "p" and
the first 16 hex digits of the SHA-1 of the payload, so plain tasks can be cancelled too. Equal plain payloads
(same name and arguments) share a derived id; cancelling it removes one of them.

NOTE: an admin path: lists and eta sets are read with redis-py in windows of `CHUNK` (bounded replies however long
the queue), each match removed by the Rust broker's `cancel.lua` (LREM/ZREM of the exact element and, only if it was
still there, a failure record "cancelled by admin" and its result record and lock settled, in the same script).
Workers pay nothing for it: the parent listens on the control channel it
already subscribes beside broadcasts, and a child's SIGUSR2 handler is only ever run by a cancel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from itertools import chain
from typing import TYPE_CHECKING, Any, Protocol

from wakaq import _wakaq
from wakaq.connection import redis_py_client
from wakaq.constants import CANCELLED_REASON
from wakaq.exceptions import PayloadError
from wakaq.ids import is_workflow_id
from wakaq.keys import Keys
from wakaq.protocols import RedisSettings
from wakaq.ratelimit import parked_lists

if TYPE_CHECKING:
    from wakaq._wakaq import Broker

#: elements read per LRANGE/ZRANGE/HSCAN
CHUNK = 500
#: windows of a list overlap by this much: children pop from the left while we read, which shifts what is left
#: towards the front; an element seen twice is harmless (its second LREM finds nothing)
OVERLAP = 100


#: passes of `cancel` over the queued sets and the in-flight hashes
PASSES = 3


class Outcome(str, Enum):
    """What `app.cancel` did (a str: compares equal to its value)."""

    #: removed from its queue (pending, parked by a rate limit, or eta) and recorded failed "cancelled by admin"
    CANCELLED = "cancelled"
    #: a child is running it; it was left to finish (pass terminate=True to interrupt it)
    RUNNING = "running"
    #: a child is running it; its daemon was asked to interrupt it (it is then recorded failed "cancelled by admin")
    TERMINATING = "terminating"
    #: no pending, eta or running task has this id (finished, never existed, or cancelled already)
    NOT_FOUND = "not found"

    def __str__(self) -> str:
        return self.value


class CancelHost(RedisSettings, Protocol):
    """The app as cancelling sees it."""

    keys: Keys

    @property
    def broker(self) -> Broker: ...

    @property
    def queues(self) -> list[Any]: ...

    @property
    def tasks(self) -> dict[str, Any]: ...


@dataclass
class Found:
    """One task in Redis: where it is and what it is."""

    id: str
    name: str | None
    queue: str
    state: str  # "pending", "parked", "eta" or "running"
    key: str  # the list, zset or in-flight hash holding it
    element: bytes  # the exact bytes there (list element, zset member, or the in-flight entry's element)
    deliveries: int = 0
    eta: float | None = None
    running: tuple[str, int, int] | None = None  # (daemon, pid, seq) of a running task
    detail: dict[str, Any] = field(default_factory=dict)


def task_id(payload: bytes) -> str:
    """The id of a task payload: its meta `id`, else "p" + 16 hex digits of SHA-1 (equal payloads, equal ids)."""
    try:
        meta = _wakaq.decode_task_meta(payload)[4]
    except PayloadError:
        meta = None
    if meta is not None and isinstance(meta.get("id"), str):
        return str(meta["id"])
    return derived_id(payload)


def derived_id(payload: bytes) -> str:
    return "p" + hashlib.sha1(payload, usedforsecurity=False).hexdigest()[:16]


def cancel(app: CancelHost, task: str, terminate: bool = False, r: Any = None) -> Outcome:
    """Cancel the task with id `task`: a pending, parked or eta one is removed and recorded failed "cancelled by
    admin"; a running one is left alone (RUNNING) unless `terminate`, which asks its daemon to interrupt it. A
    workflow's id cancels the whole workflow (`cancel_workflow`)."""
    if is_workflow_id(task):
        return cancel_workflow(app, task, terminate, r)
    with _Client(app, r) as client:
        keep = _id_filter(task)
        asked: tuple[str, int, int] | None = None
        # NOTE: a task moves between a queued set and an in-flight hash atomically (claimed, given back, retried
        # into its eta set) but the two reads are not one snapshot: one that moved between them is found by the
        # next pass. After asking a daemon to interrupt it, one more pass finds an attempt that had just ended in
        # a retry (its child then ignores the request for a seq it finished) and cancels the retry.
        for _ in range(PASSES):
            removed: dict[str, int] = {}
            for found in _queued(app, client, keep, removed):
                if found.id == task and _remove(app, client, found, removed):
                    return Outcome.CANCELLED
            running = next((f.running for f in _running(app, client, keep) if f.id == task and f.running), None)
            if running is None:
                continue
            if running == asked:
                return Outcome.TERMINATING
            if not terminate:
                return Outcome.RUNNING
            daemon, pid, seq = running
            # NOTE: PUBLISH's receiver count is not checked: on a cluster it counts one node's subscribers only
            client.publish(app.keys.control_channel, f"cancel {daemon} {pid} {seq}")
            asked = running
    return Outcome.NOT_FOUND if asked is None else Outcome.TERMINATING


def cancel_workflow(app: CancelHost, workflow_id: str, terminate: bool = False, r: Any = None) -> Outcome:
    """Cancel a running workflow (wakaq.workflow): first it reads cancelled (in one script, so no later step or
    callback starts: a step that ends afterwards finds it no longer running), then each queued step (ids
    "<workflow id>-<node>") is removed and recorded failed "cancelled by admin"; running steps finish (their results
    are ignored) unless `terminate`. NOT_FOUND when it is not running (ended, expired or unknown)."""
    if app.broker.cancel_workflow(workflow_id, CANCELLED_REASON) != "running":
        return Outcome.NOT_FOUND
    prefix = f"{workflow_id}-"
    keep = _containing(prefix.encode())
    removed: dict[str, int] = {}
    with _Client(app, r) as client:
        for found in _queued(app, client, keep, removed):
            if found.id.startswith(prefix):
                _remove(app, client, found, removed)
        if terminate:
            for found in _running(app, client, keep):
                if found.id.startswith(prefix) and found.running is not None:
                    daemon, pid, seq = found.running
                    client.publish(app.keys.control_channel, f"cancel {daemon} {pid} {seq}")
    return Outcome.CANCELLED


def cancel_task(app: CancelHost, name: str, queue: str | None = None, r: Any = None) -> int:
    """Cancel every pending, parked and eta task named `name` (of one queue, or all); returns how many. Running
    ones are left alone."""
    keep = _containing(name.encode())
    cancelled = 0
    removed: dict[str, int] = {}
    with _Client(app, r) as client:
        for found in _queued(app, client, keep, removed, queue):
            if found.name == name and _remove(app, client, found, removed):
                cancelled += 1
    return cancelled


def list_tasks(
    app: CancelHost, r: Any, queue: str | None = None, name: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """At most `limit` pending, parked, eta and running tasks (of one queue / task name) with their ids."""
    keep = _containing(name.encode()) if name is not None else None
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, bytes]] = set()
    # NOTE: lazily, so reading stops at `limit` (a long queue is never read whole for a short listing)
    for found in chain(_queued(app, r, keep, {}, queue, overlap=0), _running(app, r, keep)):
        if len(out) >= limit:
            break
        if (name is not None and found.name != name) or (queue is not None and found.queue != queue):
            continue
        if (found.key, found.element) in seen and found.state != "running":
            continue
        seen.add((found.key, found.element))
        out.append(_describe(found))
    return out


# ---- finding ----------------------------------------------------------------------------------------------------


#: which raw elements are worth decoding
Keep = Callable[[bytes], bool]


def _containing(needle: bytes) -> Keep:
    """Elements whose bytes contain `needle` (a task name and a meta id are stored literally in the payload)."""
    return lambda element: needle in element


def _id_filter(task: str) -> Keep:
    """Elements that may have id `task`: a derived id is checked on the payload's hash before anything is decoded."""
    if len(task) == 17 and task.startswith("p"):
        return lambda element: derived_id(_wakaq.split_element(element)[1]) == task
    return _containing(task.encode())


def _queued(
    app: CancelHost,
    r: Any,
    keep: Keep | None,
    removed: dict[str, int],
    queue: str | None = None,
    overlap: int = OVERLAP,
) -> Iterator[Found]:
    """Every pending, parked and eta task (of `queue`, or all), read in windows; with `keep`, only the elements it
    keeps are decoded. `removed`: per key, how many elements the caller removed so far (`_remove` counts
    them), so the next window starts that much earlier."""
    queues = [q for q in app.queues if queue is None or q.name == queue]
    registry = r.smembers(app.keys.parked_registry)  # NOTE: parked lists of any config, not only this one's
    for q in queues:
        sources = [("pending", app.keys.queue(q.name))]
        sources += [("parked", key) for _, _, key in parked_lists(app.keys, registry, [q.name], app.tasks.values())]
        for state, key in sources:
            for element in _scan(r, key, overlap, removed, _lrange):
                if keep is None or keep(element):
                    yield _found(q.name, state, key, element)
        eta_key = app.keys.eta(q.name)
        for member, score in _scan(r, eta_key, overlap, removed, _zrange):
            if keep is None or keep(member):
                found = _found(q.name, "eta", eta_key, member)
                found.eta = score
                yield found


def _running(app: CancelHost, r: Any, keep: Keep | None) -> Iterator[Found]:
    """Every task in some daemon's in-flight hash (claimed: running, or about to run in that child)."""
    daemons = sorted(d.decode() for d in r.smembers(app.keys.daemons))
    for daemon in daemons:
        key = app.keys.inflight(daemon)
        for field_, entry in r.hscan_iter(key, count=CHUNK):
            queue, sep, element = bytes(entry).partition(b"\n")
            pid, _, seq = bytes(field_).partition(b":")
            if not sep or not pid.isdigit() or not seq.isdigit() or (keep is not None and not keep(element)):
                continue
            found = _found(queue.decode(errors="replace"), "running", key, element)
            found.running = (daemon, int(pid), int(seq))
            yield found


def _scan(r: Any, key: str, overlap: int, removed: dict[str, int], read: Any) -> Iterator[Any]:
    """A list or zset in windows of CHUNK by index. WARN: removing an element shifts every later one a place to the
    front: without taking the caller's removals off the next start, a window would skip that many elements."""
    start = 0
    while True:
        before = removed.get(key, 0)
        chunk = read(r, key, start, start + CHUNK - 1)
        yield from chunk
        if len(chunk) < CHUNK:
            return
        start = max(0, start + CHUNK - overlap - (removed.get(key, 0) - before))


def _lrange(r: Any, key: str, start: int, stop: int) -> list[bytes]:
    return list(r.lrange(key, start, stop))


def _zrange(r: Any, key: str, start: int, stop: int) -> list[tuple[bytes, float]]:
    return list(r.zrange(key, start, stop, withscores=True))


def _found(queue: str, state: str, key: str, element: bytes) -> Found:
    deliveries, payload = _wakaq.split_element(element)
    try:
        name, args, kwargs, retry, meta = _wakaq.decode_task_meta(payload)
    except PayloadError as e:
        return Found(derived_id(payload), None, queue, state, key, element, deliveries, detail={"error": str(e)})
    task = str(meta["id"]) if meta is not None and isinstance(meta.get("id"), str) else derived_id(payload)
    detail = {"args": args, "kwargs": kwargs, "retry": retry}
    return Found(task, name, queue, state, key, element, deliveries, detail=detail)


def _describe(found: Found) -> dict[str, Any]:
    out: dict[str, Any] = {"id": found.id, "name": found.name, "queue": found.queue, "state": found.state}
    if found.eta is not None:
        out["eta"] = datetime.fromtimestamp(found.eta, tz=timezone.utc).isoformat()
    if found.running is not None:
        out["daemon"], out["pid"], out["seq"] = found.running
    if found.deliveries:
        out["deliveries"] = found.deliveries
    out.update(found.detail)
    return out


# ---- removing ---------------------------------------------------------------------------------------------------


def _remove(app: CancelHost, r: Any, found: Found, removed: dict[str, int]) -> bool:
    """Remove exactly this element, record it failed and settle its result record and lock, in one script of the
    Rust broker (cancel.lua); False when it is gone (claimed meanwhile)."""
    zset = found.state == "eta"
    if not app.broker.cancel_queued(found.key, found.element, found.queue, CANCELLED_REASON, zset=zset):
        return False
    removed[found.key] = removed.get(found.key, 0) + 1
    return True


class _Client:
    """The caller's redis-py client, or a new one closed afterwards."""

    def __init__(self, app: CancelHost, r: Any) -> None:
        self.own = r is None
        self.r = redis_py_client(app) if r is None else r

    def __enter__(self) -> Any:
        return self.r

    def __exit__(self, *exc: object) -> None:
        if self.own:
            self.r.close()
