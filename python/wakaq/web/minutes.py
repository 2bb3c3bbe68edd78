"""Per-minute history of the task counters in Redis, for "processed and failed since <time>" over a few days.

One hash per UTC day, `<prefix>:history:<day>`: field = minute (unix seconds // 60), value = JSON of that minute's
last sample of the cumulative counters per queue, `{"queue": [done, failed], ...}`. Every dashboard writes the
current minute once per sample (HSET + EXPIRE in one round trip).

NOTE: cumulative totals, not per-minute increments: several dashboards writing the same minute write the same
numbers (the last one wins, nothing is counted twice), and a minute nobody sampled is a gap, not a zero; the
counts per minute are differences of consecutive samples (what happened during a gap lands on the minute after
it). Bounded: at most 1,440 fields per day key, and every day
key expires `KEEP_DAYS` days after its day ends.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

    from wakaq.app import WakaQ

KEEP_DAYS = 3
DAY = 86_400
MAX_POINTS = 360  # points per reply: minutes are summed into buckets beyond that


def record(
    app: WakaQ, r: redis.Redis, now: float, queues: Mapping[str, Mapping[str, Any]], first: bool = False
) -> None:
    """Write this sample as the totals of the current minute (`queues`: snapshot queues with `counters`).

    `first`: the sampler's first sample, also written as the previous minute's totals unless that minute has some
    already, so the minute a dashboard starts in counts from its start instead of being only a base."""
    minute = int(now // 60)
    value = json.dumps({n: [q["counters"]["done"], q["counters"]["failed"]] for n, q in queues.items()})
    pipe: Any = r.pipeline(transaction=False)
    if first:
        _write(app, pipe, minute - 1, value, only_new=True)
    _write(app, pipe, minute, value)
    pipe.execute()


def _write(app: WakaQ, pipe: Any, minute: int, value: str, only_new: bool = False) -> None:
    day = minute // 1440
    key = app.keys.history(day)
    (pipe.hsetnx if only_new else pipe.hset)(key, str(minute), value)
    pipe.expireat(key, (day + 1 + KEEP_DAYS) * DAY)


def read(app: WakaQ, r: redis.Redis, since: float, now: float) -> dict[str, Any]:
    """Processed and failed since `since` (or since the oldest minute kept), with the counts per minute (summed into
    buckets of several minutes when the span is long)."""
    since = max(since, now - KEEP_DAYS * DAY)
    first_day, last_day = int(since // DAY), int(now // DAY)
    pipe: Any = r.pipeline(transaction=False)
    for day in range(first_day, last_day + 1):
        pipe.hgetall(app.keys.history(day))
    samples: dict[int, dict[str, list[int]]] = {}
    for fields in pipe.execute():
        for field, raw in fields.items():
            parsed = _parse(field, raw)
            if parsed is not None:
                samples[parsed[0]] = parsed[1]
    # the sample just before `since` is the base of the first minute's count
    minutes = sorted(m for m in samples if m >= int(since // 60) - 1)
    return _series(minutes, samples, since)


def _parse(field: bytes, raw: bytes) -> tuple[int, dict[str, list[int]]] | None:
    try:
        value = json.loads(raw)
        minute = int(field)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    good = {str(k): v for k, v in value.items() if isinstance(v, list) and len(v) == 2}
    return minute, {k: [int(v[0]), int(v[1])] for k, v in good.items() if all(isinstance(x, int) for x in v)}


def _series(minutes: list[int], samples: dict[int, dict[str, list[int]]], since: float) -> dict[str, Any]:
    if len(minutes) < 2:
        start = minutes[0] * 60 if minutes else None
        return {"since": start, "done": 0, "failed": 0, "bucket_minutes": 1, "points": []}
    span = minutes[-1] - minutes[0]
    bucket = max(1, math.ceil(span / MAX_POINTS))
    points: dict[int, list[int]] = {}
    for before, after in itertools.pairwise(minutes):
        d, f = _diff(samples[before], samples[after])
        t = (after // bucket) * bucket * 60
        slot = points.setdefault(t, [0, 0])
        slot[0] += d
        slot[1] += f
    done = sum(p[0] for p in points.values())
    failed = sum(p[1] for p in points.values())
    return {
        "since": (minutes[0] + 1) * 60,  # NOTE: the first minute's sample is the base: counting starts after it
        "done": done,
        "failed": failed,
        "bucket_minutes": bucket,
        "points": [{"t": t, "done": p[0], "failed": p[1]} for t, p in sorted(points.items())],
    }


def _diff(before: Mapping[str, list[int]], after: Mapping[str, list[int]]) -> tuple[int, int]:
    """Counts between two samples; a counter that went down (stats reset by hand) counts from zero."""
    done = failed = 0
    for queue, (d, f) in after.items():
        d0, f0 = before.get(queue, [0, 0])
        done += d - d0 if d >= d0 else d
        failed += f - f0 if f >= f0 else f
    return done, failed
