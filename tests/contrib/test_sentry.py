"""The Sentry integration (wakaq.contrib.sentry) with the real sentry-sdk: a real `wakaq-worker` whose app
(tests/apps/sentry_app.py) initialises Sentry with a transport that writes every envelope item to a file, failing
tasks, and a producer in a process of its own (Sentry's client is global) that sends inside a span."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import pytest
import redis

from tests.workers import StartWorker, wait_until
from wakaq import tracing
from wakaq.contrib.sentry import WakaqIntegration

pytestmark = [pytest.mark.app("tests.apps.sentry_app"), pytest.mark.timeout(90)]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def items(path: Path, kind: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    found = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [item["payload"] for item in found if item["type"] == kind]


def error_events(path: Path, count: int = 1) -> list[dict[str, Any]]:
    """Wait for `count` error events from the integration (the worker's own error logs come as other events)."""

    def ready() -> list[dict[str, Any]]:
        found = [e for e in items(path, "event") if e.get("exception")]
        return found if len(found) >= count else []

    return wait_until(ready, 20, what=f"{count} error event(s)")


def test_a_failing_task_is_reported_with_its_task_and_the_producers_trace(
    app: ModuleType, start_worker: StartWorker, tmp_path: Path
) -> None:
    """Sent by an OpenTelemetry producer (a W3C traceparent only): the event is in that trace."""
    path = tmp_path / "envelopes.jsonl"
    start_worker(envelopes=path)
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    app.wakaq.broker.push(
        "default", "boom", ["no such user"], {}, 0, {"id": "t-1", "headers": {"traceparent": traceparent}}
    )
    (event,) = error_events(path)
    (exception,) = event["exception"]["values"]
    assert (exception["type"], exception["value"]) == ("KeyError", "'no such user'")
    assert (exception["mechanism"]["type"], exception["mechanism"]["handled"]) == ("wakaq", False)
    assert event["tags"] == {
        "wakaq.task": "boom",
        "wakaq.queue": "default",
        "wakaq.attempt": 1,
        "wakaq.task_id": "t-1",
    } | {k: v for k, v in event["tags"].items() if not k.startswith("wakaq.")}
    assert event["contexts"]["wakaq"] == {"task": "boom", "queue": "default", "id": "t-1", "attempt": 1}
    assert event["contexts"]["trace"]["trace_id"] == TRACE_ID


def test_retried_attempts_are_reported_each_with_its_attempt_in_one_trace(
    app: ModuleType, start_worker: StartWorker, tmp_path: Path
) -> None:
    path = tmp_path / "envelopes.jsonl"
    start_worker(envelopes=path)
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    app.wakaq.broker.push("default", "slow_then_boom", ["k"], {}, 0, {"headers": {"traceparent": traceparent}})
    events = error_events(path, count=2)
    assert sorted(e["tags"]["wakaq.attempt"] for e in events) == [1, 2]
    assert {e["contexts"]["trace"]["trace_id"] for e in events} == {TRACE_ID}
    assert {e["exception"]["values"][0]["type"] for e in events} == {"TimeoutError"}


def test_an_async_task_is_reported_too(app: ModuleType, start_worker: StartWorker, tmp_path: Path) -> None:
    path = tmp_path / "envelopes.jsonl"
    start_worker(envelopes=path)
    app.aboom.delay("async trouble")  # NOTE: no tracer in this process: a plain payload, a trace of the worker's own
    (event,) = error_events(path)
    assert event["exception"]["values"][0]["type"] == "RuntimeError"
    assert event["tags"]["wakaq.task"] == "aboom" and "wakaq.task_id" not in event["tags"]
    assert len(event["contexts"]["trace"]["trace_id"]) == 32


def test_a_producer_with_sentry_sends_its_trace_and_the_worker_continues_it(
    app: ModuleType, start_worker: StartWorker, rclient: redis.Redis, tmp_path: Path, redis_url: str
) -> None:
    sent_path = tmp_path / "producer.jsonl"
    script = """
import sys, sentry_sdk
from tests.apps.sentry_app import boom, init_sentry
init_sentry(sys.argv[1])
with sentry_sdk.start_span(name="checkout") as span:
    boom.delay("from a request")
print(span.trace_id)
sentry_sdk.flush()
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(sent_path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    trace_id = done.stdout.strip()
    (payload,) = rclient.lrange(app.wakaq.keys.queue("default"), 0, -1)
    headers = msgpack.unpackb(payload)["meta"]["headers"]
    assert headers["sentry-trace"].startswith(f"{trace_id}-")
    assert f"sentry-trace_id={trace_id}" in headers["baggage"]
    path = tmp_path / "envelopes.jsonl"
    start_worker(envelopes=path)
    (event,) = error_events(path)
    assert event["contexts"]["trace"]["trace_id"] == trace_id
    assert event["tags"]["wakaq.task"] == "boom"


def test_the_integration_registers_its_tracer_once() -> None:
    WakaqIntegration.setup_once()
    WakaqIntegration.setup_once()
    from wakaq.contrib import sentry

    assert tracing._tracers.count(sentry._TRACER) == 1
    tracing.unregister(sentry._TRACER)
    assert not tracing._tracers
