"""One campaign run: start the cluster, drive the seeded load and fault schedule, wait for quiet, check.

`run(settings, tmp)` returns the verdict and a printable report (settings, fault timeline, tally, evidence, and
the first errors from the worker logs); it stops every process it started before it returns or raises."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import redis

from wakaq import WakaQ

from . import oracle
from .app import RUNS, build
from .cluster import Cluster
from .generator import Generator
from .settings import Settings

#: faults that are a standing condition, not an event on the schedule
STANDING = ("skew",)
LOG_LINES = 16
#: worker log lines worth quoting: errors, warnings, and the last line of a traceback
EVIDENCE_LINE = re.compile(r" (ERROR|WARNING|CRITICAL)[: ]|^\w+(Error|Exception|Exit)\b")
#: worker log errors the campaign causes on purpose (not evidence of anything)
EXPECTED_ERRORS = ("cancelled by admin", "Flaky: attempt")
#: rate-limited tasks sent right before every daemon is redeployed without limits ("unlimit")
UNLIMIT_BURST = 20


def fault_schedule(settings: Settings, rng: random.Random) -> list[tuple[float, str, int]]:
    """(offset in seconds, fault, pick) for the load phase: a fault every 4-10 s from 3 s in, none in the last 3 s."""
    events = sorted(f for f in settings.faults if f not in STANDING)
    out: list[tuple[float, str, int]] = []
    t = 3.0
    while events and t < settings.load - 3.0:
        out.append((t, rng.choice(events), rng.randrange(1 << 16)))
        t += rng.uniform(4.0, 10.0)
    return out


def run(settings: Settings, tmp: Path) -> tuple[oracle.Verdict, str]:
    schedule = fault_schedule(settings, random.Random(f"faults-{settings.seed}"))
    cluster = Cluster(tmp, settings, random.Random(f"cluster-{settings.seed}"))
    client: redis.Redis | None = None
    try:
        cluster.start()
        client = redis.Redis.from_url(cluster.url, socket_timeout=5, socket_connect_timeout=5)
        app = build(cluster.url, socket_timeout=5.0, socket_connect_timeout=5.0)
        gen = Generator(app, client, random.Random(f"ops-{settings.seed}"), settings.features)
        _load(settings, cluster, gen, schedule)
        cluster.log(f"load over: {len(gen.ledger.sent)} items sent; quiet period (at most {settings.quiet:g}s)")
        cluster.settle()
        quiet = _wait_quiet(client, app, cluster, settings)
        cluster.log(f"quiet: {quiet}")
        verdict = oracle.check(client, app, gen.ledger, settings.seed, cluster.spawned)
        return verdict, _report(settings, cluster, gen, verdict)
    finally:
        if client is not None:
            client.close()
        cluster.close()


def _load(settings: Settings, cluster: Cluster, gen: Generator, schedule: list[tuple[float, str, int]]) -> None:
    start = time.monotonic()
    end = start + settings.load
    interval = 1.0 / settings.rate
    step = 0
    while time.monotonic() < end:
        gen.step()
        cluster.tick()
        while schedule and time.monotonic() - start >= schedule[0][0]:
            _, fault, pick = schedule.pop(0)
            if fault == "unlimit":
                gen.burst("throttled", UNLIMIT_BURST)
                time.sleep(0.5)  # NOTE: time for the claims to park what has no budget
            cluster.inject(fault, pick)
        step += 1
        time.sleep(max(0.0, start + step * interval - time.monotonic()))
    gen.run_cancels(everything=True)


def _pending(r: redis.Redis, app: WakaQ) -> int:
    k = app.keys
    total = sum(int(r.llen(k.queue(q.name))) + int(r.zcard(k.eta(q.name))) for q in app.queues)
    total += sum(int(r.hlen(key)) for key in r.scan_iter(k.inflight("*")))
    total += sum(int(r.llen(key)) for key in r.scan_iter(k.parked("*", "*")))
    return total


def _wait_quiet(r: redis.Redis, app: WakaQ, cluster: Cluster, settings: Settings) -> str:
    """Poll until nothing is pending and the runs and failure records stopped changing for two heartbeat timeouts
    (dead daemons reaped meanwhile), or the quiet period is over."""
    stable = 2 * settings.heartbeat + 1.0
    deadline = time.monotonic() + settings.quiet
    last: tuple[int, ...] | None = None
    since = time.monotonic()
    while True:
        cluster.tick()
        try:
            failed = sum(int(r.llen(key)) for key in r.scan_iter(app.keys.failed("*")))
            pending = _pending(r, app)
            state: tuple[int, ...] | None = (int(r.hlen(RUNS)), failed, pending)
        except redis.RedisError:
            state, pending = None, -1
        now = time.monotonic()
        if state != last:
            last, since = state, now
        if pending == 0 and now - since >= stable:
            return f"settled, {now - since:.1f}s without change"
        if now >= deadline:
            return f"NOT settled: runs, failure records, pending = {last}, last change {now - since:.1f}s ago"
        time.sleep(0.25)


def _report(settings: Settings, cluster: Cluster, gen: Generator, verdict: oracle.Verdict) -> str:
    lines = [settings.describe(), *cluster.timeline, *[f"note: {n}" for n in cluster.notes]]
    errors = gen.ledger.errors
    if errors:
        lines.append(f"{len(errors)} sends raised (counted uncertain), first: {errors[0]}")
    outcomes: dict[str, int] = {}
    for item in gen.ledger.sent.values():
        if item.cancel:
            outcomes[item.cancel] = outcomes.get(item.cancel, 0) + 1
    if outcomes:
        lines.append("cancel outcomes: " + ", ".join(f"{k}={n}" for k, n in sorted(outcomes.items())))
    lines.append(verdict.report())
    if not verdict.ok:
        lines += _log_errors(cluster)
    return "\n".join(lines)


def _log_errors(cluster: Cluster) -> list[str]:
    """The first unexpected ERROR lines of the worker logs, each kind once (the workers' side of the evidence)."""
    out: list[str] = []
    seen: set[str] = set()
    for name, text in cluster.worker_logs().items():
        for line in text.splitlines():
            if not EVIDENCE_LINE.search(line) or any(e in line for e in EXPECTED_ERRORS):
                continue
            kind = re.sub(r"\d+", "N", line.split("] ", 1)[-1])[:60]
            if kind in seen:
                continue
            seen.add(kind)
            out.append(f"  log {name}: {line[:300]}")
            if len(out) >= LOG_LINES:
                return out
    return out
