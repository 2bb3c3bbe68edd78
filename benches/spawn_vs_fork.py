"""Spawn mode vs fork mode: start-up (worker start to first task done) and drain-noop (N queued no-op tasks,
2 children), interleaved rounds against one private redis-server.

    .venv/bin/python benches/spawn_vs_fork.py [--n 20000] [--rounds 3]

Uses whatever build is installed in .venv (`make build` = debug, `make build-release` = optimised): say which.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.redis_server import RedisServer  # noqa: E402

APP = "benches.spawn.app.wakaq"


def one_run(url: str, method: str, n: int, timeout: float) -> dict[str, float]:
    from benches.spawn.app import DONE, FIRST, noop

    r = redis.Redis.from_url(url)
    r.flushall()
    for start in range(0, n, 1000):
        noop.delay_many([((), {})] * min(1000, n - start))
    env = dict(os.environ, SPAWN_BENCH_URL=url, SPAWN_BENCH_METHOD=method, PYTHONPATH=str(ROOT))
    t0 = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wakaq", "worker", "--app", APP], env=env, cwd=ROOT, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + timeout
        while int(r.get(DONE) or 0) < n:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{method}: {r.get(DONE)} of {n} done (worker rc {proc.poll()})")
            time.sleep(0.005)
        t_all = time.time()
        first = float(r.get(FIRST) or t_all)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return {"startup_s": first - t0, "drain_s": t_all - t0, "tasks_per_s": n / (t_all - first)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0, help="per run")
    args = parser.parse_args()
    server = RedisServer().start()
    os.environ["SPAWN_BENCH_URL"] = server.url  # read when benches.spawn.app is first imported
    results: dict[str, list[dict[str, float]]] = {"fork": [], "spawn": []}
    try:
        for i in range(args.rounds):
            order = ["fork", "spawn"] if i % 2 == 0 else ["spawn", "fork"]
            for method in order:
                res = one_run(server.url, method, args.n, args.timeout)
                results[method].append(res)
                print(f"round {i + 1} {method:5}: " + ", ".join(f"{k} {v:.3f}" for k, v in res.items()), flush=True)
    finally:
        server.stop()
    print(f"\nmedian of {args.rounds} rounds, N = {args.n}, 2 children:")
    print("| start method | start-up to first task (s) | drain-noop total (s) | tasks/s after the first |")
    print("| --- | --- | --- | --- |")
    for method, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"| {method} | {med['startup_s']:.3f} | {med['drain_s']:.2f} | {med['tasks_per_s']:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
