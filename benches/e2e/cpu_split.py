"""Where the CPU goes: the counters behind the targets `make bench-all` misses (`make bench-bounds`).

Each measurement runs on fresh private redis-servers (the one under test and the benchmark's bookkeeping one, as
in `run.py`) and reads every process's CPU time from /proc (utime + stime):

- drain-io against its floor: CPU microseconds per task of the task-running processes, the worker's parent, the
  Redis under test and the bookkeeping Redis, from the first task done to the last, and how much of the machine's
  cores that was. When the sum is the whole machine, the rate is CPU-bound: no queue can go faster than the
  cores divided by its CPU per task, and the gap to the floor is the extra CPU per task.
- one `.delay()` and `delay_many` against their floors: the producer's CPU and Redis's CPU per task.
- one round trip (PING, `.delay()`) with the other cores idle and with one kept busy;
- an idle daemon: CPU of the parent and of each child over `--idle` seconds, and Redis's commands by name.

Prints Markdown; `--out FILE` writes it too.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(HERE)]

import common  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def ticks(pid: int) -> int:
    return common.cpu_ticks([pid])


def us_per(before: dict[str, int], after: dict[str, int], count: int) -> dict[str, float]:
    return {k: (after[k] - before.get(k, 0)) / TICK * 1e6 / count for k in after}


class Bench:
    def __init__(self, n: int) -> None:
        self.n = n
        self.logdir = tempfile.mkdtemp(prefix="wakaq-cpu-split-")  # the workers' logs
        self.broker = RedisServer().start()
        self.books = RedisServer().start()
        os.environ.update(
            BENCH_URL=self.broker.url, BENCH_PROGRESS_URL=self.books.url, BENCH_CONCURRENCY="2", PYTHONPATH=str(HERE)
        )
        import redis
        from systems import wakaq_rs

        self.redis, self.system = redis, wakaq_rs.Adapter()
        self.r = redis.Redis.from_url(self.broker.url)
        self.pr = redis.Redis.from_url(self.books.url)

    def close(self) -> None:
        self.broker.stop()
        self.books.stop()

    def redis_groups(self) -> dict[str, int]:
        assert self.broker.proc and self.books.proc
        return {"redis (under test)": ticks(self.broker.proc.pid), "redis (bookkeeping)": ticks(self.books.proc.pid)}

    def flush(self) -> None:
        self.r.flushdb()
        self.pr.flushdb()

    def drain_io(self) -> dict[str, Any]:
        """CPU per task while the worker drains N io tasks (first task done to last)."""
        self.flush()
        self.system.enqueue_bulk("io", self.n)
        opts = common.Options(url=self.broker.url, progress_url=self.books.url, n=self.n, logdir=self.logdir)
        worker = common.WorkerProcess(self.system, opts, "cpu-split")
        try:

            def sample() -> tuple[float, dict[str, int]]:
                kids = common.descendants(worker.proc.pid)
                groups = {"worker parent": ticks(worker.proc.pid), "children (run tasks)": common.cpu_ticks(kids)}
                return time.time(), {**groups, **self.redis_groups()}

            deadline = time.monotonic() + 120
            while int(self.pr.get(common.KEY_DONE) or 0) < 1:
                worker.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError("no task finished")
                time.sleep(0.002)
            t0, c0 = sample()
            done0 = int(self.pr.get(common.KEY_DONE) or 0)
            while (done := int(self.pr.get(common.KEY_DONE) or 0)) < self.n:
                worker.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{done} of {self.n} done")
                time.sleep(0.005)
            t1, c1 = sample()
        finally:
            worker.stop()
        count = self.n - done0
        return {"rate": count / (t1 - t0), "wall": t1 - t0, "us": us_per(c0, c1, count)}

    def floor_io(self) -> dict[str, Any]:
        """CPU per INCR of 2 processes doing the task body in a loop, no queue."""
        self.flush()
        url, share = self.broker.url, self.n // 2
        start_at = time.time() + 0.5
        pids = []
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    client = self.redis.Redis.from_url(url)
                    client.ping()
                    time.sleep(max(0.0, start_at - time.time()))
                    for _ in range(share):
                        client.incr("bench:io")
                    code = 0
                finally:
                    os._exit(code)
            pids.append(pid)
        time.sleep(max(0.0, start_at - time.time()))
        c0 = {"processes (run INCR)": common.cpu_ticks(pids), **self.redis_groups()}
        t0 = time.time()
        while int(self.r.get("bench:io") or 0) < 2 * share:
            time.sleep(0.002)
        t1 = time.time()
        c1 = {"processes (run INCR)": common.cpu_ticks(pids), **self.redis_groups()}
        for pid in pids:
            os.waitpid(pid, 0)
        return {"rate": 2 * share / (t1 - t0), "wall": t1 - t0, "us": us_per(c0, c1, 2 * share)}

    def enqueue(self) -> list[tuple[str, float, float, float]]:
        """(what, calls/s, producer CPU us per call, Redis CPU us per call) for .delay(), redis-py and raw RESP."""
        rows = []
        broker = self.broker.proc
        assert broker
        from wakaq import _wakaq  # noqa: F401  (loaded before timing)

        def measure(what: str, call: Any, count: int) -> None:
            self.flush()
            call(1)
            r0, p0, w0 = ticks(broker.pid), time.process_time(), time.perf_counter()
            call(count)
            r1, p1, w1 = ticks(broker.pid), time.process_time(), time.perf_counter()
            rows.append((what, count / (w1 - w0), (p1 - p0) * 1e6 / count, (r1 - r0) / TICK * 1e6 / count))

        def delay(k: int) -> None:
            for i in range(k):
                self.system.delay("noop", i)

        client = self.redis.Redis.from_url(self.broker.url)

        def redis_py(k: int) -> None:
            for _ in range(k):
                client.pipeline(transaction=False).rpush("q", b"x" * 40).rpush("bell", b"1").execute()

        sock = socket.create_connection(("127.0.0.1", self.broker.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request = b"*3\r\n$5\r\nRPUSH\r\n$1\r\nq\r\n$40\r\n" + b"x" * 40 + b"\r\n"
        request += b"*3\r\n$5\r\nRPUSH\r\n$4\r\nbell\r\n$1\r\n1\r\n"

        def raw(k: int) -> None:
            for _ in range(k):
                sock.sendall(request)
                got = b""
                while got.count(b"\r\n") < 2:
                    got += sock.recv(256)

        def bulk(k: int) -> None:
            self.system.enqueue_bulk("noop", k)

        raw_bulk = b"".join(b"$40\r\n" + b"x" * 40 + b"\r\n" for _ in range(1000))

        def floor_bulk(k: int) -> None:
            for _ in range(max(1, k // 1000)):
                sock.sendall(b"*1002\r\n$5\r\nRPUSH\r\n$1\r\nq\r\n" + raw_bulk)
                got = b""
                while not got.endswith(b"\r\n"):
                    got += sock.recv(256)

        measure("single .delay() (wakaq)", delay, self.n)
        measure("RPUSH task + bell, pipelined (redis-py)", redis_py, self.n)
        measure("RPUSH task + bell, pipelined (raw RESP: the floor)", raw, self.n)
        measure("delay_many, chunks of 1,000 (wakaq)", bulk, 10 * self.n)
        measure("RPUSH of 1,000 pre-encoded (raw RESP: the floor)", floor_bulk, 10 * self.n)
        sock.close()
        return rows

    def round_trips(self) -> list[tuple[str, float, float]]:
        """(what, us per PING round trip, us per wakaq .delay()) with the other cores idle, then kept busy by a
        spinning process: an idle vCPU's wake-up is part of every round trip on a VM."""
        sock = socket.create_connection(("127.0.0.1", self.broker.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def per_call(call: Any, count: int) -> float:
            for _ in range(100):
                call()
            started = time.perf_counter()
            for _ in range(count):
                call()
            return (time.perf_counter() - started) / count * 1e6

        def ping() -> None:
            sock.sendall(b"PING\r\n")
            sock.recv(64)

        rows = []
        for what in ("other cores idle", "another core kept busy (a spinning process)"):
            spinners = []
            if "busy" in what:
                for _ in range(CORES - 1):
                    pid = os.fork()
                    if pid == 0:
                        deadline = time.monotonic() + 30  # bounded even if the parent dies
                        while time.monotonic() < deadline:
                            pass
                        os._exit(0)
                    spinners.append(pid)
                time.sleep(0.2)
            try:
                self.flush()
                rows.append((what, per_call(ping, 10_000), per_call(lambda: self.system.delay("noop", 0), 10_000)))
            finally:
                for pid in spinners:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
        sock.close()
        return rows

    def idle(self, seconds: float) -> dict[str, Any]:
        self.flush()
        opts = common.Options(url=self.broker.url, progress_url=self.books.url, logdir=self.logdir)
        worker = common.WorkerProcess(self.system, opts, "cpu-split-idle")
        try:
            deadline = time.monotonic() + 30
            while len(self.pr.hgetall(common.KEY_READY)) < 2:
                worker.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError("the children did not start")
                time.sleep(0.02)
            time.sleep(1.0)
            pids = {"parent": worker.proc.pid}
            pids.update({f"child {k + 1}": pid for k, pid in enumerate(common.descendants(worker.proc.pid))})
            c0 = {k: ticks(p) for k, p in pids.items()}
            commands = common.monitor(self.broker.url, seconds)
            c1 = {k: ticks(p) for k, p in pids.items()}
        finally:
            worker.stop()
        pct = {k: 100 * (c1[k] - c0[k]) / TICK / seconds for k in pids}
        return {"pct": pct, "commands": {k: v / seconds for k, v in sorted(commands.items())}}


def render(b: Bench, idle_seconds: float) -> str:
    out = [f"# Where the CPU goes (benches/e2e/cpu_split.py, N = {b.n:,}, {CORES} cores)", ""]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    out += [f"Load average before: {load}.", ""]
    drain, floor = b.drain_io(), b.floor_io()
    out += ["## drain-io and its floor: CPU microseconds per task", ""]
    columns = [
        "task processes",
        "worker parent",
        "Redis under test",
        "bookkeeping Redis",
        "sum",
        "share of the machine",
    ]
    out += ["| | tasks/s | " + " | ".join(columns) + " |"]
    out += ["|---" * 8 + "|"]
    for name, m in (("wakaq drain-io (2 children)", drain), ("floor: 2 processes INCR, no queue", floor)):
        us = m["us"]
        task = us.get("children (run tasks)", us.get("processes (run INCR)", 0.0))
        parent = us.get("worker parent", 0.0)
        total = sum(us.values())
        busy = total * m["rate"] / 1e6 / CORES
        cells = [f"{m['rate']:,.0f}", f"{task:.1f}", f"{parent:.1f}", f"{us['redis (under test)']:.1f}"]
        cells += [f"{us['redis (bookkeeping)']:.1f}", f"{total:.1f}", f"{100 * busy:.0f}%"]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out += ["", "## enqueue and its floors: CPU microseconds per task", ""]
    out += ["| | tasks/s | producer CPU | Redis CPU |", "|---|---|---|---|"]
    for what, rate, cpu, redis_cpu in b.enqueue():
        out.append(f"| {what} | {rate:,.0f} | {cpu:.2f} | {redis_cpu:.2f} |")
    out += ["", "## one round trip: an idle vCPU's wake-up", ""]
    out += ["| | PING round trip, us | .delay(), us per call |", "|---|---|---|"]
    out += [f"| {what} | {ping:.1f} | {delay:.1f} |" for what, ping, delay in b.round_trips()]
    idle = b.idle(idle_seconds)
    out += ["", f"## an idle daemon (2 children), {idle_seconds:g} s", ""]
    out += ["| process | % of a core |", "|---|---|"]
    out += [f"| {k} | {v:.2f} |" for k, v in idle["pct"].items()]
    out += [f"| all | {sum(idle['pct'].values()):.2f} |", ""]
    out.append("Redis commands per second: " + ", ".join(f"{k} {v:.1f}" for k, v in idle["commands"].items()))
    return "\n".join(out) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--idle", type=float, default=20.0)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    b = Bench(args.n)
    try:
        text = render(b, args.idle)
    finally:
        b.close()
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
