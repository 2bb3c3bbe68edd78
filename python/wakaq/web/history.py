"""The overview's recent past: one `stats.snapshot` a second, kept for `WINDOW` seconds, in this process; each
sample also lands in the per-minute history in Redis (`minutes.py`).

NOTE: the samples are a cache of what Redis says, for the chart only; several dashboards each keep their own.
Rates come from the counters in the snapshot (live daemons plus retired totals, so monotonic across daemon
restarts); a drop (stats reset by hand) counts as zero, never as a negative rate.

Queue latency (the age of the oldest pending task) is estimated from the same counters, as payloads carry no
enqueue time: a queue is first in, first out, so `arrived = started + pending` counts every task that ever entered
it, and its oldest pending task is arrival number `started + 1`; it arrived at the first sample whose `arrived`
reached that. Precision: one sample (1 s) plus the counters' lag (one heartbeat, 2 s by default); tasks pushed to
the front (redeliveries) or parked by a rate limit bend it. Older than the samples kept: reported as at least
the window (`latency_over`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from wakaq.stats import snapshot
from wakaq.web import minutes

if TYPE_CHECKING:
    import redis

    from wakaq.app import WakaQ

log = logging.getLogger("wakaq.web")

INTERVAL = 1.0  # seconds between samples
WINDOW = 600  # seconds of history kept (10 minutes)
RATE_WINDOW = 10.0  # seconds over which done/s and failed/s are computed


def _point(snap: dict[str, Any]) -> dict[str, Any]:
    queues = {
        name: {
            "pending": q["pending_tasks"],
            "eta": q["pending_eta_tasks"],
            "inflight": q["inflight_tasks"],
            "failed": q["failed_tasks"],
            "paused": q.get("paused", False),
            "done_total": q.get("counters", {}).get("done", 0),
            "failed_total": q.get("counters", {}).get("failed", 0),
            "cancelled_total": q.get("counters", {}).get("cancelled", 0),
            "arrived": q.get("counters", {}).get("started", 0) + q["pending_tasks"],
        }
        for name, q in snap["queues"].items()
    }
    daemons = snap.get("daemons", [])
    alive = sum(1 for d in daemons if d.get("alive"))
    return {"t": snap["time"], "queues": queues, "daemons_alive": alive, "daemons_dead": len(daemons) - alive}


def _rates(points: deque[dict[str, Any]], cur: dict[str, Any]) -> None:
    """Adds done/s and failed/s per queue to `cur`, over the last RATE_WINDOW seconds of points.

    NOTE: daemons publish their counters with their heartbeats, every few seconds, not at every sample: a rate
    between two adjacent samples would jump between zero and double. Over a 10 s window it is steady."""
    base = next((p for p in points if cur["t"] - p["t"] <= RATE_WINDOW), None)
    dt = cur["t"] - base["t"] if base else 0.0
    for name, q in cur["queues"].items():
        before = base["queues"].get(name) if base and dt > 0 else None
        for total, rate in (("done_total", "done_rate"), ("failed_total", "failed_rate")):
            q[rate] = max(0, q[total] - before[total]) / dt if before else 0.0


def _latency(points: deque[dict[str, Any]], cur: dict[str, Any]) -> None:
    """Adds `latency` (seconds; None before a second sample) and `latency_over` (True: at least that, the task is
    older than the samples kept) per queue."""
    for name, q in cur["queues"].items():
        q["latency"], q["latency_over"] = 0.0, False
        if q["pending"] <= 0:
            continue
        target = q["arrived"] - q["pending"] + 1  # NOTE: started + 1, the oldest pending task's arrival number
        first = next((p for p in points if p["queues"].get(name, {}).get("arrived", 0) >= target), None)
        if first is None:
            q["latency"] = None if not points else 0.0  # else it arrived since the last sample
            continue
        q["latency"] = max(0.0, cur["t"] - first["t"])
        q["latency_over"] = first is points[0]


class History:
    """Samples in a background thread; `since(t)` returns the points after `t` for the page's chart."""

    def __init__(self, app: WakaQ, r: redis.Redis, interval: float = INTERVAL, window: float = WINDOW) -> None:
        self.app, self.r, self.interval, self.window = app, r, interval, window
        self.points: deque[dict[str, Any]] = deque(maxlen=max(2, int(window / interval)))
        self.error: str | None = None
        self._recorded = False  # whether a sample reached the per-minute history yet
        self._record_failed = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wakaq-web-sampler", daemon=True)

    def start(self) -> History:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def sample(self) -> None:
        """One sample now (also used by tests and at startup)."""
        snap = snapshot(self.app, self.r)
        point = _point(snap)
        with self._lock:
            _rates(self.points, point)
            _latency(self.points, point)
            self.points.append(point)
        self._record(snap)

    def _record(self, snap: dict[str, Any]) -> None:
        """The sample into the per-minute history. NOTE: a failed write (e.g. an ACL user that may only read) loses
        a minute of history, never the live view: logged once, not raised."""
        try:
            minutes.record(self.app, self.r, snap["time"], snap["queues"], first=not self._recorded)
        except Exception as e:
            if not self._record_failed:
                log.warning("cannot write the per-minute history: %s", e)
            self._record_failed = True
            return
        self._recorded, self._record_failed = True, False

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.sample()
                if self.error:
                    log.info("Redis is reachable again")
                self.error = None
            except Exception as e:  # NOTE: the sampler must survive outages; the page shows the error
                if self.error is None:
                    log.warning("cannot read the queues: %s", e)
                self.error = f"{type(e).__name__}: {e}"
            self._stop.wait(max(0.05, self.interval - (time.monotonic() - started)))

    def latest(self) -> dict[str, Any] | None:
        with self._lock:
            return self.points[-1] if self.points else None

    def since(self, t: float) -> list[dict[str, Any]]:
        with self._lock:
            return [p for p in self.points if p["t"] > t]
