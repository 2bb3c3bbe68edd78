"""The dashboard's JSON API: what each page asks for, and the requeue/drop and pause/resume actions.

Every reply is bounded: counts come from LLEN/ZCARD and the snapshot, lists come a page at a time
(`records.py`). Task values reach the page as strings (Python reprs, cut to a bounded length), so no NaN,
bytes or deep structure can break the JSON or the page.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from wakaq.admin import drop_failed
from wakaq.stats import snapshot
from wakaq.web import minutes, records, workflows
from wakaq.web.history import RATE_WINDOW

if TYPE_CHECKING:
    import redis

    from wakaq.app import WakaQ
    from wakaq.scheduler import Entry
    from wakaq.web.history import History

BROADCAST_FAILED = "broadcast"  # the queue name broadcasts are recorded failed under
RECENT_SLOTS = 3  # slots of each schedule checked for their claim (the claim outlives two gaps)
PROGRESS_SAMPLE = 64  # in-flight entries read per daemon for the progress bars of its running tasks


class ApiError(Exception):
    """A request the API refuses: HTTP status and a one-line reason shown on the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Api:
    def __init__(self, app: WakaQ, r: redis.Redis, history: History) -> None:
        self.app, self.r, self.history = app, r, history
        self.entries, self.schedule_error = _entries(app)

    # ---- reads ----------------------------------------------------------------------------------------------

    def overview(self, params: dict[str, str]) -> dict[str, Any]:
        since = _float(params.get("since"), 0.0)
        latest = self.history.latest()
        if latest is None:
            self.history.sample()
            latest = self.history.latest()
        return {
            "app": {"prefix": self.app.keys.prefix, "queues": [q.name for q in self.app.queues]},
            "latest": latest,
            "points": [_chart_point(p) for p in self.history.since(since)],
            "error": self.history.error,
            "window": self.history.window,
            "rate_window": RATE_WINDOW,
            "interval": self.history.interval,
        }

    def per_minute(self, params: dict[str, str]) -> dict[str, Any]:
        """Processed and failed since `since` (unix seconds; default: a day ago) with the counts per minute."""
        latest = self.history.latest()
        now = latest["t"] if latest else time.time()  # NOTE: the Redis clock, as the minutes were recorded
        since = _float(params.get("since"), now - 86_400)
        found = minutes.read(self.app, self.r, since, now)
        return {"now": now, "asked": since, "keep_days": minutes.KEEP_DAYS, **found}

    def daemons(self, params: dict[str, str]) -> dict[str, Any]:
        snap = snapshot(self.app, self.r)
        daemons = [_finite_dict(d) for d in snap["daemons"]]
        found = running_progress(self.app, self.r, [d["id"] for d in daemons if d["alive"]])
        for d in daemons:
            d["progress"] = found.get(d["id"], [])
        return {"time": snap["time"], "daemons": daemons}

    def failed_counts(self) -> dict[str, int]:
        """Failed records per queue (the app's, plus broadcasts when any failed), one pipelined LLEN each."""
        names = [q.name for q in self.app.queues] + [BROADCAST_FAILED]
        pipe: Any = self.r.pipeline(transaction=False)
        for name in names:
            pipe.llen(self.app.keys.failed(name))
        counts = dict(zip(names, pipe.execute(), strict=True))
        if not counts[BROADCAST_FAILED]:
            del counts[BROADCAST_FAILED]
        return counts

    def failed(self, params: dict[str, str]) -> dict[str, Any]:
        counts = self.failed_counts()
        queue = params.get("queue") or next((n for n, c in counts.items() if c), next(iter(counts)))
        if queue not in counts:
            raise ApiError(404, f"no queue named {queue!r}")
        offset, limit = records.clamp_page(params.get("offset"), params.get("limit"))
        page = records.failed_page(self.app, self.r, queue, offset, limit, params.get("q", "").strip()[:200])
        return {**page, "queue": queue, "queues": list(counts), "counts": counts}

    def eta(self, params: dict[str, str]) -> dict[str, Any]:
        pipe: Any = self.r.pipeline(transaction=False)
        for q in self.app.queues:
            pipe.zcard(q.broker_eta_key)
        counts = dict(zip([q.name for q in self.app.queues], pipe.execute(), strict=True))
        queues = list(counts)
        queue = params.get("queue") or next((n for n, c in counts.items() if c), queues[0])
        if queue not in queues:
            raise ApiError(404, f"no queue named {queue!r}")
        offset, limit = records.clamp_page(params.get("offset"), params.get("limit"))
        page = records.eta_page(self.app, self.r, queue, offset, limit, params.get("q", "").strip()[:200])
        return {**page, "queue": queue, "queues": queues, "counts": counts, "now": time.time()}

    def schedules(self, params: dict[str, str]) -> dict[str, Any]:
        now = time.time()
        slots = [_recent_slots(entry, now) for entry in self.entries]
        keys = [self.app.keys.schedule_slot(e.id, s) for e, ss in zip(self.entries, slots, strict=True) for s in ss]
        claims: list[bytes | None] = self.r.mget(keys) if keys else []  # type: ignore[assignment]
        out, i = [], 0
        for entry, recent in zip(self.entries, slots, strict=True):
            mine, i = claims[i : i + len(recent)], i + len(recent)
            fired = next(((s, c) for s, c in zip(recent, mine, strict=True) if c is not None), None)
            out.append(
                {
                    "id": entry.id,
                    "cron": entry.cron.schedule,
                    "task": entry.task_name,
                    "queue": entry.queue.name,
                    "args": records.short_repr(entry.cron.args),
                    "kwargs": records.short_repr(entry.cron.kwargs),
                    "next_fire": entry.next_after(now),
                    "last_fire": fired[0] if fired else None,
                    "fired_by": fired[1].decode(errors="replace") if fired else None,
                }
            )
        return {"now": now, "schedules": out, "error": self.schedule_error}

    def workflows(self, params: dict[str, str]) -> dict[str, Any]:
        """Recent workflows, newest first (web/workflows.py)."""
        return workflows.recent(self.app, self.r, params)

    def workflow(self, params: dict[str, str]) -> dict[str, Any]:
        """One workflow and a page of its steps."""
        try:
            return workflows.detail(self.app, self.r, params)
        except workflows.NoWorkflow as e:
            raise ApiError(404, str(e)) from None

    # ---- actions --------------------------------------------------------------------------------------------

    def workflow_cancel(self, body: dict[str, Any]) -> dict[str, Any]:
        """Cancel a running workflow (`cancel.cancel_workflow`): no later step starts, its queued steps are removed;
        running steps finish unless `terminate`."""
        from wakaq.cancel import Outcome, cancel_workflow
        from wakaq.ids import is_workflow_id

        wf_id, terminate = body.get("id"), body.get("terminate", False)
        if not isinstance(wf_id, str) or not is_workflow_id(wf_id) or not isinstance(terminate, bool):
            raise ApiError(400, "expected {id: a workflow id, terminate: optional bool}")
        if cancel_workflow(self.app, wf_id, terminate, self.r) != Outcome.CANCELLED:
            status = self.r.hget(self.app.keys.workflow(wf_id), "status")
            now = "expired or unknown" if status is None else f"{status.decode(errors='replace')}"  # type: ignore[union-attr]
            raise ApiError(409, f"workflow {wf_id} is not running ({now})")
        return {"cancelled": wf_id}

    def failed_action(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        queue = body.get("queue")
        if not isinstance(queue, str) or queue not in self.failed_counts():
            raise ApiError(404, f"no failed list for queue {queue!r}")
        if body.get("all") is True:
            if action == "requeue":
                return records.requeue_all(self.app, self.r, queue)
            return drop_failed(self.app, self.r, [queue])
        rid, index = body.get("id"), body.get("index")
        if not isinstance(rid, str) or not isinstance(index, int):
            raise ApiError(400, "expected {queue, id, index} or {queue, all: true}")
        raw = records.find_record(self.app, self.r, queue, rid, index)
        if raw is None:
            raise ApiError(404, "this record is gone or moved far (another action or many new failures); reload")
        if action == "drop":
            return {"dropped": self.app.broker.drop_failed([queue], raw)}
        why = records.requeue_one(self.app, self.r, queue, raw)
        if why is not None:
            raise ApiError(409, why)
        return {"requeued": 1}

    def pause_action(self, pausing: bool, body: dict[str, Any]) -> dict[str, Any]:
        """Pause or resume a queue of the app on every daemon (`WakaQ.pause`): {queue, paused, changed}."""
        queue = body.get("queue")
        if not isinstance(queue, str) or queue not in self.app.queues_by_name:
            raise ApiError(404, f"no queue named {queue!r}")
        changed = self.app.pause(queue) if pausing else self.app.resume(queue)
        self.history.sample()  # NOTE: the overview shows the new state at its next poll, not a second later
        return {"queue": queue, "paused": pausing, "changed": changed}


def running_progress(app: WakaQ, r: redis.Redis, daemon_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The last progress report of each task in flight on these daemons that made one (`current_task.set_progress`):
    daemon -> [{pid, task, id, done, total, percent, info}], info values as bounded reprs. Two pipelined round trips,
    bounded: at most PROGRESS_SAMPLE in-flight entries per daemon (a random sample when it holds more)."""
    if not daemon_ids:
        return {}
    from wakaq._wakaq import decode_task_meta, split_element
    from wakaq.results import read_progress

    pipe: Any = r.pipeline(transaction=False)
    for daemon in daemon_ids:
        pipe.hrandfield(app.keys.inflight(daemon), PROGRESS_SAMPLE, withvalues=True)
    running: list[tuple[str, str, str, str]] = []  # (daemon, pid, task name, id)
    for daemon, sample in zip(daemon_ids, pipe.execute(), strict=True):
        sample = sample or []
        for field, entry in zip(sample[::2], sample[1::2], strict=True):
            payload = split_element(entry.partition(b"\n")[2])[1]
            if b"meta" not in payload:  # NOTE: a plain task has no id to report progress by
                continue
            try:
                name, _, _, _, meta = decode_task_meta(payload)
            except ValueError:
                continue
            if isinstance(meta, dict) and isinstance(meta.get("id"), str):
                running.append((daemon, field.decode(errors="replace").partition(":")[0], name, meta["id"]))
    if not running:
        return {}
    pipe = r.pipeline(transaction=False)
    for *_, task_id in running:
        pipe.hgetall(app.keys.progress(task_id))
    out: dict[str, list[dict[str, Any]]] = {}
    for (daemon, pid, name, task_id), raw in zip(running, pipe.execute(), strict=True):
        found = read_progress(raw)
        if found is not None:
            out.setdefault(daemon, []).append(_progress_row(pid, name, task_id, found))
    return out


def _progress_row(pid: str, name: str, task_id: str, found: dict[str, Any]) -> dict[str, Any]:
    done, total = _number(found["done"]), _number(found["total"])
    percent = None if done is None or not total else max(0.0, min(100.0, 100.0 * done / total))
    info = found["info"] if isinstance(found["info"], dict) else {}
    return {
        "pid": pid,
        "task": name,
        "id": task_id,
        "done": done,
        "total": total,
        "percent": percent,
        "info": {str(k)[:100]: records.short_repr(v, 200) for k, v in list(info.items())[:20]},
        "at": found["at"],
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # NOTE: an int past a float's range
        return None
    return number if math.isfinite(number) else None


def _entries(app: WakaQ) -> tuple[list[Entry], str | None]:
    if not app.schedules:
        return [], None
    from wakaq.scheduler import build_entries

    try:
        return build_entries(app), None
    except Exception as e:  # NOTE: a broken schedule is shown on its page; the rest of the dashboard works
        return [], f"{type(e).__name__}: {e}"


def _recent_slots(entry: Entry, now: float) -> list[int]:
    slots = [entry.latest_until(now)]
    for _ in range(RECENT_SLOTS - 1):
        slots.append(entry.latest_until(slots[-1] - 1))
    return slots


def _chart_point(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "t": p["t"],
        "queues": {
            n: {
                "pending": q["pending"],
                "latency": q["latency"],
                "done_rate": q["done_rate"],
                "failed_rate": q["failed_rate"],
            }
            for n, q in p["queues"].items()
        },
    }


def _float(value: Any, default: float) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return default
    return f if math.isfinite(f) else default


def _finite_dict(d: dict[str, Any]) -> dict[str, Any]:
    """Replace non-finite floats (JSON has no NaN) in a snapshot entry."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        elif isinstance(v, list):
            v = [_finite_dict(x) if isinstance(x, dict) else x for x in v]
        out[k] = v
    return out
