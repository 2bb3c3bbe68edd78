"""The overview's recent past: one `stats.snapshot` a second, kept for `WINDOW` seconds, in this process.

NOTE: the samples are a cache of what Redis says, for the chart only; several dashboards each keep their own.
Rates come from the counters in the snapshot (live daemons plus retired totals, so monotonic across daemon
restarts); a drop (stats reset by hand) counts as zero, never as a negative rate.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from wakaq.stats import snapshot

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
            "done_total": q.get("counters", {}).get("done", 0),
            "failed_total": q.get("counters", {}).get("failed", 0),
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


class History:
    """Samples in a background thread; `since(t)` returns the points after `t` for the page's chart."""

    def __init__(self, app: WakaQ, r: redis.Redis, interval: float = INTERVAL, window: float = WINDOW) -> None:
        self.app, self.r, self.interval, self.window = app, r, interval, window
        self.points: deque[dict[str, Any]] = deque(maxlen=max(2, int(window / interval)))
        self.error: str | None = None
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
        point = _point(snapshot(self.app, self.r))
        with self._lock:
            _rates(self.points, point)
            self.points.append(point)

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
