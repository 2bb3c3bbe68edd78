"""Sentry: task exceptions reported with the task's name, queue, id and attempt, in the trace of the code that sent it.

    import sentry_sdk
    from wakaq.contrib.sentry import WakaqIntegration

    sentry_sdk.init(dsn=..., integrations=[WakaqIntegration()], traces_sample_rate=...)

Call `sentry_sdk.init` in the module the worker imports (`wakaq-worker --app mymodule.wakaq`), and in the producers.
Through wakaq.tracing's hooks (no monkeypatching):
- `.delay()` (and `delay_with_options`, `delay_many`, the async producer) opens a "queue.publish" span and sends its
  `sentry-trace` and `baggage` in the payload meta's `headers`;
- the worker runs each task in an isolation scope of its own: tags `wakaq.task`, `wakaq.queue`, `wakaq.task_id` (when
  the task has one) and `wakaq.attempt`, a `wakaq` context with the same, the trace continued from the headers
  (`sentry-trace`/`baggage`, else a W3C `traceparent` sent by an OpenTelemetry producer), a "queue.process" span; an
  exception that leaves the task is captured (unhandled, mechanism "wakaq") and the span gets the error status.

Requires sentry-sdk 3 (`wakaq-rs[sentry]`); `import wakaq` never imports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sentry_sdk
from sentry_sdk.integrations import DidNotEnable, Integration
from sentry_sdk.utils import capture_internal_exceptions, event_from_exception

from wakaq import tracers, tracing

if TYPE_CHECKING:
    from wakaq.tracers import Processing, Sending

try:
    from sentry_sdk.traces import SpanStatus
except ImportError as e:  # NOTE: sentry-sdk 2 has no span-first API
    raise DidNotEnable("wakaq's Sentry integration needs sentry-sdk 3 or later") from e

__all__ = ["WakaqIntegration"]

SENTRY_TRACE = "sentry-trace"
BAGGAGE = "baggage"
TRACEPARENT = "traceparent"


class WakaqIntegration(Integration):
    """The integration: pass it to `sentry_sdk.init(integrations=[...])`."""

    identifier = "wakaq"
    origin = f"auto.queue.{identifier}"

    @staticmethod
    def setup_once() -> None:
        tracing.register(_TRACER)


def _enabled() -> bool:
    return sentry_sdk.get_client().get_integration(WakaqIntegration) is not None


class SentryTracer:
    """wakaq.tracing's hooks for Sentry."""

    @contextmanager
    def sending(self, send: Sending) -> Iterator[None]:
        if not _enabled():
            yield
            return
        attributes: dict[str, Any] = {
            "sentry.op": "queue.publish",
            "sentry.origin": WakaqIntegration.origin,
            "messaging.system": tracers.SYSTEM,
            "messaging.destination.name": send.queue,
            "messaging.wakaq.task": send.task,
        }
        if send.count != 1:
            attributes["messaging.batch.message_count"] = send.count
        with sentry_sdk.start_span(name=f"send {send.queue}", attributes=attributes):
            _write_headers(send.headers)
            yield

    @contextmanager
    def processing(self, run: Processing) -> Iterator[None]:
        if not _enabled():
            yield
            return
        with sentry_sdk.isolation_scope() as scope:
            with capture_internal_exceptions():
                scope.clear_breadcrumbs()
                tags: dict[str, Any] = {"wakaq.task": run.task, "wakaq.queue": run.queue, "wakaq.attempt": run.attempt}
                if run.message_id is not None:
                    tags["wakaq.task_id"] = run.message_id
                scope.set_tags(tags)
                scope.set_context(
                    "wakaq", {"task": run.task, "queue": run.queue, "id": run.message_id, "attempt": run.attempt}
                )
                sentry_sdk.continue_trace(_incoming(run.headers))
            attributes: dict[str, Any] = {
                "sentry.op": "queue.process",
                "sentry.origin": WakaqIntegration.origin,
                "messaging.system": tracers.SYSTEM,
                "messaging.destination.name": run.queue,
                "messaging.message.retry.count": run.attempt - 1,
                "messaging.wakaq.task": run.task,
            }
            if run.message_id is not None:
                attributes["messaging.message.id"] = run.message_id
            with sentry_sdk.start_span(name=run.task, attributes=attributes, parent_span=None) as span:
                try:
                    yield
                except BaseException as e:
                    span.status = SpanStatus.ERROR
                    _capture(e)
                    raise


def _write_headers(headers: dict[str, str]) -> None:
    """Sentry's trace headers for the span now current; its baggage joins one another tracer wrote already."""
    traceparent = sentry_sdk.get_traceparent()
    if traceparent:
        headers[SENTRY_TRACE] = traceparent
    baggage = sentry_sdk.get_baggage()
    if baggage:
        headers[BAGGAGE] = f"{headers[BAGGAGE]},{baggage}" if headers.get(BAGGAGE) else baggage


def _incoming(headers: Any) -> dict[str, str]:
    """What `continue_trace` reads: Sentry's headers, else the W3C traceparent (an OpenTelemetry producer's) written
    as a sentry-trace header (`<trace id>-<span id>-<sampled>`)."""
    if SENTRY_TRACE in headers:
        return {k: headers[k] for k in (SENTRY_TRACE, BAGGAGE) if k in headers}
    parts = str(headers.get(TRACEPARENT, "")).split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return {}
    try:
        sampled = int(parts[3], 16) & 1
    except ValueError:
        return {}
    return {SENTRY_TRACE: f"{parts[1]}-{parts[2]}-{sampled}"}


def _capture(error: BaseException) -> None:
    """Report a task's exception as unhandled; a KeyboardInterrupt (the child stopping) is not the task's."""
    if isinstance(error, KeyboardInterrupt):
        return
    event, hint = event_from_exception(
        (type(error), error, error.__traceback__), mechanism={"type": WakaqIntegration.identifier, "handled": False}
    )
    sentry_sdk.capture_event(event, hint=hint)


_TRACER = SentryTracer()
