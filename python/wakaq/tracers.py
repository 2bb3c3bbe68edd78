"""The heavy half of wakaq.tracing, imported only once a tracer is on (so `import wakaq` pays nothing for it): what
a tracer sees of a send and of a task run, the tracers' spans around them, the header bounds, and the OpenTelemetry
tracer."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from wakaq.context import running_meta, running_queue, running_retry

__all__ = [
    "MAX_HEADERS",
    "SYSTEM",
    "OpenTelemetry",
    "Processing",
    "Sending",
    "Tracer",
    "bounded",
    "processing",
    "sending",
]

#: bounds of meta `headers` (rust/src/codec/meta.rs MAX_HEADERS, MAX_HEADER_NAME, MAX_HEADER_VALUE): a header past
#: them is not sent, so a producer never writes a meta the worker would refuse
MAX_HEADERS = 16
MAX_HEADER_NAME = 128
MAX_HEADER_VALUE = 8192
#: `messaging.system` of every span
SYSTEM = "wakaq"


@dataclass(slots=True)
class Sending:
    """One send as a tracer sees it: the tracer writes its context into `headers` when its span starts; `message_id`
    is the task id, known after the push (tasks with results or uniqueness), None otherwise."""

    queue: str
    task: str
    count: int = 1  # tasks in this send (`delay_many`)
    headers: dict[str, str] = field(default_factory=dict)
    message_id: str | None = None


@dataclass(slots=True, frozen=True)
class Processing:
    """One task run in a worker child, as a tracer sees it."""

    queue: str
    task: str
    message_id: str | None
    attempt: int  # 1 on the first run, one more per retry
    headers: Mapping[str, str]
    link: bool  # `WakaQ(tracing="link")`: link to the producer's span instead of being its child


class Tracer(Protocol):
    """A tracing system as wakaq drives it (`register`)."""

    def sending(self, send: Sending) -> AbstractContextManager[Any]:
        """The producer span around one push; writes its context into `send.headers` when entered."""

    def processing(self, run: Processing) -> AbstractContextManager[Any]:
        """The consumer span around one task run; records the exception that leaves it."""


@contextmanager
def sending(on: list[Tracer], queue: str, task: str, count: int = 1) -> Iterator[Sending]:
    """Every tracer's producer span around one push; the headers to send are in the yielded `Sending` (bounded)."""
    send = Sending(queue, task, count)
    with _each(on, send, "sending"):
        send.headers = bounded(send.headers)
        yield send


def processing(on: list[Tracer], mode: str, task: str) -> AbstractContextManager[Any] | None:
    """Every tracer's consumer span around the task running in this worker context, or None: outside a worker (eager
    mode sets no queue), or tracing turned off for the app."""
    queue = running_queue.get()
    if queue is None or mode == "off":
        return None
    meta = running_meta.get()
    headers = meta.get("headers") if meta is not None else None
    task_id = meta.get("id") if meta is not None else None
    run = Processing(
        queue,
        task,
        task_id if isinstance(task_id, str) else None,
        running_retry.get() + 1,
        headers if isinstance(headers, dict) else {},
        mode == "link",
    )
    return _each(on, run, "processing")


@contextmanager
def _each(on: list[Tracer], what: Sending | Processing, hook: str) -> Iterator[None]:
    """`hook` of every tracer on (`on`: wakaq.tracing's list, copied)."""
    tracers = list(on)
    if len(tracers) == 1:
        with getattr(tracers[0], hook)(what):
            yield
        return
    with ExitStack() as stack:
        for tracer in tracers:
            stack.enter_context(getattr(tracer, hook)(what))
        yield


def bounded(headers: Mapping[str, Any]) -> dict[str, str]:
    """The headers the worker accepts (rust/src/codec/meta.rs): str to str, the first MAX_HEADERS within the size
    bounds; the rest are dropped (a trace loses a header, the task is never refused)."""
    kept: dict[str, str] = {}
    for name, value in headers.items():
        if len(kept) == MAX_HEADERS:
            break
        if not (isinstance(name, str) and isinstance(value, str)) or not name:
            continue
        if len(name.encode()) <= MAX_HEADER_NAME and len(value.encode()) <= MAX_HEADER_VALUE:
            kept[name] = value
    return kept


class OpenTelemetry:
    """The OpenTelemetry tracer: spans per the messaging semantic conventions, W3C context through the globally set
    propagator (`tracecontext,baggage` unless OTEL_PROPAGATORS says otherwise). Made only once the process imported
    opentelemetry and set a tracer provider, so its imports below cost nothing otherwise."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry import propagate, trace
        from opentelemetry.trace import Link, SpanKind, Status, StatusCode

        from wakaq._wakaq import __version__

        self._tracer = provider.get_tracer("wakaq", __version__)
        self._inject = propagate.inject
        self._extract = propagate.extract
        self._span_of = trace.get_current_span
        self._link = Link
        self._kinds = (SpanKind.PRODUCER, SpanKind.CONSUMER)
        self._error = (Status, StatusCode.ERROR)

    @contextmanager
    def sending(self, send: Sending) -> Iterator[None]:
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": send.queue,
            "messaging.wakaq.task": send.task,
        }
        if send.count != 1:
            attributes["messaging.batch.message_count"] = send.count
        name = f"send {send.queue}"
        with self._span(name, self._kinds[0], attributes, None, []) as span:
            self._inject(send.headers)
            yield
            if send.message_id is not None:
                span.set_attribute("messaging.message.id", send.message_id)

    @contextmanager
    def processing(self, run: Processing) -> Iterator[None]:
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": run.queue,
            "messaging.wakaq.task": run.task,
            "messaging.wakaq.attempt": run.attempt,
        }
        if run.message_id is not None:
            attributes["messaging.message.id"] = run.message_id
        parent = self._extract(run.headers) if run.headers else None
        links = []
        if run.link and parent is not None:
            sent = self._span_of(parent).get_span_context()
            links = [self._link(sent)] if sent.is_valid else []
            parent = None
        with self._span(f"process {run.queue}", self._kinds[1], attributes, parent, links):
            yield

    @contextmanager
    def _span(self, name: str, kind: Any, attributes: dict[str, Any], parent: Any, links: list[Any]) -> Iterator[Any]:
        """A current span; an exception leaving it (BaseException too: a soft timeout, a cancel) is recorded on it as
        an event, with the error status and `error.type`. NOTE: the API's own recording skips BaseExceptions."""
        tracer = self._tracer
        with tracer.start_as_current_span(
            name,
            context=parent,
            kind=kind,
            attributes=attributes,
            links=links,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except BaseException as e:
                status, error = self._error
                span.record_exception(e)
                span.set_attribute("error.type", type(e).__qualname__)
                span.set_status(status(error, f"{type(e).__name__}: {e}"))
                raise
