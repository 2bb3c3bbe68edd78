"""OpenTelemetry across real processes (wakaq.tracing): a producer span here, in the test process (the SDK's in-memory
exporter), and the task's span in a real `wakaq-worker` whose app (tests/apps/otel_app.py) sets the SDK up with an
exporter that writes each span to a file. Plus what must not change: with no tracer on, a plain payload is the same
bytes, and a malformed `headers` meta is refused by the worker's one meta parser."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import pytest
import redis
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.apps import spans
from tests.workers import StartWorker, wait_until
from wakaq import tracing
from wakaq._wakaq import encode_task

pytestmark = [pytest.mark.app("tests.apps.otel_app"), pytest.mark.timeout(90)]


@pytest.fixture
def sent() -> Iterator[InMemorySpanExporter]:
    """The producer's spans: an SDK tracer provider of this test's own, registered with wakaq.tracing until the test
    ends. NOTE: not the global provider, which can be set once per process and would trace every later test."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = tracing.OpenTelemetry(provider)
    tracing.register(tracer)
    try:
        yield exporter
    finally:
        tracing.unregister(tracer)
        provider.shutdown()


def producer_spans(exporter: InMemorySpanExporter) -> list[dict[str, Any]]:
    return [spans.as_record(span) for span in exporter.get_finished_spans()]


