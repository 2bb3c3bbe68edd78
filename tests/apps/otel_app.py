"""App for the OpenTelemetry tests (tests/test_tracing.py): a worker that traces with the real SDK.

The worker's environment has `WAKAQ_TEST_SPANS` (a file): importing this module then sets the global tracer
provider, exporting every span to that file as it ends. The test process imports the module too (to call `.delay()`)
but without that variable, so it configures nothing there; the test registers its own in-memory tracer instead.
`WAKAQ_TEST_TRACING`: the app's `tracing` option ("child" by default, "link").
"""

from __future__ import annotations

import asyncio
import os

from tests.apps.common import worker_options
from wakaq import WakaQ

if os.environ.get("WAKAQ_TEST_SPANS"):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from tests.apps.spans import FileExporter

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter(os.environ["WAKAQ_TEST_SPANS"])))
    trace.set_tracer_provider(provider)

wakaq = WakaQ(
    queues=["other", "default"],  # the last: the default queue
    wait_timeout=0.5,
    retry_backoff=0.1,
    retry_jitter=False,
    tracing=os.environ.get("WAKAQ_TEST_TRACING", "child"),
    **worker_options(),
)


@wakaq.task
def ok(x: int) -> int:
    with trace_inner("inner work"):
        return x + 1


@wakaq.task
async def aok(x: int) -> int:
    await asyncio.sleep(0)
    with trace_inner("inner async work"):
        return x + 1


@wakaq.task
def boom(message: str) -> None:
    raise ValueError(message)


@wakaq.task(retry_on=TimeoutError, max_retries=2)
def flaky(key: str) -> None:
    """Fails on its first two runs (counted in Redis: a retry may run in another child), then succeeds."""
    from tests.apps.common import Events

    if Events(wakaq).count(f"runs:{key}") <= 2:
        raise TimeoutError(f"slow, run of {key}")


@wakaq.task(store_results=True)
def with_result(x: int) -> int:
    return x * 2


def trace_inner(name: str):  # type: ignore[no-untyped-def]
    """A span the task itself starts: it must be a child of the worker's span."""
    from opentelemetry import trace

    return trace.get_tracer("otel_app").start_as_current_span(name)
