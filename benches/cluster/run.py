"""One Redis vs a 6-node Redis Cluster, in the same run: single `.delay()` calls and drain-noop.

    .venv/bin/python benches/cluster/run.py [--n 20000] [--rounds 3]

Starts a private redis-server and a private cluster (tests/redis_cluster.py), then per round and target (order
alternating): N single `.delay()` calls from one process (calls per second), and the drain of those N queued no-op
tasks by one `wakaq-worker` (concurrency 2): from the first task claimed until the queue is empty and nothing is in
flight (tasks per second). Prints a Markdown table (best of the rounds). Whatever build is installed in `.venv` is
measured: use `make build-release` for absolute figures; the cluster/single ratio is the point.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from tests.redis_cluster import RedisClusterServers  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

from wakaq.keys import Keys  # noqa: E402

BIN = Path(sys.executable).parent


def _app(url: str) -> Any:
    os.environ["BENCH_URL"] = url
    sys.modules.pop("benches.cluster.app", None)
    return importlib.import_module("benches.cluster.app")


def _delays(url: str, n: int) -> float:
    noop = _app(url).noop
    t0 = time.perf_counter()
    for i in range(n):
        noop.delay(i)
    return n / (time.perf_counter() - t0)


def _drain(url: str, client: Any, keys: Keys, n: int) -> float:
    env = dict(os.environ, BENCH_URL=url, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [str(BIN / "wakaq-worker"), "--app", "benches.cluster.app.app"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while client.llen(keys.queue("bench")) >= n:
            assert time.monotonic() < deadline and proc.poll() is None, "the worker did not start"
            time.sleep(0.001)
        t0 = time.perf_counter()
        while client.llen(keys.queue("bench")) > 0 or _inflight(client, keys) > 0:
            assert time.monotonic() < deadline and proc.poll() is None, "the drain did not finish"
            time.sleep(0.002)
        return n / (time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.wait(30)


def _inflight(client: Any, keys: Keys) -> int:
    return sum(int(client.hlen(keys.inflight(d.decode()))) for d in client.smembers(keys.daemons))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    single = RedisServer().start()
    cluster = RedisClusterServers().start()
    try:
        targets = {
            "one Redis": (single.url, redis.Redis.from_url(single.url), Keys()),
            "Redis Cluster (3+3)": (cluster.url, cluster.client(), Keys(cluster=True)),
        }
        best: dict[str, list[float]] = {name: [0.0, 0.0] for name in targets}
        for r in range(args.rounds):
            order = list(targets) if r % 2 == 0 else list(reversed(targets))
            for name in order:
                url, client, keys = targets[name]
                delay = _delays(url, args.n)
                drain = _drain(url, client, keys, args.n)
                best[name] = [max(best[name][0], delay), max(best[name][1], drain)]
                print(f"round {r + 1} {name}: .delay() {delay:,.0f}/s, drain-noop {drain:,.0f}/s", flush=True)
        print(f"\n| target (N = {args.n:,}, best of {args.rounds}) | single .delay() per s | drain-noop tasks per s |")
        print("| --- | --- | --- |")
        for name, (delay, drain) in best.items():
            print(f"| {name} | {delay:,.0f} | {drain:,.0f} |")
    finally:
        cluster.cleanup()
        single.cleanup()


if __name__ == "__main__":
    main()
