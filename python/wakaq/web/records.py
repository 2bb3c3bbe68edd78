"""Failed and eta tasks, a page at a time: never a whole list or set in one command.

- A page is one LRANGE/ZRANGE of at most `MAX_LIMIT` items plus LLEN/ZCARD, so it costs the same at offset 0 and
  at offset 99,950 of a 100,000-record list.
- Search (task name, case-insensitive substring) scans forward from `offset` in chunks of `SCAN_CHUNK` items and
  stops after `SCAN_BUDGET` items or once a page of matches is found; the reply says where it stopped (`next`),
  and the page offers to search further from there. Each chunk is first filtered on the raw bytes (the name is
  stored literally in both payload formats) and only candidates are decoded.
- Records are identified by a hash of their exact bytes plus an index hint: the list shifts as failures arrive
  (LPUSH) or are removed, so actions look for the record around its last known index.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any

from wakaq.admin import _unpack_record as unpack_record
from wakaq.admin import describe

if TYPE_CHECKING:
    import redis

    from wakaq.app import WakaQ

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
SCAN_CHUNK = 1000
SCAN_BUDGET = 20_000
FIND_WINDOW = 200  # records either side of the index hint where an action looks for its record
REQUEUE_CHUNK = 500
TEXT_LIMIT = 4000  # characters of args/kwargs shown
TRACEBACK_LIMIT = 20_000
HEX_PREVIEW = 64  # bytes of an undecodable payload shown as hex


def record_id(raw: bytes) -> str:
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


def clamp_page(offset: Any, limit: Any) -> tuple[int, int]:
    return max(0, _int(offset, 0)), min(MAX_LIMIT, max(1, _int(limit, DEFAULT_LIMIT)))


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def short_repr(value: Any, limit: int = TEXT_LIMIT) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more characters)"


# ---- failed -----------------------------------------------------------------------------------------------------


def failed_view(raw: bytes, index: int) -> dict[str, Any]:
    """A failure record for the page: every task value as a bounded string, an undecodable one as hex."""
    d = describe(raw)
    view: dict[str, Any] = {
        "id": record_id(raw),
        "index": index,
        "queue": _text(d.get("queue"), 200),
        "reason": _text(d.get("reason"), TEXT_LIMIT),
        "traceback": _text(d.get("traceback"), TRACEBACK_LIMIT),
        "time": d.get("time"),
        "worker": _text(d.get("worker"), 200),
        "deliveries": d.get("deliveries") if isinstance(d.get("deliveries"), int) else None,
    }
    if d.get("name") is not None:
        view.update(name=_text(d["name"], 500), args=short_repr(d["args"]), kwargs=short_repr(d["kwargs"]))
    else:
        preview = d.get("payload") or raw[:HEX_PREVIEW].hex()
        view.update(name=None, payload_error=_text(d.get("payload_error"), 500), payload_hex=preview[: 2 * HEX_PREVIEW])
    return view


def failed_page(app: WakaQ, r: redis.Redis, queue: str, offset: int, limit: int, search: str) -> dict[str, Any]:
    key = app.keys.failed(queue)
    if search:
        return _search(lambda start, stop: r.lrange(key, start, stop), r.llen(key), offset, limit, search, failed_view)
    pipe: Any = r.pipeline(transaction=False)
    pipe.llen(key)
    pipe.lrange(key, offset, offset + limit - 1)
    total, raws = pipe.execute()
    items = [failed_view(raw, offset + i) for i, raw in enumerate(raws)]
    return {"queue": queue, "total": total, "offset": offset, "limit": limit, "items": items}


def find_record(app: WakaQ, r: redis.Redis, queue: str, rid: str, index: int) -> bytes | None:
    """The record with this id near its last known index (it may have moved by a few positions)."""
    start = max(0, index - FIND_WINDOW)
    raws: Any = r.lrange(app.keys.failed(queue), start, index + FIND_WINDOW)
    matches = [(abs(start + i - index), raw) for i, raw in enumerate(raws) if record_id(raw) == rid]
    return min(matches)[1] if matches else None


def requeue_one(app: WakaQ, r: redis.Redis, queue: str, raw: bytes) -> str | None:
    """Push the record's task back onto its queue and remove the record, atomically. Why not, or None."""
    return _push_back(app, r, queue, raw)