def worker_spans(path: Path, name: str, count: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Wait until the worker wrote `count` spans called `name`; every span of the file once they are there."""

    def ready() -> list[dict[str, Any]]:
        found = spans.read(path)
        return found if sum(s["name"] == name for s in found) >= count else []

    return wait_until(ready, timeout, what=f"{count} worker span(s) {name!r}")


def only(found: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (span,) = [s for s in found if s["name"] == name]
    return span


def sent_by(traceparent: str) -> tuple[str, str]:
    """(trace id, parent span id) of a W3C traceparent; its flags say "sampled" (bit 0)."""
    version, trace_id, span_id, flags = traceparent.split("-")
    assert version == "00" and int(flags, 16) & 1
    return trace_id, span_id


def queued(app: ModuleType, rclient: redis.Redis, queue: str = "default") -> list[bytes]:
    return list(rclient.lrange(app.wakaq.keys.queue(queue), 0, -1))


# ---- the producer: what is sent ------------------------------------------------------------------------------------


def test_with_no_tracer_a_plain_payload_stays_the_same_bytes(app: ModuleType, rclient: redis.Redis) -> None:
    assert not tracing.active()
    app.ok.delay(1)
    assert queued(app, rclient) == [encode_task("ok", [1], {})]


def test_a_traced_delay_sends_a_producer_span_and_its_context(
    app: ModuleType, rclient: redis.Redis, sent: InMemorySpanExporter
) -> None:
    app.ok.delay(1)
    app.ok.delay(2, queue="other")
    (send, send_other) = producer_spans(sent)
    assert send["name"] == "send default" and send["kind"] == "PRODUCER"
    assert send["attributes"] == {
        "messaging.system": "wakaq",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": "default",
        "messaging.wakaq.task": "ok",
    }
    assert send_other["name"] == "send other"
    (payload,) = queued(app, rclient)
    meta = msgpack.unpackb(payload)["meta"]
    assert list(meta) == ["headers"] and list(meta["headers"]) == ["traceparent"]
    assert sent_by(meta["headers"]["traceparent"]) == (send["trace_id"], send["span_id"])


def test_delay_many_sends_one_span_whose_context_every_task_carries(
    app: ModuleType, rclient: redis.Redis, sent: InMemorySpanExporter
) -> None:
    assert app.ok.delay_many([((1,), {}), ((2,), {}), ((3,), {})]) == 3
    (send,) = producer_spans(sent)
    assert send["attributes"]["messaging.batch.message_count"] == 3
    parents = [sent_by(msgpack.unpackb(p)["meta"]["headers"]["traceparent"]) for p in queued(app, rclient)]
    assert parents == [(send["trace_id"], send["span_id"])] * 3


def test_tracing_off_for_the_app_sends_nothing_even_with_a_tracer_on(
    app: ModuleType, rclient: redis.Redis, sent: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.wakaq, "tracing", "off")
    app.ok.delay(1)
    assert queued(app, rclient) == [encode_task("ok", [1], {})]
    assert producer_spans(sent) == []


def test_a_json_payload_app_sends_wakaqs_json_with_a_tracer_on(
    redis_url: str, rclient: redis.Redis, sent: InMemorySpanExporter
) -> None:
    """JSON payloads carry no meta, so no trace headers: with a tracer on, a `payload_format="json"` app still
    sends WakaQ's plain JSON (before the merge of the two features, every traced push raised)."""
    from wakaq import WakaQ

    json_app = WakaQ(url=redis_url, queues=["default"], payload_format="json")

    @json_app.task
    def ok(x: int) -> int:
        return x

    ok.delay(1)
    ok.delay_with_options((2,))
    assert [json.loads(raw) for raw in rclient.lrange(json_app.keys.queue("default"), 0, -1)] == [
        {"name": "ok", "args": [1], "kwargs": {}, "retry": 0},
        {"name": "ok", "args": [2], "kwargs": {}, "retry": 0},
    ]
    assert producer_spans(sent) == []


def test_a_tracer_provider_set_globally_is_found_and_none_set_costs_nothing(redis_url: str) -> None:
    """In fresh processes (the global provider can be set once): with opentelemetry imported but no provider set, the
    payload is the plain one; once the SDK's provider is set, `.delay()` sends its context."""
    script = """
import sys, msgpack, redis
from opentelemetry import trace
from tests.apps.otel_app import wakaq, ok
from wakaq import tracing
if sys.argv[1] == "sdk":
    from opentelemetry.sdk.trace import TracerProvider
    trace.set_tracer_provider(TracerProvider())
ok.delay(1)
client = redis.Redis.from_url(sys.argv[2])
payload = client.lpop(wakaq.keys.queue("default"))
print(tracing.active(), sorted(msgpack.unpackb(payload).get("meta", {}).get("headers", {})))
"""
    runs = {}
    for mode in ("none", "sdk"):
        done = subprocess.run(
            [sys.executable, "-c", script, mode, redis_url], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        runs[mode] = done.stdout.strip()
    assert runs == {"none": "False []", "sdk": "True ['traceparent']"}


def test_headers_past_the_bounds_are_dropped_not_sent() -> None:
    headers = {f"h{i}": "v" for i in range(20)}
    headers["big"] = "x" * (tracing.MAX_HEADER_VALUE + 1)
    kept = tracing.bounded({"": "empty", "n": 1, **headers})
    assert list(kept) == [f"h{i}" for i in range(tracing.MAX_HEADERS)]


def test_the_worker_refuses_malformed_headers(app: ModuleType, rclient: redis.Redis, start_worker: StartWorker) -> None:
    app.wakaq.broker.push("default", "ok", [1], {}, 0, {"headers": {"traceparent": 7}})
    start_worker()

    def failed() -> list[dict[str, Any]]:
        return [msgpack.unpackb(raw) for raw in rclient.lrange(app.wakaq.keys.failed("default"), 0, -1)]

    (record,) = wait_until(failed, 15, what="the failed record")
    assert "malformed meta: 'headers' must be a map of str to str, got a value of type int" in str(record)


# ---- the worker: the task's span -----------------------------------------------------------------------------------


def test_the_task_span_is_a_child_of_the_producer_span(
    app: ModuleType, sent: InMemorySpanExporter, start_worker: StartWorker, tmp_path: Path
) -> None:
    path = tmp_path / "spans.jsonl"
    start_worker(spans=path)
    app.ok.delay(1)
    app.aok.delay(2, queue="other")
    worker_spans(path, "inner async work")
    found = worker_spans(path, "inner work")
    send, send_other = producer_spans(sent)
    process = only(found, "process default")
    assert process["kind"] == "CONSUMER"
    assert (process["trace_id"], process["parent_id"]) == (send["trace_id"], send["span_id"])
    assert process["status"] == "UNSET" and process["events"] == [] and process["links"] == []
    assert process["attributes"] == {
        "messaging.system": "wakaq",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "default",
        "messaging.wakaq.task": "ok",
        "messaging.wakaq.attempt": 1,
    }
    inner = only(found, "inner work")
    assert (inner["trace_id"], inner["parent_id"]) == (send["trace_id"], process["span_id"])
    # an async task, from the queue the producer chose
    process_other = only(found, "process other")
    assert (process_other["trace_id"], process_other["parent_id"]) == (send_other["trace_id"], send_other["span_id"])
    assert process_other["attributes"]["messaging.wakaq.task"] == "aok"
    inner_async = only(found, "inner async work")
    assert inner_async["parent_id"] == process_other["span_id"]


def test_link_mode_starts_a_new_trace_linked_to_the_producer_span(
    app: ModuleType, sent: InMemorySpanExporter, start_worker: StartWorker, tmp_path: Path
) -> None:
    path = tmp_path / "spans.jsonl"
    start_worker(spans=path, tracing="link")
    app.ok.delay(1)
    process = only(worker_spans(path, "process default"), "process default")
    (send,) = producer_spans(sent)
    assert process["parent_id"] is None and process["trace_id"] != send["trace_id"]
    assert process["links"] == [{"trace_id": send["trace_id"], "span_id": send["span_id"]}]


def test_a_failing_task_span_has_the_error_status_and_the_exception(
    app: ModuleType, sent: InMemorySpanExporter, start_worker: StartWorker, tmp_path: Path
) -> None:
    path = tmp_path / "spans.jsonl"
    start_worker(spans=path)
    app.boom.delay("no such user")
    process = only(worker_spans(path, "process default"), "process default")
    assert process["trace_id"] == producer_spans(sent)[0]["trace_id"]
    assert (process["status"], process["description"]) == ("ERROR", "ValueError: no such user")
    assert process["attributes"]["error.type"] == "ValueError"
    (event,) = process["events"]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "ValueError"
    assert event["attributes"]["exception.message"] == "no such user"
    assert "raise ValueError(message)" in event["attributes"]["exception.stacktrace"]


def test_the_attempts_of_a_retried_task_share_its_trace(
    app: ModuleType, sent: InMemorySpanExporter, start_worker: StartWorker, tmp_path: Path
) -> None:
    path = tmp_path / "spans.jsonl"
    start_worker(spans=path)
    app.flaky.delay("k1")
    found = worker_spans(path, "process default", count=3)
    (send,) = producer_spans(sent)
    attempts = sorted(
        (s for s in found if s["name"] == "process default"), key=lambda s: s["attributes"]["messaging.wakaq.attempt"]
    )
    assert [s["attributes"]["messaging.wakaq.attempt"] for s in attempts] == [1, 2, 3]
    assert {(s["trace_id"], s["parent_id"]) for s in attempts} == {(send["trace_id"], send["span_id"])}
    assert [s["status"] for s in attempts] == ["ERROR", "ERROR", "UNSET"]
    assert attempts[0]["events"][0]["attributes"]["exception.type"] == "TimeoutError"
    # the retries got a task id (wakaq.retries): it is the message id of the later attempts
    assert "messaging.message.id" not in attempts[0]["attributes"]
    assert attempts[1]["attributes"]["messaging.message.id"] == attempts[2]["attributes"]["messaging.message.id"]


def test_a_task_with_an_id_names_it_on_both_spans(
    app: ModuleType, sent: InMemorySpanExporter, start_worker: StartWorker, tmp_path: Path
) -> None:
    path = tmp_path / "spans.jsonl"
    start_worker(spans=path)
    handle = app.with_result.delay(4)
    assert handle.result(timeout=15) == 8
    process = only(worker_spans(path, "process default"), "process default")
    (send,) = producer_spans(sent)
    assert send["attributes"]["messaging.message.id"] == handle.id
    assert process["attributes"]["messaging.message.id"] == handle.id
    assert process["parent_id"] == send["span_id"]


def test_a_task_sent_without_context_gets_a_root_span(
    app: ModuleType, start_worker: StartWorker, tmp_path: Path
) -> None:
    """A producer with no tracer (or WakaQ's own): the worker still traces the task, in a trace of its own."""
    path = tmp_path / "spans.jsonl"
    start_worker(spans=path)
    app.ok.delay(1, queue="other")
    process = only(worker_spans(path, "process other"), "process other")
    assert process["parent_id"] is None and process["links"] == []
    assert process["attributes"]["messaging.destination.name"] == "other"


def test_the_tracing_option_takes_child_link_or_off() -> None:
    from wakaq import WakaQ, WakaQError

    assert [WakaQ(queues=["q"], tracing=m).tracing for m in ("child", "link", "off", False, True)] == [
        "child",
        "link",
        "off",
        "off",
        "child",
    ]
    with pytest.raises(WakaQError, match="tracing must be one of 'child', 'link', 'off' or False, got 'sideways'"):
        WakaQ(queues=["q"], tracing="sideways")
