"""`wakaq-scheduler`: enqueue each of the app's schedules at its cron times (UTC), from any number of machines.

Every fire is a claim on `<prefix>:sched:<schedule id>:<slot>` (`SET NX EX`) made in the same Lua script that
pushes the task (`lua/schedule_fire.lua`), so however many schedulers run, each (schedule, slot) fires once.

Terms:
- slot: a fire time of a schedule as unix seconds (the cron time, not the time the scheduler woke up);
- schedule id: a short hash of (cron, queue, task payload), so two schedules of one task never share claims and an
  edited schedule does not inherit the old one's;
- pending: the next slot an entry will fire. After a fire it moves to the schedule's next slot (no drift).

NOTE: slots come from each scheduler's own UTC clock, but the claim key names the slot, not the time of the claim:
schedulers whose clocks disagree by less than half the claim ttl (at least 30 s) still contend for one key; the skew
only decides which of them wins, and shifts the fire by at most the skew.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import secrets
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any

import redis
from croniter import CroniterError, croniter  # type: ignore[import-untyped]
from redis.backoff import NoBackoff
from redis.retry import Retry

from wakaq.connection import describe_redis_error, is_config_failure, redis_py_client
from wakaq.constants import EXIT_OK
from wakaq.exceptions import WakaQError
from wakaq.formats import encode_element
from wakaq.logger import setup_logging

if TYPE_CHECKING:
    from wakaq.app import WakaQ
    from wakaq.queue import Queue
    from wakaq.schedule import CronTask

log = logging.getLogger("wakaq.scheduler")

CLAIM_TTL_MIN = 60  # seconds; also bounds the clock skew tolerated between schedulers (half of it)
CLAIM_TTL_MAX = 7 * 24 * 3600  # a yearly schedule's claim need not live a year
STARTUP_GRACE = 5.0  # a slot this recent at startup is still tried (a restart during a deploy); the claim decides
MAX_SLEEP = 10.0  # sleep in chunks so a wall clock step is noticed
BACKOFF_MIN, BACKOFF_MAX = 0.25, 5.0  # retry delays while Redis is unreachable
LIST_COUNT = 3  # fire times shown per schedule by --list

Clock = Callable[[], datetime]
Sleep = Callable[[float], Any]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def scheduler_id() -> str:
    """Stored in each claim it wins: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _as_utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _from_slot(slot: int) -> datetime:
    return datetime.fromtimestamp(slot, timezone.utc)


def format_slot(slot: int) -> str:
    return _from_slot(slot).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass
class Entry:
    """One schedule, resolved against the app: its queue, the exact queue element it pushes, its id."""

    cron: CronTask
    queue: Queue
    element: bytes
    id: str
    pending: int = 0

    @property
    def task_name(self) -> str:
        return self.cron.task_name

    def next_after(self, ts: float) -> int:
        """The first slot strictly after `ts` (slots are whole seconds)."""
        start = _from_slot(math.floor(ts))
        return int(croniter(self.cron.schedule, start).get_next(datetime).timestamp())

    def latest_until(self, ts: float) -> int:
        """The last slot at or before `ts`."""
        start = _from_slot(math.floor(ts) + 1)
        return int(croniter(self.cron.schedule, start).get_prev(datetime).timestamp())

    def claim_ttl(self, slot: int) -> int:
        """Twice the gap to the next slot, within [CLAIM_TTL_MIN, CLAIM_TTL_MAX]."""
        return min(max(2 * (self.next_after(slot) - slot), CLAIM_TTL_MIN), CLAIM_TTL_MAX)

    def late_limit(self, slot: int) -> float:
        """Until when `slot` may still fire: the next slot, or half the claim ttl (whichever is first).

        NOTE: half the ttl, so the winner's claim outlives every late attempt by at least 30 s of clock skew."""
        return min(self.next_after(slot), slot + self.claim_ttl(slot) / 2)

    def describe(self) -> str:
        args = f" args={self.cron.args!r}" if self.cron.args else ""
        kwargs = f" kwargs={self.cron.kwargs!r}" if self.cron.kwargs else ""
        return f"{self.cron.schedule!r} {self.task_name} on queue {self.queue.name}{args}{kwargs} (id {self.id})"


def resolve_queue(app: WakaQ, cron: CronTask) -> Queue:
    """The CronTask's queue, else the task's queue, else the app's default (lowest priority) queue."""
    if cron.queue is not None:
        return app.get_queue(cron.queue, f"schedule {cron.schedule!r} of task {cron.task_name!r}")
    task = app.tasks[cron.task_name]
    return task.queue if task.queue is not None else app.default_queue


