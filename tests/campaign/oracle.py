"""The checker, run once the system is quiet (in the spirit of Jepsen's checkers): reads Redis and the ledger of
what was sent, and lists every violation with its evidence.

Per tid: it ran at least once (a `campaign:runs` field), or it is recorded terminal (a failure record naming it,
with a non-empty reason; a cancelled one is such a record), never neither (`lost`); a broadcast, by every daemon it
was handed to (a run names its daemon). Result records agree with the
runs; no unique lock, parked task or pending work is left; every key matches the documented layout (`layout.py`) and
every key without a TTL is allowed one and within its bound."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import redis

from wakaq import WakaQ, _wakaq
from wakaq.exceptions import PayloadError
from wakaq.results import FINAL

from . import layout
from .app import BACKOFF, BACKOFF_MAX, RUNS, TIMES
from .generator import RUN, Ledger, Sent

#: evidence lines kept per check
EVIDENCE = 10
#: seconds a start may precede its due time or backoff floor (clock reads and Redis round trips)
EARLY_SLACK = 0.1


@dataclass
class Failure:
    reason: str
    key: str


@dataclass
class Verdict:
    seed: int
    sent: int = 0
    done: int = 0
    duplicates: int = 0
    recorded: int = 0
    lost: int = 0
    uncertain: int = 0
    stale_locks: int = 0
    parked: int = 0
    stuck: int = 0
    open_results: int = 0
    result_mismatch: int = 0
    stray_keys: int = 0
    unbounded: int = 0
    orphans: int = 0
    early: int = 0
    malformed_ran: int = 0
    evidence: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def note(self, check: str, line: str) -> None:
        if len(self.evidence[check]) < EVIDENCE:
            self.evidence[check].append(line)

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.stale_locks
            or self.parked
            or self.stuck
            or self.open_results
            or self.result_mismatch
            or self.stray_keys
            or self.unbounded
            or self.orphans
            or self.early
            or self.malformed_ran
        )

    def tally(self) -> str:
        return (
            f"seed={self.seed} sent={self.sent} done={self.done} duplicates={self.duplicates} "
            f"recorded={self.recorded} lost={self.lost} stale_locks={self.stale_locks} stray_keys={self.stray_keys} "
            f"parked={self.parked} stuck={self.stuck} open_results={self.open_results} "
            f"result_mismatch={self.result_mismatch} unbounded={self.unbounded} orphans={self.orphans} "
            f"early={self.early} malformed_ran={self.malformed_ran} uncertain={self.uncertain}"
        )

    def report(self) -> str:
        lines = [self.tally()]
        for check, found in self.evidence.items():
            lines += [f"  {check}: {line}" for line in found]
        return "\n".join(lines)


# ---- reading Redis ----------------------------------------------------------------------------------------


def all_keys(r: redis.Redis) -> list[str]:
    return sorted(k.decode(errors="replace") for k in r.scan_iter(count=1000))


def runs(r: redis.Redis) -> dict[int, list[tuple[int, str]]]:
    """tid -> (pid, returned value) of each run."""
    found: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for raw, value in r.hgetall(RUNS).items():
        tid, pid, _token = raw.decode().split(":")
        found[int(tid)].append((int(pid), value.decode()))
    return dict(found)


def _payload(raw: Any) -> bytes:
    if not isinstance(raw, bytes):
        return b""
    if raw[:1] == b"\xc1":
        return _wakaq.split_element(raw)[1]
    return raw


def failures(r: redis.Redis, keys: list[str], failed_keys: list[str], ledger: Ledger) -> dict[int, list[Failure]]:
    """tid -> its failure records (with a reason): by the payload's first argument, else by a malformed item's
    marker bytes inside the record."""
    markers = {item.marker: item.tid for item in ledger.sent.values() if item.marker}
    found: dict[int, list[Failure]] = defaultdict(list)
    for key in failed_keys:
        for raw in r.lrange(key, 0, -1):
            try:
                rec = _wakaq.unpackb(raw)
            except PayloadError:
                continue
            if not isinstance(rec, dict):
                continue
            reason = rec.get("reason")
            if not isinstance(reason, str) or not reason.strip():
                continue
            tid = None
            try:
                _name, args, _kwargs, _retry = _wakaq.decode_task(_payload(rec.get("payload")))
                if args and isinstance(args[0], int) and args[0] in ledger.sent:
                    tid = args[0]
            except PayloadError:
                pass
            if tid is None:
                tid = next((t for m, t in markers.items() if m in raw), None)
            if tid is not None:
                found[tid].append(Failure(reason, key))
    return dict(found)


def where(r: redis.Redis, app: WakaQ, keys: list[str], lost: list[Sent]) -> dict[int, str]:
    """Where the unfinished items sit now: a queue, parked or eta key, or an in-flight hash."""
    found: dict[int, str] = {}
    tids = {i.tid for i in lost}
    markers = {i.marker: i.tid for i in lost if i.marker}

    def look(key: str, elements: list[bytes]) -> None:
        for el in elements:
            body = el.split(b"\n", 1)[1] if key.startswith(app.keys.inflight("")) and b"\n" in el else el
            try:
                _n, args, _k, _r = _wakaq.decode_task(_payload(body))
            except PayloadError:
                args = []
            if args and isinstance(args[0], int) and args[0] in tids:
                found.setdefault(args[0], key)
                continue
            tid = next((t for m, t in markers.items() if m in body), None)
            if tid is not None:
                found.setdefault(tid, key)

    for key in keys:
        kind = r.type(key).decode()
        if kind == "list":
            look(key, r.lrange(key, 0, 9999))
        elif kind == "zset":
            look(key, r.zrange(key, 0, 9999))
        elif kind == "hash" and key.startswith(app.keys.inflight("")):
            look(key, list(r.hvals(key)))
    return found


# ---- the checks -------------------------------------------------------------------------------------------


def check(r: redis.Redis, app: WakaQ, ledger: Ledger, seed: int, daemons_started: int) -> Verdict:
    v = Verdict(seed)
    keys = all_keys(r)
    pats = layout.patterns(app.keys.prefix, [q.name for q in app.queues], app.tasks, app.keys.cluster)
    kinds: dict[str, tuple[str, dict[str, str]]] = {}
    for key in keys:
        if key.startswith("campaign:"):
            continue
        hit = layout.classify(key, pats)
        if hit is None:
            v.stray_keys += 1
            v.note("stray_keys", f"{key} ({r.type(key).decode()}) matches no documented key")
        else:
            kinds[key] = (hit[0].name, hit[1])
    by_kind: dict[str, list[str]] = defaultdict(list)
    for key, (name, _) in kinds.items():
        by_kind[name].append(key)
    ran = runs(r)
    failed = failures(r, keys, by_kind["failed"] + by_kind["broadcast_failed"], ledger)
    _check_tasks(v, r, app, keys, ledger, ran, failed)
    _check_results(v, r, by_kind, ledger, ran)
    _check_leftovers(v, r, by_kind)
    _check_timing(v, r, ledger)
    _check_bounds(v, r, app, kinds, len(ledger.sent), daemons_started)
    return v


def _check_tasks(
    v: Verdict,
    r: redis.Redis,
    app: WakaQ,
    keys: list[str],
    ledger: Ledger,
    ran: dict[int, list[tuple[int, str]]],
    failed: dict[int, list[Failure]],
) -> None:
    lost = []
    for item in ledger.sent.values():
        if item.expect != RUN:
            v.uncertain += item.expect == "uncertain"
            continue
        v.sent += 1
        runs_of = ran.get(item.tid, [])
        if runs_of and item.marker is not None:
            # NOTE: DESIGN.md: a malformed meta is recorded failed and never reaches a child's Python code
            v.malformed_ran += 1
            v.note("malformed_ran", f"tid {item.tid} [{item.feature}: {item.what}] ran {len(runs_of)} times")
        if item.receivers:
            # a broadcast: each daemon it was handed to ran it or recorded it
            daemons = {value for _pid, value in runs_of}
            if len(daemons) + len(failed.get(item.tid, [])) < item.receivers:
                lost.append(item)
            elif runs_of:
                v.done += 1
                v.duplicates += len(runs_of) > len(daemons)
            else:
                v.recorded += 1
        elif runs_of:
            v.done += 1
            v.duplicates += len(runs_of) > 1
        elif failed.get(item.tid):
            v.recorded += 1
        else:
            lost.append(item)
    v.lost = len(lost)
    spots = where(r, app, keys, lost) if lost else {}
    places: dict[str, int] = defaultdict(int)
    for item in lost:
        places[f"{item.feature} in {spots.get(item.tid, 'nowhere')}"] += 1
    if places:
        v.note("lost", "by feature and place now: " + ", ".join(f"{k}: {n}" for k, n in sorted(places.items())))
    for item in lost:
        cancel = f", cancel -> {item.cancel}" if item.cancel else ""
        v.note("lost", f"tid {item.tid} [{item.feature}: {item.what}{cancel}] now: {spots.get(item.tid, 'nowhere')}")


def _check_results(
    v: Verdict, r: redis.Redis, by_kind: dict[str, list[str]], ledger: Ledger, ran: dict[int, list[tuple[int, str]]]
) -> None:
    by_id = {item.task_id: item for item in ledger.sent.values() if item.task_id}
    seen = set()
    for key in by_kind["result"]:
        task_id = key.rsplit(":", 1)[1]
        record = {k.decode(): val for k, val in r.hgetall(key).items()}
        status = record.get("status", b"").decode()
        item = by_id.get(task_id)
        seen.add(task_id)
        who = f"{key} (tid {item.tid} {item.what})" if item else key
        if status not in FINAL:
            v.open_results += 1
            v.note("open_results", f"{who} status {status!r} at the end")
            continue
        if status == "done" and item is not None:
            value = _wakaq.unpackb(record["value"]) if "value" in record else None
            returned = {val for _pid, val in ran.get(item.tid, [])}
            if value not in returned:
                v.result_mismatch += 1
                v.note("result_mismatch", f"{who} done with {value!r}, runs returned {sorted(returned)}")
    for item in ledger.sent.values():
        if item.results and item.expect == RUN and item.task_id and item.task_id not in seen and item.tid in ran:
            v.result_mismatch += 1
            v.note("result_mismatch", f"tid {item.tid} ({item.what}, id {item.task_id}) ran but has no record")


def _check_timing(v: Verdict, r: redis.Redis, ledger: Ledger) -> None:
    """No eta task starts before it is due, no retry before its backoff (both on Redis's clock): a worker whose
    clock is behind must not turn delays into immediate runs (issue 19, defect 8)."""
    times: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for raw, value in r.hgetall(TIMES).items():
        tid, attempt = raw.decode().split(":", 1)[0].split(".")
        times[int(tid)][int(attempt)].append(float(value))
    for item in ledger.sent.values():
        starts = times.get(item.tid, {})
        if item.due is not None and starts.get(0) and min(starts[0]) < item.due - EARLY_SLACK:
            v.early += 1
            v.note("early", f"tid {item.tid} ({item.what}) started {item.due - min(starts[0]):.2f}s before its eta")
        for n in sorted(a for a in starts if a > 0 and a + 1 in starts):
            gap = min(starts[n + 1]) - min(starts[n])
            floor = min(BACKOFF_MAX, BACKOFF * 2 ** (n - 1))
            if gap < floor - EARLY_SLACK:
                v.early += 1
                v.note("early", f"tid {item.tid} ({item.what}) attempt {n + 1} {gap:.2f}s after {n}, backoff {floor}s")


def _check_leftovers(v: Verdict, r: redis.Redis, by_kind: dict[str, list[str]]) -> None:
    for key in by_kind["unique"]:
        v.stale_locks += 1
        v.note("stale_locks", f"{key} held by {r.get(key)!r}, ttl {r.pttl(key)} ms")
    for key in by_kind["parked"]:
        n = r.llen(key)
        v.parked += n
        v.note("parked", f"{key}: {n} tasks parked at the end")
    for kind in ("queue", "eta", "inflight", "broadcast_queue"):
        for key in by_kind[kind]:
            n = _size(r, key)
            if n:
                v.stuck += n
                v.note("stuck", f"{key}: {n} elements left after the quiet period")


def _size(r: redis.Redis, key: str) -> int:
    kind = r.type(key).decode()
    size = {"list": r.llen, "hash": r.hlen, "zset": r.zcard, "set": r.scard}.get(kind)
    return int(size(key)) if size else 1


def _check_bounds(
    v: Verdict, r: redis.Redis, app: WakaQ, kinds: dict[str, tuple[str, dict[str, str]]], sent: int, daemons: int
) -> None:
    registered = {m.decode() for m in r.smembers(app.keys.daemons)}
    for member in registered:
        if not r.exists(app.keys.heartbeat(member)):
            v.orphans += 1
            v.note("orphans", f"daemon {member} registered without a heartbeat at the end (never reaped)")
    for key, (name, parts) in kinds.items():
        daemon = layout.daemon_of(parts)
        if daemon is not None and daemon not in registered and name != "heartbeat":
            v.orphans += 1
            v.note("orphans", f"{key}: key of daemon {daemon}, which is not registered (left behind for ever)")
        ttl = r.pttl(key)
        if ttl >= 0 or ttl == -2:
            continue
        bound = layout.BOUNDS.get(name)
        if bound is None:
            v.unbounded += 1
            v.note("unbounded", f"{key} ({name}) has no TTL")
            continue
        n = _size(r, key)
        if n > bound(sent, daemons):
            v.unbounded += 1
            v.note("unbounded", f"{key} ({name}) holds {n} > bound {bound(sent, daemons)}")
    _check_stats_fields(v, r, app, kinds)


def _check_stats_fields(v: Verdict, r: redis.Redis, app: WakaQ, kinds: dict[str, tuple[str, dict[str, str]]]) -> None:
    """Counter fields are `<counter>\\x1f<queue>\\x1f<task>`: one per task name a payload claimed to be grows with
    the garbage sent, not with the app."""
    names = set(app.tasks) | {"?"}
    for key, (name, _) in kinds.items():
        if name not in ("stats", "stats_retired"):
            continue
        strange = sorted(
            {f.decode(errors="replace").split("\x1f")[-1] for f in r.hkeys(key)} - names,
        )
        if strange:
            v.unbounded += 1
            v.note("unbounded", f"{key}: counter fields for {len(strange)} unregistered task names, e.g. {strange[:3]}")