def requeue_all(app: WakaQ, r: redis.Redis, queue: str) -> dict[str, int]:
    """Requeue a whole failed list, oldest first, a chunk at a time from its tail.

    At most as many records as the list held at the start are handled, so tasks that fail again meanwhile (and
    arrive at the head) are not chased forever. Each record is removed by LREM of its exact bytes from the tail
    (where it is) in the same script that pushes its task (`_push_back`): nothing lost, nothing doubled.
    """
    key = app.keys.failed(queue)
    budget: int = r.llen(key)  # type: ignore[assignment]
    requeued = skipped = 0
    while requeued + skipped < budget:
        want = min(REQUEUE_CHUNK, budget - requeued - skipped)
        raws: Any = r.lrange(key, -(skipped + want), -(skipped + 1))
        if not raws:
            break
        for raw in reversed(raws):
            if _push_back(app, r, queue, raw) is not None:
                skipped += 1
            else:
                requeued += 1
    return {"requeued": requeued, "skipped": skipped}


def _push_back(app: WakaQ, r: redis.Redis, queue: str, raw: bytes) -> str | None:
    """Requeue the record's task (the record goes, the task is pushed and its result record dropped, in one script
    of the Rust broker); why it cannot be (the record stays), or None."""
    record = unpack_record(raw)
    target, payload = record.get("queue", queue), record.get("payload")
    if target not in app.queues_by_name:
        return f"queue {target!r} is not one of this app's queues; drop the record instead"
    if not isinstance(payload, bytes) or not payload:
        return "the record holds no task payload to requeue"
    if not app.broker.requeue_failed(queue, raw, target, payload):
        return "the record is gone (requeued or dropped meanwhile)"
    return None


# ---- eta --------------------------------------------------------------------------------------------------------


def eta_view(member: bytes, score: float, index: int) -> dict[str, Any]:
    from wakaq._wakaq import decode_task

    view: dict[str, Any] = {"id": record_id(member), "index": index, "due": score if math.isfinite(score) else None}
    try:
        name, args, kwargs, _ = decode_task(member)
    except Exception as e:  # NOTE: garbage in the set is shown, never fatal for the page
        view.update(name=None, payload_error=_text(str(e), 500), payload_hex=member[:HEX_PREVIEW].hex())
    else:
        view.update(name=_text(name, 500), args=short_repr(args), kwargs=short_repr(kwargs))
    return view


def eta_page(app: WakaQ, r: redis.Redis, queue: str, offset: int, limit: int, search: str) -> dict[str, Any]:
    """Next due first."""
    key = app.queues_by_name[queue].broker_eta_key

    def fetch(start: int, stop: int) -> list[tuple[bytes, float]]:
        return r.zrange(key, start, stop, withscores=True)  # type: ignore[return-value]

    def view(item: tuple[bytes, float], index: int) -> dict[str, Any]:
        return eta_view(item[0], item[1], index)

    if search:
        return _search(fetch, r.zcard(key), offset, limit, search, view, raw_of=lambda item: item[0])
    pipe: Any = r.pipeline(transaction=False)
    pipe.zcard(key)
    pipe.zrange(key, offset, offset + limit - 1, withscores=True)
    total, members = pipe.execute()
    items = [eta_view(m, s, offset + i) for i, (m, s) in enumerate(members)]
    return {"queue": queue, "total": total, "offset": offset, "limit": limit, "items": items}


# ---- search -----------------------------------------------------------------------------------------------------


def _search(
    fetch: Any, total: Any, offset: int, limit: int, search: str, view: Any, raw_of: Any = None
) -> dict[str, Any]:
    """Scan from `offset` for items whose task name contains `search`, within SCAN_BUDGET items."""
    needle = search.lower()
    needle_bytes = needle.encode()
    items: list[dict[str, Any]] = []
    position, end = offset, min(int(total), offset + SCAN_BUDGET)
    while position < end and len(items) < limit:
        stop = min(position + SCAN_CHUNK, end)
        chunk = fetch(position, stop - 1)
        if not chunk:
            break
        for i, item in enumerate(chunk):
            raw = raw_of(item) if raw_of else item
            if needle_bytes not in raw.lower():
                continue
            shown = view(item, position + i)
            if needle in (shown.get("name") or "").lower():
                items.append(shown)
                if len(items) == limit:
                    position += i + 1
                    break
        else:
            position += len(chunk)
    return {
        "total": int(total),
        "offset": offset,
        "limit": limit,
        "search": search,
        "items": items,
        "next": position if position < int(total) else None,
        "scanned": position - offset,
    }
