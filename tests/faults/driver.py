"""The fault suite's driver: send tasks, wait for the system to settle, and account for every task.

Each task carries an integer id as its first argument. After a scenario every sent id is exactly one of:
done (ran at least once; `duplicates` counts the ids that ran more than once), recorded failed/dead (in a
`wakaq:failed:<queue>` record, with its reason), or lost (neither). Rows go to `RESULTS`, which the suite's
conftest prints as a table at the end of the run.
"""

from __future__ import annotations

import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from wakaq import _wakaq
from wakaq.exceptions import PayloadError
from wakaq.keys import Keys

from .app import QUEUES


@dataclass
class Row:
    scenario: str
    sent: int
    done: int
    duplicates: int
    failed: int
    lost: int
    seconds: float = 0.0
    note: str = ""


@dataclass
class Accounting:
    """What became of each sent id."""

    sent: set[int]
    runs: dict[int, list[int]]  # id -> pid of each run
    failed: dict[int, list[str]]  # id -> reasons of its failure records
    unsent_ran: set[int] = field(default_factory=set)  # ids whose .delay() raised but that ran anyway

    @property
    def done(self) -> set[int]:
        return {i for i in self.sent if self.runs.get(i)}

    @property
    def duplicates(self) -> set[int]:
        return {i for i in self.sent if len(self.runs.get(i, ())) > 1}

    @property
    def failed_only(self) -> set[int]:
        return {i for i in self.sent if i in self.failed and i not in self.done}

    @property
    def lost(self) -> set[int]:
        return self.sent - self.done - set(self.failed)

    def row(self, scenario: str, started: float, note: str = "") -> Row:
        return Row(
            scenario,
            len(self.sent),
            len(self.done),
            len(self.duplicates),
            len(self.failed_only),
            len(self.lost),
            time.monotonic() - started,
            note,
        )

    def unexplained_duplicates(self, died: set[int]) -> dict[int, list[int]]:
        """Ids that ran more than once in children that did not die: a task may run again only after the
        child running it (or holding it claimed, finished but not yet acknowledged) died."""
        return {i: pids for i, pids in self.runs.items() if sum(p not in died for p in pids) > 1}


RESULTS: list[Row] = []


def record(row: Row) -> None:
    RESULTS.append(row)


# ---- reading Redis ------------------------------------------------------------------------------------------


def _keys(client: Any) -> Keys:
    """The key layout of the Redis behind `client`: a `RedisCluster` reads the cluster layout ({wakaq}:...)."""
    from redis.cluster import RedisCluster

    return Keys(cluster=isinstance(client, RedisCluster))


def runs(client: redis.Redis, key: str = "runs") -> dict[int, list[int]]:
    """id -> pids of its runs, from the `<id>:<pid>:<token>` fields the tasks write."""
    found: dict[int, list[int]] = defaultdict(list)
    for raw in client.hkeys(key):
        i, pid, _token = raw.decode().split(":")
        found[int(i)].append(int(pid))
    return dict(found)


def failure_records(client: redis.Redis, queues: Iterable[str] = QUEUES) -> list[dict[str, Any]]:
    """Every failure record of `queues`, decoded with wakaq's own codec."""
    out = []
    for queue in queues:
        for raw in client.lrange(_keys(client).failed(queue), 0, -1):
            rec = _wakaq.unpackb(raw)
            assert isinstance(rec, dict), f"a failure record is not a map: {raw!r}"
            out.append(rec)
    return out


def failed_ids(records: list[dict[str, Any]]) -> dict[int, list[str]]:
    """id -> reasons, for records whose payload decodes to a task with an int first argument."""
    found: dict[int, list[str]] = defaultdict(list)
    for rec in records:
        try:
            _name, args, _kwargs, _retry = _wakaq.decode_task(rec["payload"])
        except PayloadError:
            continue
        if args and isinstance(args[0], int):
            found[args[0]].append(rec["reason"])
    return dict(found)


def account(client: redis.Redis, sent: Iterable[int], key: str = "runs", queues: Iterable[str] = QUEUES) -> Accounting:
    return Accounting(set(sent), runs(client, key), failed_ids(failure_records(client, queues)))


def inflight(client: redis.Redis) -> int:
    return sum(client.hlen(k) for k in client.scan_iter(_keys(client).inflight("*")))


def pending(client: redis.Redis, queues: Iterable[str] = QUEUES) -> int:
    return sum(client.llen(_keys(client).queue(q)) for q in queues)


def wait_drained(
    client: redis.Redis,
    expect: Callable[[], bool] = lambda: True,
    timeout: float = 60.0,
    stable: float = 0.5,
    key: str = "runs",
    what: str = "the queues to drain",
) -> None:
    """Poll until every queue is empty, nothing is in flight, `expect()` holds, and the run count has not
    changed for `stable` seconds (late duplicates still land inside the window)."""
    deadline = time.monotonic() + timeout
    last: tuple[int, int] | None = None
    since = time.monotonic()
    while True:
        try:
            state = (client.hlen(key), sum(client.llen(_keys(client).failed(q)) for q in QUEUES))
            settled = pending(client) == 0 and inflight(client) == 0 and expect()
        except redis.ConnectionError:
            state, settled = None, False
        now = time.monotonic()
        if state != last:
            last, since = state, now
        if settled and now - since >= stable:
            return
        if now > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}: pending {_safe(pending, client)}, "
                f"in flight {_safe(inflight, client)}, runs {last}"
            )
        time.sleep(0.05)


def _safe(f: Callable[[redis.Redis], int], client: redis.Redis) -> str:
    try:
        return str(f(client))
    except redis.RedisError as e:
        return f"? ({e})"


# ---- processes ----------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc/<pid>/stat (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


CHILD_DIED = re.compile(
    r"child (\d+) \(slot \d+\) (?:killed by signal \d+|exited with code [1-9]\d*|exited with code 0 while running)"
)


def died_children(log_text: str) -> set[int]:
    """Children the supervisor saw die (a signal, a non-zero exit, status 0 mid-task), from its log."""
    return {int(pid) for pid in CHILD_DIED.findall(log_text)}


def forked_children(log_text: str) -> set[int]:
    return {int(pid) for pid in re.findall(r"forked child (\d+)", log_text)}


def format_table(rows: list[Row]) -> list[str]:
    header = ("scenario", "sent", "done", "duplicates", "failed-recorded", "lost", "seconds")
    cells = [header] + [
        (r.scenario, str(r.sent), str(r.done), str(r.duplicates), str(r.failed), str(r.lost), f"{r.seconds:.1f}")
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]

    def line(c: tuple[str, ...]) -> str:
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(c, widths, strict=True)))

    out = [line(header), "  ".join("-" * w for w in widths)]
    out += [line(c) for c in cells[1:]]
    out += [f"  {r.scenario}: {r.note}" for r in rows if r.note]
    return out


def distinct_runs(client: redis.Redis, key: str = "runs") -> int:
    return len({raw.split(b":", 1)[0] for raw in client.hkeys(key)})


def latest_tick(client: redis.Redis) -> int:
    """The unix second of the latest scheduled `tick` a task recorded (0: none yet)."""
    return max((int(k.split(b":", 1)[0]) for k in client.hkeys("ticks")), default=0)


def done_count(client: redis.Redis, n: int, key: str = "runs") -> bool:
    """At least `n` distinct ids ran."""
    return distinct_runs(client, key) >= n
