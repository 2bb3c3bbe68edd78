"""Sustained load (`make soak`): a fixed offered rate for minutes, children SIGKILLed, Redis restarted; exact count.

A producer thread offers `--rate` tasks per second (delay_many every 10 ms) of a mix: 49.45% sync, 49.45% async,
1% raising, 0.1% past the soft timeout (benches/soak_app.py). Every `--kill-every` seconds one worker child is
SIGKILLed; at `--restart-at` seconds the Redis server is stopped and started again on the same port (append-only
file with fsync always, so what it acknowledged survives). Per interval (`--interval`, 60 s): throughput, p50/p99
enqueue-to-start latency, parent RSS and USS, children USS. At the end, the exact count: sent (acknowledged by Redis),
done (distinct ids that ran), duplicates (runs beyond the first), failed-recorded (wakaq's failed list), lost
(sent and never ran).

`make soak` runs the 10-minute version; `tests/test_soak.py` runs a 30-second one in `make test`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
E2E = HERE / "e2e"
sys.path[:0] = [str(ROOT), str(E2E), str(HERE)]

import redis  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

PYTHON = Path(os.environ.get("WAKAQ_BENCH_PYTHON", ROOT / ".venv" / "bin" / "python"))
WORKER = PYTHON.parent / "wakaq-worker"


@dataclass
class Soak:
    seconds: float = 600.0
    rate: float = 5_000.0
    kill_every: float = 10.0
    restart_at: float | None = 300.0
    interval: float = 60.0
    concurrency: int = 2
    drain_timeout: float = 120.0
    log: Any = None
    intervals: list[dict[str, Any]] = field(default_factory=list)


class Producer(threading.Thread):
    """Offers `rate` tasks/s in chunks every 10 ms; counts only what Redis acknowledged (retries on outages)."""

    def __init__(self, url: str, rate: float, seconds: float) -> None:
        super().__init__(name="soak-producer", daemon=True)
        self.url, self.rate, self.seconds = url, rate, seconds
        self.sent = 0
        self.errors = 0
        self.stop = threading.Event()

    def run(self) -> None:
        os.environ["BENCH_URL"] = self.url
        import soak_app

        kinds = [soak_app.sync_task, soak_app.async_task, soak_app.failing, soak_app.slow]
        weights = [0.4945, 0.4945, 0.01, 0.001]
        rng = random.Random(12)
        started = time.monotonic()
        while not self.stop.is_set() and (now := time.monotonic()) - started < self.seconds:
            due = int((now - started) * self.rate) - self.sent
            if due > 0:
                batch: dict[Any, list[Any]] = {}
                sent_at = time.time()
                for k in range(due):
                    batch.setdefault(rng.choices(kinds, weights)[0], []).append(((self.sent + k, sent_at), {}))
                try:
                    for task, calls in batch.items():
                        task.delay_many(calls)
                except Exception:  # Redis restarting: the chunk is offered again with the same ids
                    self.errors += 1
                    time.sleep(0.05)
                    continue
                self.sent += due
            time.sleep(0.01)


def tree(pid: int) -> list[int]:
    import psutil

    try:
        return [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return [pid]


def uss_mb(pid: int) -> float:
    import psutil

    try:
        return psutil.Process(pid).memory_full_info().uss / 2**20
    except psutil.Error:
        return float("nan")


def rss_mb(pid: int) -> float:
    import psutil

    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return float("nan")


def run(opts: Soak) -> dict[str, Any]:
    """One soak; returns the per-interval rows and the final count."""
    say = opts.log or (lambda text: print(text, file=sys.stderr, flush=True))
    workdir = Path(tempfile.mkdtemp(prefix="wakaq-soak-"))
    server = RedisServer("--appendonly", "yes", "--appendfsync", "always", "--save", "", dir=str(workdir / "redis"))
    (workdir / "redis").mkdir()
    server.start()
    bookkeeping = RedisServer().start()
    env = dict(
        os.environ,
        BENCH_URL=server.url,
        BENCH_PROGRESS_URL=bookkeeping.url,
        BENCH_CONCURRENCY=str(opts.concurrency),
        # NOTE: each task's record is written before the task returns (so before its ack): a SIGKILLed child
        # cannot take records of acknowledged tasks with it, as an in-memory count flushed every 10 ms would
        BENCH_PROGRESS_SYNC="1",
        PYTHONPATH=os.pathsep.join([str(E2E), str(HERE)]),
    )
    os.environ["BENCH_PROGRESS_URL"] = bookkeeping.url
    pr = redis.Redis.from_url(bookkeeping.url)
    log_file = (workdir / "worker.log").open("wb")
    worker = subprocess.Popen(
        [str(WORKER), "--app", "soak_app.app"], env=env, cwd=HERE, stdout=log_file, stderr=subprocess.STDOUT
    )
    producer = Producer(server.url, opts.rate, opts.seconds)
    rng = random.Random(7)
    kills = restarts = 0
    try:
        deadline = time.monotonic() + 30
        while pr.hlen("bench:ready") < opts.concurrency:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError(f"worker did not start: {(workdir / 'worker.log').read_text()[-800:]}")
            time.sleep(0.05)
        started = time.monotonic()
        producer.start()
        next_kill, next_row = started + opts.kill_every, started + opts.interval
        restart_at = started + opts.restart_at if opts.restart_at is not None else None
        last_done = 0
        while producer.is_alive():
            now = time.monotonic()
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited: {(workdir / 'worker.log').read_text()[-800:]}")
            if now >= next_kill:
                children = tree(worker.pid)[1:]
                if children:
                    os.kill(rng.choice(children), signal.SIGKILL)
                    kills += 1
                next_kill += opts.kill_every
            if restart_at is not None and now >= restart_at:
                say("soak: restarting Redis")
                server.stop()
                time.sleep(0.5)
                server.start()
                restarts += 1
                restart_at = None
            if now >= next_row:
                last_done = interval_row(opts, pr, worker.pid, now - started, last_done, producer, say)
                next_row += opts.interval
            time.sleep(0.05)
        sent = producer.sent
        drain_deadline = time.monotonic() + opts.drain_timeout
        while distinct(pr) < sent and time.monotonic() < drain_deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # late duplicates
        interval_row(opts, pr, worker.pid, time.monotonic() - started, last_done, producer, say)
        _, idn, ran = counts(pr)
        failed = int(redis.Redis.from_url(server.url).llen("wakaq:failed:soak"))
        final = {
            "sent": sent,
            "done": ran,
            "duplicates": idn - ran,
            "failed_recorded": failed,
            "lost": sent - ran,
            "kills": kills,
            "redis_restarts": restarts,
            "producer_retries": producer.errors,
        }
    finally:
        producer.stop.set()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            for pid in tree(worker.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            worker.wait(5)
        log_file.close()
        server.cleanup()
        bookkeeping.cleanup()
    return {
        "intervals": opts.intervals,
        "final": final,
        "options": {k: v for k, v in vars(opts).items() if k not in ("log", "intervals")},
    }


def counts(pr: redis.Redis) -> tuple[int, int, int]:
    pipe = pr.pipeline(transaction=False)
    pipe.get("bench:done").get("bench:idn").bitcount("bench:ids")
    done, idn, ran = pipe.execute()
    return int(done or 0), int(idn or 0), int(ran or 0)


def distinct(pr: redis.Redis) -> int:
    return int(pr.bitcount("bench:ids"))


def interval_row(opts: Soak, pr: redis.Redis, pid: int, at: float, last_done: int, producer: Producer, say: Any) -> int:
    pipe = pr.pipeline(transaction=True)
    pipe.lrange("bench:lat", 0, -1).delete("bench:lat")
    raw, _ = pipe.execute()
    lat = sorted(float(v) for v in raw)
    done = int(pr.get("bench:done") or 0)
    pids = tree(pid)
    span = opts.interval if opts.intervals else max(at, 1e-9)
    row = {
        "at_s": round(at, 1),
        "sent": producer.sent,
        "done": done,
        "rate": (done - last_done) / span,
        "p50_ms": 1000 * lat[len(lat) // 2] if lat else float("nan"),
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan"),
        # NOTE: USS drops while a freshly forked child still shares the parent's pages: the trend uses RSS
        "parent_rss_mb": rss_mb(pids[0]),
        "parent_uss_mb": uss_mb(pids[0]),
        "children_uss_mb": [round(uss_mb(p), 1) for p in pids[1:]],
    }
    opts.intervals.append(row)
    say(
        f"soak t={row['at_s']:>6}s sent {row['sent']:,} done {done:,} rate {row['rate']:,.0f}/s p50"
        f" {row['p50_ms']:.1f} ms p99 {row['p99_ms']:.1f} ms parent USS {row['parent_uss_mb']:.1f} MB children"
        f" {row['children_uss_mb']}"
    )
    return done


def trend_mb(values: list[float]) -> float:
    """Growth of a memory series: mean of its last third minus mean of its first third (after the first point)."""
    values = [v for v in values[1:] if v == v]
    if len(values) < 3:
        return 0.0
    third = max(1, len(values) // 3)
    return statistics.fmean(values[-third:]) - statistics.fmean(values[:third])


def parent_rss(result: dict[str, Any]) -> list[float]:
    return [r["parent_rss_mb"] for r in result["intervals"]]


def markdown(result: dict[str, Any]) -> str:
    o, f = result["options"], result["final"]
    lines = [
        "# Soak",
        "",
        f"{o['seconds']:.0f} s at {o['rate']:,.0f} tasks/s offered, a child SIGKILLed every {o['kill_every']:g} s,"
        f" Redis restarted at {o['restart_at']} s; {o['concurrency']} children.",
        "",
        "| t (s) | sent | done | tasks/s | p50 ms | p99 ms | parent RSS / USS MB | children USS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["intervals"]:
        lines.append(
            f"| {r['at_s']} | {r['sent']:,} | {r['done']:,} | {r['rate']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f}"
            f" | {r['parent_rss_mb']:.1f} / {r['parent_uss_mb']:.1f} | {', '.join(map(str, r['children_uss_mb']))} |"
        )
    lines += [
        "",
        f"Final: sent {f['sent']:,}, done {f['done']:,}, duplicates {f['duplicates']:,}, failed-recorded"
        f" {f['failed_recorded']:,}, **lost {f['lost']:,}**; {f['kills']} children killed, {f['redis_restarts']}"
        f" Redis restart(s), {f['producer_retries']} producer retries.",
        f"Parent RSS trend (last third minus first third): {trend_mb(parent_rss(result)):+.1f} MB.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--rate", type=float, default=5_000.0)
    p.add_argument("--kill-every", type=float, default=10.0)
    p.add_argument("--restart-at", type=float, default=300.0, help="seconds; negative: no Redis restart")
    p.add_argument("--interval", type=float, default=60.0)
    p.add_argument("--drain-timeout", type=float, default=120.0, help="seconds to wait for the last tasks")
    p.add_argument("--out", type=Path, help="write the Markdown summary here (and the JSON beside it)")
    args = p.parse_args()
    restart = args.restart_at if args.restart_at >= 0 else None
    result = run(
        Soak(args.seconds, args.rate, args.kill_every, restart, args.interval, drain_timeout=args.drain_timeout)
    )
    text = markdown(result)
    print(text)
    if args.out:
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    return 0 if result["final"]["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
