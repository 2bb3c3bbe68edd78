"""What tracing costs `.delay()` (wakaq.tracing): off (the check alone), next to the same `.delay()` before tracing
existed, and on (an OpenTelemetry SDK tracer with a no-op exporter).

    .venv/bin/python benches/tracing_delay.py [--n 20000] [--rounds 5] [--before REV]

On a private redis-server, one producer thread, tasks/s of each leg (best round, interleaved rounds):
- `before`: `Task` as it was at `--before` (default `main`: git show of python/wakaq/task.py), same app and broker;
- `off`: this tree's `.delay()` with no tracer on (redis-py 8 imports opentelemetry-api when it is installed);
- `off, SDK imported`: the same once the process imported the SDK too, with no global tracer provider set;
- `on`: with an SDK tracer provider (SimpleSpanProcessor, an exporter that drops spans) registered.
Also the `tracing.active()` check alone, in ns, in both "off" states. Whatever build .venv holds is measured
(`make build-release` for release figures).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
from tests.redis_server import RedisServer

from wakaq import WakaQ, tracing

ROOT = Path(__file__).resolve().parent.parent


def noop(x: int) -> None: ...


def old_task_class(rev: str) -> Any:
    """`Task` from python/wakaq/task.py at `rev`, loaded as a module of its own beside this tree's package."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:python/wakaq/task.py"], check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "wakaq_task_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("wakaq_task_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Task


def rate(send: Callable[[int], Any], n: int, client: redis.Redis, key: str) -> float:
    client.delete(key)
    began = time.perf_counter()
    for i in range(n):
        send(i)
    elapsed = time.perf_counter() - began
    assert client.llen(key) == n
    return n / elapsed


def sdk_tracer() -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Drop()))
    return tracing.OpenTelemetry(provider)


def check_ns() -> float:
    """ns per `tracing.active()` call, best of 5 runs of a million."""
    return min(timeit.repeat(tracing.active, number=1_000_000, repeat=5)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", default="main")
    opts = parser.parse_args()
    server = RedisServer().start()
    try:
        app = WakaQ(queues=["default"], url=server.url)
        current = app.task(noop)
        before = old_task_class(opts.before)(noop, app)
        client = redis.Redis.from_url(server.url)
        key = app.keys.queue("default")
        best: dict[str, float] = {}

        def leg(name: str, send: Callable[[int], Any]) -> None:
            best[name] = max(best.get(name, 0.0), rate(send, opts.n, client, key))

        for _ in range(opts.rounds):
            leg("before", before.delay)
            leg("off", current.delay)
        # NOTE: redis-py 8 imports opentelemetry when it is installed (its own instrumentation)
        imported = "opentelemetry.trace" in sys.modules
        checks = {"imported, no provider set" if imported else "not imported": check_ns()}
        tracer = sdk_tracer()
        for _ in range(opts.rounds):
            leg("before", before.delay)
            leg("off, SDK imported", current.delay)
            tracing.register(tracer)
            try:
                leg("on", current.delay)
            finally:
                tracing.unregister(tracer)
        tracing._otel_seen = False  # NOTE: unregister stops the provider search; let the check do it again
        checks["imported, no provider set"] = check_ns()
        del sys.modules["opentelemetry.trace"]  # NOTE: what the check costs a process that never imported it
        checks["not imported"] = check_ns()
        print(f"opentelemetry imported before the SDK leg: {imported}")
        for name, value in best.items():
            print(f"{name:>20}: {value:8.0f} tasks/s  {1e6 / value:6.2f} us/delay")
        print(f"off vs before: {100 * (best['before'] / best['off'] - 1):+.2f}% time per delay")
        for state, ns in checks.items():
            print(f"tracing.active(), opentelemetry {state}: {ns:.0f} ns")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