def schedule_id(cron: CronTask, queue: Queue, element: bytes) -> str:
    digest = hashlib.sha256(b"\0".join([cron.schedule.encode(), queue.name.encode(), element]))
    return digest.hexdigest()[:12]


def build_entries(app: WakaQ) -> list[Entry]:
    """Check the app's schedules and resolve them; WakaQError naming the culprit on any problem."""
    if not app.schedules:
        raise WakaQError("no schedules: the app's `schedules` is empty, so the scheduler has nothing to do")
    app.validate_schedules()
    return [_build_entry(app, cron) for cron in app.schedules]


def _build_entry(app: WakaQ, cron: CronTask) -> Entry:
    cron.validate_cron()
    queue = resolve_queue(app, cron)
    try:
        element = encode_element(app, cron.task_name, cron.args, cron.kwargs)
    except TypeError as e:
        raise WakaQError(f"args/kwargs of schedule {cron.schedule!r} of task {cron.task_name!r}: {e}") from None
    entry = Entry(cron, queue, element, schedule_id(cron, queue, element))
    try:
        entry.next_after(utc_now().timestamp())
    except CroniterError as e:
        raise WakaQError(f"cron {cron.schedule!r} of task {cron.task_name!r} never fires: {e}") from None
    return entry


def next_fires(entry: Entry, after: datetime, count: int = LIST_COUNT) -> list[int]:
    slots: list[int] = []
    ts = after.timestamp()
    for _ in range(count):
        ts = entry.next_after(ts)
        slots.append(int(ts))
    return slots


def list_schedules(app: WakaQ, out: IO[str], count: int = LIST_COUNT, now: datetime | None = None) -> None:
    """Print every schedule with its next `count` fire times (no Redis needed)."""
    after = _as_utc(now or utc_now())
    for entry in build_entries(app):
        out.write(entry.describe() + "\n")
        for slot in next_fires(entry, after, count):
            out.write(f"    {format_slot(slot)}\n")


