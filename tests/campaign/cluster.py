"""The processes of a campaign: an AOF redis-server, the TCP proxy the daemons connect through, 2-3 worker
daemons, and the faults injected into them. `close()` stops every process it started, whatever happened."""

from __future__ import annotations

import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults.proxy import Proxy
from tests.redis_server import RedisServer
from tests.workers import Worker, child_pids

from .settings import Settings

APP = "tests.campaign.app.wakaq"
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
#: how far the skewed daemon's wall clock is behind (libfaketime's FAKETIME syntax)
SKEW = "-300"
#: stop_kill: seconds between the SIGCONT and the kill -9 (the continued daemon claims meanwhile)
STOP_KILL_AFTER = 2.0


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks): tells a pid from a later process reusing it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2 :].split()[19])


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


@dataclass
class Daemon:
    slot: int
    worker: Worker
    limited: bool
    skewed: bool
    stopped_until: float | None = None
    kill_at: float | None = None  # stop_kill: when to kill -9 it after its SIGCONT

    @property
    def running(self) -> bool:
        return self.worker.proc.poll() is None and self.stopped_until is None


@dataclass
class Cluster:
    tmp: Path
    settings: Settings
    rng: random.Random
    server: RedisServer | None = None
    proxy: Proxy | None = None
    daemons: list[Daemon] = field(default_factory=list)
    retired: list[Daemon] = field(default_factory=list)
    #: every worker process seen, with its start time, so `close()` kills exactly those (pids get reused)
    seen: dict[int, int] = field(default_factory=dict)
    timeline: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    spawned: int = 0

    # ---- start and stop -----------------------------------------------------------------------------------

    def start(self) -> None:
        data = self.tmp / "redis"
        data.mkdir(exist_ok=True)
        self.server = RedisServer("--appendonly", "yes", "--appendfsync", "always", "--save", "", dir=str(data))
        self.server.start()
        if "proxy_reset" in self.settings.faults:
            self.proxy = Proxy(self.server.port)
        skewed = -1
        if "skew" in self.settings.faults:
            if not Path(LIBFAKETIME).exists():
                self.notes.append(f"skew off: {LIBFAKETIME} is missing (apt-get install faketime)")
            elif _uptime() < 2 * abs(float(SKEW)):
                self.notes.append(
                    f"skew off: uptime {_uptime():.0f}s, a monotonic clock shifted by {SKEW}s would be < 0"
                )
            else:
                skewed = self.rng.randrange(self.settings.daemons)
        for slot in range(self.settings.daemons):
            self.daemons.append(self._spawn(slot, limited=True, skewed=slot == skewed))
        for d in self.daemons:
            d.worker.wait_ready(children=self.settings.concurrency, timeout=60)
            self._note_pids(d)
            if d.skewed:
                self.log(f"{d.worker.log.stem} (pid {d.worker.pid}) runs with its clocks {SKEW}s off (libfaketime)")

    @property
    def url(self) -> str:
        """Where the test's own clients connect: Redis itself, never through the proxy."""
        assert self.server is not None
        return self.server.url

    @property
    def worker_url(self) -> str:
        return self.proxy.url if self.proxy is not None else self.url

    def _spawn(self, slot: int, limited: bool, skewed: bool) -> Daemon:
        self.spawned += 1
        prefix: list[str] = []
        if skewed:
            # NOTE: `env` execs, so the pid is the daemon's. WARN: FAKETIME_DONT_FAKE_MONOTONIC=1 (libfaketime 0.9.10,
            # Debian bookworm) makes every clock_nanosleep fail with EINVAL (Python's time.sleep), so the monotonic
            # clock is shifted by the same constant: harmless for durations, and uptime is checked to exceed it.
            prefix = ["env", f"LD_PRELOAD={LIBFAKETIME}", f"FAKETIME={SKEW}"]
        os.environ["WAKAQ_CAMPAIGN_RECORD_URL"] = self.url
        if limited:
            os.environ.pop("WAKAQ_CAMPAIGN_QUEUE_RATE", None)
            os.environ.pop("WAKAQ_CAMPAIGN_TASK_RATE", None)
        else:
            os.environ["WAKAQ_CAMPAIGN_QUEUE_RATE"] = ""
            os.environ["WAKAQ_CAMPAIGN_TASK_RATE"] = ""
        try:
            worker = Worker(
                self.tmp,
                self.worker_url,
                name=f"daemon{self.spawned}-slot{slot}",
                app=APP,
                prefix=prefix,
                concurrency=self.settings.concurrency,
                heartbeat=self.settings.heartbeat,
                log_level="DEBUG",
            )
        finally:
            for key in ("WAKAQ_CAMPAIGN_RECORD_URL", "WAKAQ_CAMPAIGN_QUEUE_RATE", "WAKAQ_CAMPAIGN_TASK_RATE"):
                os.environ.pop(key, None)
        self.seen[worker.pid] = start_time(worker.pid) or 0
        return Daemon(slot, worker, limited, skewed)

    def _note_pids(self, d: Daemon) -> None:
        for pid in [d.worker.pid, *child_pids(d.worker.pid)]:
            if pid not in self.seen:
                self.seen[pid] = start_time(pid) or 0

    def close(self) -> None:
        everyone = self.daemons + self.retired
        for d in everyone:
            if d.stopped_until is not None and d.worker.proc.poll() is None:
                os.kill(d.worker.pid, signal.SIGCONT)
            self._note_pids(d)
        for d in everyone:
            try:
                d.worker.stop()
            except Exception as e:  # NOTE: keep stopping the others
                self.notes.append(f"stopping {d.worker.log.name}: {e}")
        for pid, started in self.seen.items():
            if alive(pid) and start_time(pid) == started:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.proxy is not None:
            self.proxy.close()
        if self.server is not None:
            self.server.stop(kill=True)

    # ---- faults -------------------------------------------------------------------------------------------

    def log(self, text: str) -> None:
        self.timeline.append(f"t={time.monotonic() - self.started:6.1f}s {text}")

    def tick(self) -> None:
        """SIGCONT the daemons whose stop is over."""
        now = time.monotonic()
        for d in self.daemons:
            if d.stopped_until is not None and now >= d.stopped_until:
                if d.worker.proc.poll() is None:
                    os.kill(d.worker.pid, signal.SIGCONT)
                d.stopped_until = None
                self.log(f"SIGCONT {d.worker.log.stem} (pid {d.worker.pid})")
                if d.kill_at is not None:
                    d.kill_at = now + STOP_KILL_AFTER
        for d in list(self.daemons):
            if d.kill_at is not None and d.stopped_until is None and now >= d.kill_at:
                d.kill_at = None
                self._kill_daemon(d)

    def inject(self, fault: str, pick: int) -> None:
        """Inject `fault`; `pick` (from the seed) chooses the daemon or child it hits."""
        running = [d for d in self.daemons if d.running]
        if fault == "redis_restart":
            assert self.server is not None
            self.server.stop(kill=True)
            self.server.start(timeout=30)
            self.log("redis-server kill -9, restarted (AOF)")
            return
        if fault == "proxy_reset":
            assert self.proxy is not None
            self.log(f"proxy reset {self.proxy.cut()} connections")
            return
        if fault == "kill_child":
            running = [d for d in running if d.worker.children()]
        if not running:
            self.log(f"{fault} skipped: no running daemon{' with children' if fault == 'kill_child' else ''}")
            return
        d = running[pick % len(running)]
        self._note_pids(d)
        name = f"{d.worker.log.stem} (pid {d.worker.pid})"
        if fault == "kill_child":
            children = d.worker.children()
            child = sorted(children)[pick % len(children)]
            _kill(child)
            self.log(f"kill -9 child {child} of {name}")
        elif fault == "stop_kill":
            os.kill(d.worker.pid, signal.SIGSTOP)
            d.stopped_until = time.monotonic() + self.settings.heartbeat + 3.0
            d.kill_at = d.stopped_until + STOP_KILL_AFTER
            pause = self.settings.heartbeat + 3.0
            self.log(f"SIGSTOP {name} for {pause:g}s, then kill -9 of it {STOP_KILL_AFTER:g}s after its SIGCONT")
        elif fault in ("kill_parent", "kill_daemon"):
            children = child_pids(d.worker.pid) if fault == "kill_daemon" else []
            _kill(d.worker.pid)
            for child in children:
                _kill(child)
            self.log(f"kill -9 {'parent and children' if children else 'parent'} of {name}")
            self._replace(d, d.limited)
        elif fault == "sigstop":
            os.kill(d.worker.pid, signal.SIGSTOP)
            d.stopped_until = time.monotonic() + self.settings.heartbeat + 3.0
            self.log(f"SIGSTOP {name} for {self.settings.heartbeat + 3.0:g}s")
        elif fault == "unlimit":
            # NOTE: a config change reaches every daemon of a deploy; whatever is parked then has no limited claimer
            for each in running:
                each.worker.signal(signal.SIGTERM)
                self.log(f"SIGTERM {each.worker.log.stem} (pid {each.worker.pid}): redeployed without rate limits")
                self._replace(each, limited=False)

    def _kill_daemon(self, d: Daemon) -> None:
        self._note_pids(d)
        children = child_pids(d.worker.pid)
        for pid in [d.worker.pid, *children]:
            _kill(pid)
        self.log(f"kill -9 parent and children of {d.worker.log.stem} (pid {d.worker.pid})")
        self._replace(d, d.limited)

    def _replace(self, d: Daemon, limited: bool) -> None:
        self.daemons.remove(d)
        self.retired.append(d)
        new = self._spawn(d.slot, limited=limited, skewed=d.skewed)
        self.daemons.append(new)
        self.log(f"started {new.worker.log.stem} (pid {new.worker.pid}{', no limits' if not limited else ''})")

    def settle(self) -> None:
        """End of the load: every stopped daemon continued, every dead one replaced (same limits)."""
        for d in list(self.daemons):
            if d.stopped_until is not None:
                d.stopped_until = time.monotonic()
            if d.kill_at is not None:
                d.kill_at = time.monotonic()
        self.tick()
        self.tick()
        for d in list(self.daemons):
            if d.worker.proc.poll() is not None:
                self._replace(d, d.limited)
        for d in self.daemons:
            try:
                d.worker.wait_ready(children=1, timeout=30)
            except AssertionError as e:
                self.notes.append(f"{d.worker.log.stem} not ready at the end: {str(e)[:300]}")
            self._note_pids(d)

    def worker_logs(self) -> dict[str, str]:
        return {d.worker.log.stem: d.worker.log_text() for d in self.daemons + self.retired}


def _uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
