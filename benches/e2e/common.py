"""Shared by every system's adapter: the in-worker progress counter and the driver side of each workload.

This module runs inside each system's own virtualenv (wakaq's `.venv`, WakaQ 3.0.7's, Celery's), so it may
import only the standard library and redis-py, which all three have.

Worker side: each worker process calls `progress.start(url)` from its start-up hook. Task bodies call
`progress.done()` (or `progress.started(sent)` for latency samples). A daemon thread flushes the in-memory
count to Redis with one INCRBY every 10 ms, the same for every system, so the count costs the queue under test
nothing per task. Driver side: `run(system, workload, opts)` runs one workload against one system and returns a
dict of figures; `leg.py` prints it as JSON for the orchestrator.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import redis

KEY_DONE = "bench:done"  # string: tasks finished, all worker processes together
KEY_FIRST = "bench:first"  # hash: worker pid -> unix time its first task finished
KEY_LAST = "bench:last"  # hash: worker pid -> unix time its latest task finished
KEY_READY = "bench:ready"  # hash: worker pid -> unix time its start-up hook ran
KEY_LAT = "bench:lat"  # list: enqueue-to-start latencies (seconds), one per latency task
KEY_IO = "bench:io"  # string: the counter drain-io tasks INCR themselves

FLUSH_INTERVAL = 0.01
POLL_INTERVAL = 0.005
STALL_SECONDS = 10.0  # no progress for this long with nothing left in Redis: tasks were lost
QUEUE = "bench"
ETA_KEY = f"wakaq:eta:{QUEUE}"
ASYNC_SLEEP = 0.01  # seconds each async task awaits


# ---- worker side ----------------------------------------------------------------------------------------------


class Progress:
    """Per worker process: finished-task count and latency samples in memory, flushed by a daemon thread."""

    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.samples: list[float] = []
        self.url = ""
        self._thread: threading.Thread | None = None
        self._io: redis.Redis | None = None

    def start(self, url: str) -> None:
        """Called once in each worker process (after fork); idempotent."""
        if self._thread is not None and self._thread.is_alive():
            return
        self.url = url
        client = redis.Redis.from_url(url)
        client.hset(KEY_READY, str(os.getpid()), repr(time.time()))
        self._thread = threading.Thread(target=self._flush_forever, args=(client,), name="bench-flush", daemon=True)
        self._thread.start()

    def done(self) -> None:
        now = time.time()
        if not self.count:
            self.first = now
        self.last = now
        self.count += 1

    def started(self, sent: float) -> None:
        """A latency task began: record enqueue-to-start, then count it."""
        self.samples.append(time.time() - sent)
        self.done()

    def io(self) -> redis.Redis:
        """This process's own client for tasks that do Redis I/O themselves."""
        if self._io is None:
            self._io = redis.Redis.from_url(self.url)
        return self._io

    def _flush_forever(self, client: redis.Redis) -> None:
        flushed = 0
        pid = str(os.getpid())
        while True:
            time.sleep(FLUSH_INTERVAL)
            count = self.count
            if count == flushed:
                continue
            samples, self.samples = self.samples, []
            pipe = client.pipeline(transaction=False)
            if not flushed:
                pipe.hset(KEY_FIRST, pid, repr(self.first))
            pipe.hset(KEY_LAST, pid, repr(self.last))
            if samples:
                pipe.rpush(KEY_LAT, *(repr(s) for s in samples))
            pipe.incrby(KEY_DONE, count - flushed)  # NOTE: last, so `last`/samples are there once the count is
            try:
                pipe.execute()
            except redis.RedisError:
                self.samples[:0] = samples
                continue
            flushed = count


progress = Progress()


# ---- driver side: the system adapter interface ------------------------------------------------------------


class System(Protocol):
    """What each `systems/<name>.py` provides to the driver."""

    name: str
    concurrency: int

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


class LegTimeout(Exception):
    """A wait in a workload ran past its deadline; the message says what was seen."""


class TasksLost(Exception):
    """Nothing is left in Redis to run and the count stopped short of N: the system dropped tasks."""


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


def _wait_ready(r: redis.Redis, worker: WorkerProcess, system: System, deadline: float) -> float:
    """Wait until every worker process ran its start-up hook; returns when the last one did."""

    def ready() -> list[float] | None:
        worker.check_alive()
        times = _floats(r.hgetall(KEY_READY))
        return times if len(times) >= system.concurrency else None

    return max(wait_for(ready, deadline, f"{system.concurrency} worker processes to start"))


def _wait_done(r: redis.Redis, worker: WorkerProcess, count: int, deadline: float) -> None:
    seen = {"done": -1, "at": time.monotonic()}

    def finished() -> bool:
        done = int(r.get(KEY_DONE) or 0)
        if done >= count:
            return True
        now = time.monotonic()
        if now > deadline:
            raise LegTimeout(f"timed out: {done} of {count} tasks finished")
        if done != seen["done"]:
            seen.update(done=done, at=now)
        elif now - seen["at"] > STALL_SECONDS and not _backlog(r):
            raise TasksLost(f"{count - done} of {count} tasks lost: queues empty, no progress for {STALL_SECONDS}s")
        worker.check_alive()
        return False

    wait_for(finished, deadline + 1, f"{count} tasks")


def _backlog(r: redis.Redis) -> int:
    """Tasks still waiting in Redis: the queue list (WakaQ/wakaq name, Celery name) and the eta zset."""
    pipe = r.pipeline(transaction=False)
    pipe.llen(f"wakaq:{QUEUE}").llen(QUEUE).zcard(ETA_KEY)
    return sum(pipe.execute())