class Scheduler:
    """The scheduler loop. `clock` and `sleep` are injectable so tests can drive it without waiting.

    `sleep(seconds)` may return early (the loop re-reads the clock); the default sleeps on the stop event.
    """

    def __init__(
        self,
        app: WakaQ,
        *,
        clock: Clock = utc_now,
        sleep: Sleep | None = None,
        client: redis.Redis | None = None,
        ident: str | None = None,
    ) -> None:
        self.app = app
        self.entries = build_entries(app)
        self.ident = ident or scheduler_id()
        self._clock = clock
        self._stop = threading.Event()
        self._sleep: Sleep = sleep or self._stop.wait
        self._own_client = client is None
        self.client = client or _redis_client(app)
        self._outage_since: float | None = None
        self._backoff = BACKOFF_MIN
        self._last_now = 0.0

    # ---- control --------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to return (safe from a signal handler or another thread)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Fire due slots until `stop()`."""
        self._plan(self._now())
        log.info("scheduler %s started with %d schedule(s)", self.ident, len(self.entries))
        try:
            self._check_connection()
            while not self.stopping:
                self.step()
        finally:
            if self._own_client:
                self.client.close()
        log.info("scheduler %s stopped", self.ident)

    def step(self) -> None:
        """One turn of the loop: notice clock steps, skip stale slots, fire what is due, sleep until the next."""
        now = self._now()
        self._check_clock(now)
        for entry in self.entries:
            self._catch_up(entry, now)
        due = [e for e in self.entries if e.pending <= now]
        if due and not self._fire_all(due, now):
            self._sleep(self._backoff_delay(now))
            return
        if not self.stopping:
            self._sleep(self._delay_until_next(self._now()))

    # ---- steps ----------------------------------------------------------------------------------------------

    def _now(self) -> float:
        return _as_utc(self._clock()).timestamp()

    def _plan(self, now: float) -> None:
        """First slots: a slot that came due within STARTUP_GRACE is still tried; older ones are not replayed."""
        for entry in self.entries:
            latest = entry.latest_until(now)
            entry.pending = latest if now - latest < STARTUP_GRACE else entry.next_after(now)
        self._last_now = now

    def _check_clock(self, now: float) -> None:
        """The wall clock went back (NTP step, VM restore): plan again from now; claims prevent double fires."""
        if now < self._last_now - 1:
            log.warning("clock went back by %.1fs; planning the next fires again", self._last_now - now)
            self._plan(now)
        self._last_now = now

    def _catch_up(self, entry: Entry, now: float) -> None:
        """Behind (paused, Redis outage): fire only the latest due slot, and only before its late limit."""
        if entry.pending > now:
            return
        latest = entry.latest_until(now)
        if now >= entry.late_limit(latest):
            latest = entry.next_after(now)
        if latest != entry.pending:
            log.warning(
                "not replaying missed slot(s) of %s from %s; next: %s",
                entry.describe(),
                format_slot(entry.pending),
                format_slot(latest),
            )
            entry.pending = latest

    def _check_connection(self) -> None:
        """PING once at start, so a wrong password or TLS setting shows now rather than at the first fire (which may
        be hours away). A failure is logged like any outage; the loop keeps retrying at fire times."""
        try:
            self.client.ping()
        except (redis.RedisError, OSError) as e:
            self._outage(e, self._now())

    def _fire_all(self, due: list[Entry], now: float) -> bool:
        """Fire every due entry; False when Redis is unreachable (the unfired ones stay pending)."""
        for entry in sorted(due, key=lambda e: e.pending):
            try:
                won = self._fire(entry)
            except (redis.RedisError, OSError) as e:
                self._outage(e, now)
                return False
            self._recovered(now)
            self._log_fire(entry, won, now)
            entry.pending = entry.next_after(entry.pending)
        return True

    def _fire(self, entry: Entry) -> bool:
        """Claim the slot and push, in one script of the Rust broker (fire.lua): one fire per slot however many
        schedulers run."""
        slot = entry.pending
        ttl = entry.claim_ttl(slot)
        return bool(self.app.broker.fire(entry.id, str(slot), self.ident, ttl, entry.queue.name, entry.element))

    def _log_fire(self, entry: Entry, won: bool, now: float) -> None:
        slot = entry.pending
        late = f" ({now - slot:.1f}s late)" if now - slot >= 1 else ""
        if won:
            log.info(
                "fired %s on queue %s for slot %s (%d)%s",
                entry.task_name,
                entry.queue.name,
                format_slot(slot),
                slot,
                late,
            )
        else:
            log.debug("slot %s (%d) of %s already fired by another scheduler", format_slot(slot), slot, entry.task_name)

    def _outage(self, error: BaseException, now: float) -> None:
        if self._outage_since is None:
            self._outage_since = now
            self._backoff = BACKOFF_MIN
            # NOTE: any Redis error counts (also READONLY during a failover, or NOAUTH): retrying is right for all;
            # credentials and TLS problems are logged as errors, as only a human fixes them.
            what = describe_redis_error(error, self.app.url)
            level = logging.ERROR if is_config_failure(what) else logging.WARNING
            log.log(level, "Redis is unreachable: %s; retrying, due slots fire when it is back", what)
        else:
            self._backoff = min(self._backoff * 2, BACKOFF_MAX)

    def _recovered(self, now: float) -> None:
        if self._outage_since is not None:
            log.info("Redis is reachable again after %.1fs", now - self._outage_since)
            self._outage_since = None

    def _backoff_delay(self, now: float) -> float:
        return min([self._backoff] + [e.pending - now for e in self.entries if e.pending > now])

    def _delay_until_next(self, now: float) -> float:
        return max(0.0, min(min(e.pending for e in self.entries) - now, MAX_SLEEP))


def _redis_client(app: WakaQ) -> redis.Redis:
    # NOTE: one immediate retry (a pooled connection that died with a Redis restart), not redis-py's default of
    # 10 with backoff: the loop has its own backoff and must get back to the clock.
    # The fire script may be resent safely: its SET NX claim makes a second run a no-op.
    return redis_py_client(app, retry=Retry(NoBackoff(), 1))


# ---- process entry point ------------------------------------------------------------------------------------


def run_scheduler(app: WakaQ, *, list_only: bool = False, count: int = LIST_COUNT, out: IO[str] | None = None) -> int:
    """`wakaq-scheduler`: run until SIGINT/SIGTERM (returns 0), or with `list_only` print the next fire times.

    Startup problems (no schedules, bad cron, unknown task or queue, unencodable args) raise WakaQError naming the
    culprit before anything runs; the command line prints it as one line."""
    if list_only:
        list_schedules(app, out or sys.stdout, count)
        return EXIT_OK
    scheduler = Scheduler(app)
    setup_logging(app.scheduler_log_level, file=app.scheduler_log_file)
    # NOTE: the default scheduler level is DEBUG (WakaQ's); redis-py's own debug chatter is not ours to show.
    logging.getLogger("redis").setLevel(max(logging.INFO, app.scheduler_log_level))
    _install_signal_handlers(scheduler)
    scheduler.run()
    return EXIT_OK


def _install_signal_handlers(scheduler: Scheduler) -> None:
    def handle(signum: int, _frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        scheduler.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handle)


__all__ = ["Entry", "Scheduler", "build_entries", "list_schedules", "resolve_queue", "run_scheduler"]
