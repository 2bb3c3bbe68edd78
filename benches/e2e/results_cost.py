"""What storing results costs: drain-noop of N tasks with results off vs on, and the `.delay().result()` round trip.

    make build-release                                # optimised, into .venv (a debug build measures the debug build)
    .venv/bin/python benches/e2e/results_cost.py      # --n 20000 --rounds 4 --trips 500 --concurrency 2

One private redis-server (tests/redis_server.py) and one real `wakaq-worker` daemon of this module's app. A drain
round pushes N no-op tasks in one `push_many` (results on: each payload carries meta `id` and `results`, as
`.delay()` of a `store_results` task writes it) while the worker is idle, and times until the queue and the
in-flight hash are empty (every task acked). Rounds alternate off/on; the script prints every figure, the medians and
the ratio on/off. The round trip: `.delay()` then `handle.result()` one at a time from this process, worker idle
between calls: p50, p99 and max.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from wakaq import WakaQ  # noqa: E402

QUEUE = "bench"
wakaq = WakaQ(
    url=os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0"),
    queues=[QUEUE],
    concurrency=int(os.environ.get("BENCH_CONCURRENCY", "2")),
    worker_log_level="WARNING",
    worker_log_file=os.environ.get("BENCH_LOG") or None,
)


@wakaq.task
def noop() -> None:
    pass


@wakaq.task(store_results=True)
def noop_result() -> int:
    return 1


def drained(client: Any) -> bool:
    if client.llen(wakaq.keys.queue(QUEUE)):
        return False
    return all(client.hlen(key) == 0 for key in client.keys(wakaq.keys.inflight("*")))


def drain(client: Any, n: int, results: bool) -> float:
    """Seconds from the push of n tasks to the last ack."""
    from wakaq.ids import new_id

    if results:
        items = [(QUEUE, "noop_result", (), {}, {"id": new_id(), "results": 3600}) for _ in range(n)]
    else:
        items = [(QUEUE, "noop", (), {}, None) for _ in range(n)]
    began = time.perf_counter()
    wakaq.broker.push_many(items)
    deadline = time.monotonic() + 300
    while not drained(client):
        if time.monotonic() > deadline:
            raise SystemExit("tasks did not drain within 300 s")
        time.sleep(0.002)
    return time.perf_counter() - began


def round_trips(count: int) -> list[float]:
    times = []
    for _ in range(count):
        began = time.perf_counter()
        handle = noop_result.delay()
        assert handle.result(timeout=10) == 1
        times.append(time.perf_counter() - began)
    return times


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--trips", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    from tests.redis_server import RedisServer

    from wakaq.connection import redis_py_client

    server = RedisServer().start()
    with tempfile.TemporaryDirectory(prefix="wakaq-results-cost-") as tmp:
        env = dict(
            os.environ,
            BENCH_URL=server.url,
            BENCH_CONCURRENCY=str(args.concurrency),
            BENCH_LOG=str(Path(tmp) / "worker.log"),
            PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]),
        )
        os.environ["BENCH_URL"] = server.url
        # NOTE: this module again, as the worker imports it: its app now points at the private server
        bench = importlib.import_module("results_cost")
        client = redis_py_client(bench.wakaq)
        worker = subprocess.Popen([sys.executable, "-m", "wakaq", "worker", "--app", "results_cost.wakaq"], env=env)
        try:
            bench.drain(client, 100, True)  # warm up: children forked, scripts loaded
            rates: dict[str, list[float]] = {"off": [], "on": []}
            for i in range(args.rounds):
                for key in ("off", "on") if i % 2 == 0 else ("on", "off"):
                    rates[key].append(args.n / bench.drain(client, args.n, key == "on"))
                    print(f"round {i + 1} results {key:<3} {rates[key][-1]:>9.0f} tasks/s", flush=True)
            trips = bench.round_trips(args.trips)
        finally:
            worker.terminate()
            worker.wait(30)
            server.cleanup()
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"drain-noop N={args.n}, {args.rounds} rounds, {args.concurrency} children, medians (tasks/s):")
    for k, v in med.items():
        print(f"  results {k:<3} {v:>9.0f}   (min {min(rates[k]):.0f}, max {max(rates[k]):.0f})")
    print(f"  ratio on/off = {med['on'] / med['off']:.3f}")
    ms = [t * 1000 for t in trips]
    print(
        f".delay().result() round trip, {len(ms)} calls: p50 {percentile(ms, 50):.2f} ms, "
        f"p99 {percentile(ms, 99):.2f} ms, max {max(ms):.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