def _drain(system: System, opts: Options, r: redis.Redis, count: int, tag: str) -> dict[str, float]:
    """Start the workers on `count` queued tasks; time until all finished, with and without start-up."""
    deadline = time.monotonic() + opts.timeout
    worker = WorkerProcess(system, opts, tag)
    try:
        _wait_done(r, worker, count, deadline)
        first = min(_floats(r.hgetall(KEY_FIRST)))
        last = max(_floats(r.hgetall(KEY_LAST)))
        ready = _floats(r.hgetall(KEY_READY))
    finally:
        worker.stop()
    total = last - worker.started_at
    steady = last - first
    return {
        "rate": count / total,
        "steady_rate": (count - 1) / steady if steady > 0 else float("nan"),
        "startup_s": first - worker.started_at,
        "ready_s": max(ready) - worker.started_at if ready else float("nan"),
        "total_s": total,
        "steady_s": steady,
    }


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


def enqueue(system: System, opts: Options) -> dict[str, float]:
    system.delay("noop", -1)  # connect and warm up outside the timing
    started = time.perf_counter()
    for i in range(opts.n):
        system.delay("noop", i)
    elapsed = time.perf_counter() - started
    return {"rate": opts.n / elapsed}


def enqueue_bulk(system: System, opts: Options) -> dict[str, float]:
    system.delay("noop", -1)
    started = time.perf_counter()
    system.enqueue_bulk("noop", opts.n, opts.bulk_chunk)
    elapsed = time.perf_counter() - started
    return {"rate": opts.n / elapsed}


def drain_noop(system: System, opts: Options) -> dict[str, float]:
    r = redis.Redis.from_url(opts.url)
    system.enqueue_bulk("noop", opts.n)
    return _drain(system, opts, r, opts.n, "drain-noop")


def drain_io(system: System, opts: Options) -> dict[str, float]:
    r = redis.Redis.from_url(opts.url)
    system.enqueue_bulk("io", opts.n)
    result = _drain(system, opts, r, opts.n, "drain-io")
    incremented = int(r.get(KEY_IO) or 0)
    if incremented < opts.n:
        raise RuntimeError(f"drain-io: the tasks' own counter is {incremented}, expected {opts.n}")
    return result


def async_sleep(system: System, opts: Options) -> dict[str, float]:
    r = redis.Redis.from_url(opts.url)
    system.enqueue_bulk("sleep", opts.async_n)
    result = _drain(system, opts, r, opts.async_n, "async")
    ideal = opts.async_n * ASYNC_SLEEP / (system.concurrency * opts.async_concurrency)
    # the first task finished async_sleep after it started: count from that start, not from its end
    busy = result["steady_s"] + ASYNC_SLEEP
    return {"seconds": busy, "x_ideal": busy / ideal, "total_s": result["total_s"], "ideal_s": ideal}


def eta(system: System, opts: Options) -> dict[str, float]:
    r = redis.Redis.from_url(opts.url)
    count = opts.eta_n
    system.enqueue_eta(count)
    waiting = r.zcard(ETA_KEY)  # WakaQ and wakaq keep eta tasks in this zset until due; Celery in the queue
    if system.name != "Celery" and waiting != count:
        raise RuntimeError(f"eta: {waiting} of {count} tasks are in {ETA_KEY} before the worker starts")
    result = _drain(system, opts, r, count, "eta")
    return {"seconds": result["total_s"], "rate": count / result["total_s"], "steady_s": result["steady_s"], "n": count}


def latency(system: System, opts: Options) -> dict[str, float]:
    r = redis.Redis.from_url(opts.url)
    deadline = time.monotonic() + opts.timeout
    worker = WorkerProcess(system, opts, "latency")
    try:
        _wait_ready(r, worker, system, deadline)
        time.sleep(1.0)  # let every worker process reach its idle wait
        system.delay("noop", -1)  # warm the producer connection; not sampled
        _wait_done(r, worker, 1, deadline)
        start = time.perf_counter()
        for i in range(opts.latency_n):
            pause = start + i * opts.latency_gap - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            system.delay("lat", time.time())
        _wait_done(r, worker, opts.latency_n + 1, deadline)
        samples = wait_for(lambda: _samples(r, opts.latency_n), deadline, "latency samples")
    finally:
        worker.stop()
    return {f"p{q}_ms": percentile(samples, q) * 1000 for q in (50, 90, 99)}


def _samples(r: redis.Redis, count: int) -> list[float] | None:
    raw = r.lrange(KEY_LAT, 0, -1)
    return [float(v) for v in raw] if len(raw) >= count else None


def idle(system: System, opts: Options) -> dict[str, float]:
    r = redis.Redis.from_url(opts.url)
    deadline = time.monotonic() + opts.timeout
    worker = WorkerProcess(system, opts, "idle")
    try:
        _wait_ready(r, worker, system, deadline)
        time.sleep(2.0)  # past start-up work
        pids = [worker.proc.pid, *descendants(worker.proc.pid)]
        ticks_before = cpu_ticks(pids)
        started = time.monotonic()
        requests = monitor(opts.url, opts.idle_seconds)
        ticks_after = cpu_ticks(pids)
        elapsed = time.monotonic() - started
        worker.check_alive()
    finally:
        worker.stop()
    busy = (ticks_after - ticks_before) / os.sysconf("SC_CLK_TCK")
    top = sorted(((v, k) for k, v in requests.items()), reverse=True)[:4]
    return {
        "cpu_pct": 100 * busy / elapsed,
        "redis_cmds_per_s": sum(requests.values()) / elapsed,
        "processes": len(pids),
        "commands": ", ".join(f"{k} {v / elapsed:.1f}/s" for v, k in top),
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
}
