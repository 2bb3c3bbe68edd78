"""The driver side of each workload, shared by every system's adapter (the worker side is `progress.py`).

This module runs inside each system's own virtualenv, so it may import only the standard library and redis-py,
which all of them have. `WORKLOADS[name](system, opts)` runs one workload against one system and returns a dict
of figures; `leg.py` prints it as JSON for the orchestrator.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import redis
from progress import (  # noqa: F401  (re-exported for the adapters and the driver)
    ASYNC_SLEEP,
    KEY_DONE,
    KEY_FIRST,
    KEY_IDN,
    KEY_IDS,
    KEY_IO,
    KEY_LAST,
    KEY_LAT,
    KEY_READY,
    QUEUE,
    progress,
)

POLL_INTERVAL = 0.005
STALL_SECONDS = 10.0  # no progress for this long with nothing left in Redis: tasks were lost
ETA_KEY = f"wakaq:eta:{QUEUE}"


# ---- driver side: the system adapter interface ------------------------------------------------------------


class System(Protocol):
    """What each `systems/<name>.py` provides to the driver."""

    name: str
    concurrency: int  # worker processes that run tasks (each runs the start-up hook once)
    backlog_keys: tuple[str, ...]  # keys (lists, zsets, hashes) holding tasks not yet run, on the Redis under test

    def delay(self, kind: str, *args: Any) -> None: ...
    def enqueue_bulk(self, kind: str, count: int, chunk: int = 1000) -> None: ...
    def enqueue_eta(self, count: int) -> None: ...
    def worker_command(self) -> list[str]: ...


@dataclass
class Options:
    url: str
    n: int = 20_000
    async_n: int = 10_000
    async_concurrency: int = 100
    eta_n: int = 100_000
    latency_n: int = 300
    latency_gap: float = 0.005
    idle_seconds: float = 10.0
    bulk_chunk: int = 1_000
    timeout: float = 300.0
    logdir: str = "."
    progress_url: str = ""


class LegTimeout(Exception):
    """A wait in a workload ran past its deadline; the message says what was seen."""


class TasksLost(Exception):
    """Nothing is left in Redis to run and the count stopped short of N: the system dropped tasks."""

    def __init__(self, message: str, tally: dict[str, int]) -> None:
        super().__init__(message)
        self.tally = tally


def wait_for(check: Callable[[], Any], deadline: float, what: str, interval: float = POLL_INTERVAL) -> Any:
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise LegTimeout(f"timed out waiting for {what}")
        time.sleep(interval)


# ---- processes ---------------------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """Every live descendant of pid (children of all its threads, recursively)."""
    found: list[int] = []
    stack = [pid]
    while stack:
        parent = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                text = Path(f"/proc/{parent}/task/{tid}/children").read_text()
            except OSError:
                continue
            for child in (int(p) for p in text.split()):
                if child not in found:
                    found.append(child)
                    stack.append(child)
    return found


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime of the given processes, in clock ticks (processes that are gone count 0)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5), counted after "(comm)"
    return total


class WorkerProcess:
    """The worker daemon under test, with its output in a log file; `stop()` leaves nothing running."""

    def __init__(self, system: System, opts: Options, tag: str) -> None:
        self.log_path = Path(opts.logdir) / f"{system.name}-{tag}.log"
        self._log = self.log_path.open("wb")
        self.started_at = time.time()
        self.proc = subprocess.Popen(
            system.worker_command(), stdout=self._log, stderr=subprocess.STDOUT, cwd=Path(__file__).parent
        )

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {self.proc.returncode}: {self.log_tail()}")

    def log_tail(self, size: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def stop(self) -> None:
        pids = [self.proc.pid, *descendants(self.proc.pid)]
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        for pid in [*pids, *descendants(self.proc.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


# ---- workloads ----------------------------------------------------------------------------------------------


def _floats(raw: dict[bytes, bytes]) -> list[float]:
    return [float(v) for v in raw.values()]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def clients(opts: Options) -> tuple[redis.Redis, redis.Redis]:
    """(the Redis under test, the bookkeeping Redis); the same server when no separate one was given."""
    return redis.Redis.from_url(opts.url), redis.Redis.from_url(opts.progress_url or opts.url)


# ---- Redis cost (INFO deltas on the Redis under test) -----------------------------------------------------


def redis_stats(r: redis.Redis) -> dict[str, Any]:
    """CPU seconds (user + sys) and per-command call counts (commands inside Lua scripts included)."""
    cpu = r.info("cpu")
    stats = r.info("commandstats")
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    return {"cpu": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), "calls": calls}


def redis_cost(before: dict[str, Any], after: dict[str, Any], tasks: int, prefix: str = "") -> dict[str, Any]:
    """Per task: Redis CPU microseconds and commands (our own INFO calls left out), and the top commands."""
    delta = {
        k: v - before["calls"].get(k, 0)
        for k, v in after["calls"].items()
        if k != "info" and v - before["calls"].get(k, 0) > 0
    }
    top = sorted(delta.items(), key=lambda kv: -kv[1])[:6]
    return {
        f"{prefix}redis_us": 1e6 * (after["cpu"] - before["cpu"]) / tasks,
        f"{prefix}redis_cmds": sum(delta.values()) / tasks,
        f"{prefix}redis_top": ", ".join(f"{k} {v / tasks:.2f}" for k, v in top),
    }


# ---- waiting for workers ------------------------------------------------------------------------------------


def _ready_count(system: System, pr: redis.Redis, r: redis.Redis) -> int:
    custom = getattr(system, "ready_count", None)
    return int(custom(r)) if custom else int(pr.hlen(KEY_READY))


def _wait_ready(system: System, pr: redis.Redis, r: redis.Redis, worker: WorkerProcess, deadline: float) -> None:
    """Wait until every worker process ran its start-up hook (or the system's own readiness check)."""

    def ready() -> bool:
        worker.check_alive()
        return _ready_count(system, pr, r) >= system.concurrency

    wait_for(ready, deadline, f"{system.concurrency} worker processes to start")


def _counts(pr: redis.Redis) -> tuple[int, int, int]:
    """(tasks finished, finished tasks with an id, distinct ids) so far."""
    pipe = pr.pipeline(transaction=False)
    pipe.get(KEY_DONE).get(KEY_IDN).bitcount(KEY_IDS)
    done, idn, distinct = pipe.execute()
    return int(done or 0), int(idn or 0), int(distinct or 0)


def _tally(pr: redis.Redis, awaited: int) -> dict[str, int]:
    _, idn, distinct = _counts(pr)
    return {"awaited": awaited, "missing": awaited - distinct, "extra": idn - distinct}


def _wait_done(
    system: System, pr: redis.Redis, r: redis.Redis, worker: WorkerProcess, count: int, deadline: float, ids: bool
) -> None:
    """Until `count` tasks finished: with `ids`, `count` distinct ids (duplicates do not make up for losses)."""
    seen = {"done": -1, "at": time.monotonic()}

    def finished() -> bool:
        done, _, distinct = _counts(pr)
        progress_made = distinct if ids else done
        if progress_made >= count:
            return True
        now = time.monotonic()
        if now > deadline:
            raise LegTimeout(f"timed out: {progress_made} of {count} tasks finished")
        if done != seen["done"]:
            seen.update(done=done, at=now)
        elif now - seen["at"] > STALL_SECONDS and not _backlog(system, r):
            tally = _tally(pr, count) if ids else {"awaited": count, "missing": count - done, "extra": 0}
            raise TasksLost(
                f"{count - progress_made} of {count} tasks lost: queues empty, no progress for {STALL_SECONDS}s",
                tally,
            )
        worker.check_alive()
        return False

    wait_for(finished, deadline + 1, f"{count} tasks")


def _backlog(system: System, r: redis.Redis) -> int:
    """Tasks still waiting in Redis, in the system's own keys (lists, zsets, sets, hashes)."""
    total = 0
    for key in system.backlog_keys:
        kind = r.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        size = {"list": r.llen, "zset": r.zcard, "set": r.scard, "hash": r.hlen, "stream": r.xlen}.get(kind)
        total += int(size(key)) if size else 0
    return total


SETTLE_SECONDS = 0.3  # after the last awaited task: time for duplicates to show up in the tally


def _drain(system: System, opts: Options, count: int, tag: str, ids: bool = True) -> dict[str, Any]:
    """Start the workers on `count` queued tasks; time until all finished, with and without start-up; the Redis
    cost per task (from worker start to the last task) and the tally (awaited, missing, extra)."""
    r, pr = clients(opts)
    deadline = time.monotonic() + opts.timeout
    before = redis_stats(r)
    worker = WorkerProcess(system, opts, tag)
    try:
        _wait_done(system, pr, r, worker, count, deadline, ids)
        after = redis_stats(r)
        first = min(_floats(pr.hgetall(KEY_FIRST)))
        last = max(_floats(pr.hgetall(KEY_LAST)))
        ready = _floats(pr.hgetall(KEY_READY))
        if ids:
            time.sleep(SETTLE_SECONDS)
        tally = _tally(pr, count) if ids else {"awaited": count, "missing": 0, "extra": 0}
    finally:
        worker.stop()
    total = last - worker.started_at
    steady = last - first
    return {
        "rate": count / total,
        "steady_rate": (count - 1) / steady if steady > 0 else float("nan"),
        "startup_s": first - worker.started_at,
        "ready_s": min(ready) - worker.started_at if ready else float("nan"),
        "total_s": total,
        "steady_s": steady,
        **tally,
        **redis_cost(before, after, count),
    }


# ---- workloads ----------------------------------------------------------------------------------------------


def floor(system: System, opts: Options) -> dict[str, float]:
    client = redis.Redis.from_url(opts.url)
    client.ping()
    started = time.perf_counter()
    for _ in range(opts.n):
        client.incr("bench:floor")
    elapsed = time.perf_counter() - started
    return {"rate": opts.n / elapsed}


def _resp(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def floor_push(system: System, opts: Options) -> dict[str, float]:
    """The floor of a single `.delay()`: the Redis work of one push (RPUSH the task, RPUSH a bell token), both
    commands pipelined in one round trip per task, pre-encoded RESP on a raw socket (no client library, no
    encoding). No queue's `.delay()` can do the same push in one round trip for less."""
    target = urlparse(opts.url)
    request = _resp(b"RPUSH", b"bench:floor:q", b"\x84\xa4name\xa4noop\xa4args\x91\x01\xa6kwargs\x80\xa5retry\x00")
    request += _resp(b"RPUSH", b"bench:floor:bell", b"1")
    with socket.create_connection((target.hostname or "127.0.0.1", target.port or 6379)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def one() -> None:
            sock.sendall(request)
            got = b""
            while got.count(b"\r\n") < 2:  # NOTE: two integer replies, ":<n>\r\n" each
                chunk = sock.recv(256)
                if not chunk:
                    raise ConnectionError("redis closed the connection")
                got += chunk

        one()
        started = time.perf_counter()
        for _ in range(opts.n):
            one()
        elapsed = time.perf_counter() - started
    return {"rate": opts.n / elapsed}


def enqueue(system: System, opts: Options) -> dict[str, Any]:
    r = redis.Redis.from_url(opts.url)
    system.delay("noop", -1)  # connect and warm up outside the timing
    before = redis_stats(r)
    started = time.perf_counter()
    for i in range(opts.n):
        system.delay("noop", i)
    elapsed = time.perf_counter() - started
    return {"rate": opts.n / elapsed, **redis_cost(before, redis_stats(r), opts.n)}


def enqueue_bulk(system: System, opts: Options) -> dict[str, Any]:
    r = redis.Redis.from_url(opts.url)
    system.delay("noop", -1)
    before = redis_stats(r)
    started = time.perf_counter()
    system.enqueue_bulk("noop", opts.n, opts.bulk_chunk)
    elapsed = time.perf_counter() - started
    return {"rate": opts.n / elapsed, **redis_cost(before, redis_stats(r), opts.n)}


def drain_noop(system: System, opts: Options) -> dict[str, Any]:
    system.enqueue_bulk("noop", opts.n)
    return _drain(system, opts, opts.n, "drain-noop")


def drain_io(system: System, opts: Options) -> dict[str, Any]:
    r = redis.Redis.from_url(opts.url)
    system.enqueue_bulk("io", opts.n)
    result = _drain(system, opts, opts.n, "drain-io")
    incremented = int(r.get(KEY_IO) or 0)
    if incremented < opts.n - result["missing"]:
        raise RuntimeError(f"drain-io: the tasks' own counter is {incremented}, expected {opts.n}")
    return result


def async_sleep(system: System, opts: Options) -> dict[str, Any]:
    system.enqueue_bulk("sleep", opts.async_n)
    result = _drain(system, opts, opts.async_n, "async")
    ideal = opts.async_n * ASYNC_SLEEP / (system.concurrency * opts.async_concurrency)
    # the first task finished async_sleep after it started: count from that start, not from its end
    busy = result["steady_s"] + ASYNC_SLEEP
    return {
        "seconds": busy,
        "x_ideal": busy / ideal,
        "total_s": result["total_s"],
        "ideal_s": ideal,
        **{k: result[k] for k in ("awaited", "missing", "extra")},
    }


def eta(system: System, opts: Options) -> dict[str, Any]:
    r = redis.Redis.from_url(opts.url)
    count = opts.eta_n
    system.enqueue_eta(count)
    eta_key = getattr(system, "eta_key", None)  # where the system keeps eta tasks until due, if it has one
    if eta_key is not None and r.zcard(eta_key) != count:
        raise RuntimeError(f"eta: {r.zcard(eta_key)} of {count} tasks are in {eta_key} before the worker starts")
    result = _drain(system, opts, count, "eta")
    return {
        "seconds": result["total_s"],
        "rate": count / result["total_s"],
        "steady_s": result["steady_s"],
        "n": count,
        **{k: result[k] for k in ("awaited", "missing", "extra", "redis_us", "redis_cmds")},
    }


def latency(system: System, opts: Options) -> dict[str, float]:
    r, pr = clients(opts)
    deadline = time.monotonic() + opts.timeout
    worker = WorkerProcess(system, opts, "latency")
    try:
        _wait_ready(system, pr, r, worker, deadline)
        time.sleep(1.0)  # let every worker process reach its idle wait
        system.delay("noop", -1)  # warm the producer connection; not sampled
        _wait_done(system, pr, r, worker, 1, deadline, ids=False)
        start = time.perf_counter()
        for i in range(opts.latency_n):
            pause = start + i * opts.latency_gap - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            system.delay("lat", time.time())
        _wait_done(system, pr, r, worker, opts.latency_n + 1, deadline, ids=False)
        samples = wait_for(lambda: _samples(pr, opts.latency_n), deadline, "latency samples")
    finally:
        worker.stop()
    return {f"p{q}_ms": percentile(samples, q) * 1000 for q in (50, 90, 99)}


def _samples(r: redis.Redis, count: int) -> list[float] | None:
    raw = r.lrange(KEY_LAT, 0, -1)
    return [float(v) for v in raw] if len(raw) >= count else None


def idle(system: System, opts: Options) -> dict[str, Any]:
    r, pr = clients(opts)
    deadline = time.monotonic() + opts.timeout
    worker = WorkerProcess(system, opts, "idle")
    try:
        _wait_ready(system, pr, r, worker, deadline)
        time.sleep(2.0)  # past start-up work
        pids = [worker.proc.pid, *descendants(worker.proc.pid)]
        ticks_before = cpu_ticks(pids)
        before = redis_stats(r)
        started = time.monotonic()
        requests = monitor(opts.url, opts.idle_seconds)
        ticks_after = cpu_ticks(pids)
        elapsed = time.monotonic() - started
        after = redis_stats(r)
        worker.check_alive()
    finally:
        worker.stop()
    busy = (ticks_after - ticks_before) / os.sysconf("SC_CLK_TCK")
    top = sorted(((v, k) for k, v in requests.items()), reverse=True)[:4]
    return {
        "cpu_pct": 100 * busy / elapsed,
        "redis_cmds_per_s": sum(requests.values()) / elapsed,
        "redis_cpu_pct": 100 * (after["cpu"] - before["cpu"]) / elapsed,
        "processes": len(pids),
        "commands": ", ".join(f"{k} {v / elapsed:.1f}/s" for v, k in top),
    }


def eta_enqueue(system: System, opts: Options) -> dict[str, Any]:
    """Cost of one `.delay(eta=...)` while the eta set already holds `opts.eta_n` tasks due later."""
    later = getattr(system, "enqueue_eta_later", None)
    if later is None:
        raise NotImplementedError(f"{system.name}: no eta set to fill")
    r = redis.Redis.from_url(opts.url)
    system.delay("noop", -1)  # connect and warm up outside the timing
    later(opts.eta_n)
    count = min(opts.n, 5_000)
    before = redis_stats(r)
    started = time.perf_counter()
    system.enqueue_eta(count)  # due already; into the same set
    elapsed = time.perf_counter() - started
    return {"us_per_call": 1e6 * elapsed / count, "set_size": opts.eta_n, **redis_cost(before, redis_stats(r), count)}


def memory(system: System, opts: Options) -> dict[str, Any]:
    """RSS and USS (psutil `memory_full_info`) of the worker's parent and each child: idle, then after N tasks."""
    import psutil

    def sample(pid: int) -> dict[str, Any]:
        parent = psutil.Process(pid)
        procs = [parent, *parent.children(recursive=True)]
        info = [p.memory_full_info() for p in procs]
        return {
            "parent_rss_mb": info[0].rss / 2**20,
            "parent_uss_mb": info[0].uss / 2**20,
            "child_rss_mb": [i.rss / 2**20 for i in info[1:]],
            "child_uss_mb": [i.uss / 2**20 for i in info[1:]],
        }

    r, pr = clients(opts)
    deadline = time.monotonic() + opts.timeout
    worker = WorkerProcess(system, opts, "memory")
    try:
        _wait_ready(system, pr, r, worker, deadline)
        time.sleep(1.0)
        idle_mem = sample(worker.proc.pid)
        system.enqueue_bulk("noop", opts.n)
        _wait_done(system, pr, r, worker, opts.n, deadline, ids=True)
        time.sleep(0.5)
        busy_mem = sample(worker.proc.pid)
    finally:
        worker.stop()
    return {
        "tasks": opts.n,
        **{f"idle_{k}": v for k, v in idle_mem.items()},
        **{f"after_{k}": v for k, v in busy_mem.items()},
    }


def monitor(url: str, seconds: float) -> dict[str, int]:
    """Commands clients send to Redis during `seconds`, by name, from MONITOR (without those Lua scripts run:
    INFO commandstats counts a script's inner calls too, but only the EVALSHA is a request)."""
    parts = redis.connection.parse_url(url)
    counts: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    with socket.create_connection((parts.get("host", "127.0.0.1"), parts.get("port", 6379)), timeout=1) as sock:
        sock.sendall(b"MONITOR\r\n")
        pending = b""
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\r\n")
            for line in lines:
                _count_monitor_line(line, counts)
    return counts


def _count_monitor_line(line: bytes, counts: dict[str, int]) -> None:
    # +1700000000.123456 [0 127.0.0.1:50000] "blpop" "wakaq:bell:bench" "1"   (source "lua" inside scripts)
    if not line.startswith(b"+") or line == b"+OK":
        return
    source, _, command = line.partition(b"] ")
    if source.endswith(b" lua"):
        return
    name = command.split(b" ", 1)[0].strip(b'"').decode(errors="replace").lower()
    counts[name] = counts.get(name, 0) + 1


WORKLOADS: dict[str, Callable[[System, Options], dict[str, Any]]] = {
    "floor": floor,
    "floor-push": floor_push,
    "enqueue": enqueue,
    "enqueue-bulk": enqueue_bulk,
    "drain-noop": drain_noop,
    "drain-io": drain_io,
    "latency": latency,
    "async": async_sleep,
    "eta": eta,
    "idle": idle,
    "eta-enqueue": eta_enqueue,
    "memory": memory,
}
