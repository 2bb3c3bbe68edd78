"""Trace context carried from `.delay()` to the worker: OpenTelemetry built in, other tracers (Sentry) plugged in.

A traced task's payload meta holds `headers`, a map of str to str (W3C `traceparent`/`tracestate`, `baggage`,
Sentry's `sentry-trace`), bounded as `rust/src/codec/meta.rs` checks it (the worker refuses a malformed one). The
producer opens a PRODUCER span "send <queue>" around the push and writes its context there; the worker runs the task
inside a CONSUMER span "process <queue>", a child of the producer's (`WakaQ(tracing="link")`: a new trace with a link
to it instead). A retry keeps the meta, so every attempt of a task sits in the producer's trace.

When it is on: OpenTelemetry as soon as the process imported `opentelemetry.trace` and set a real tracer provider
(not the API's proxy or no-op one); a tracer registered with `register` (wakaq.contrib.sentry does, from its
integration's `setup_once`). wakaq never imports opentelemetry itself: a process that did not import it pays one list
test and one dict lookup per `.delay()` and per task (`active`), and a plain payload stays byte-identical.
"""

from __future__ import annotations

import os
import sys
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from wakaq.exceptions import WakaQError

if TYPE_CHECKING:
    from wakaq.tracers import Sending, Tracer

__all__ = ["MODES", "active", "processing", "register", "sending", "to_mode", "unregister"]

#: `WakaQ(tracing=...)`: the worker's span is a child of the producer's, or starts a new trace linked to it; or off
MODES = ("child", "link", "off")
OTEL_MODULE = "opentelemetry.trace"
#: names of wakaq.tracers this module hands on (`tracing.SYSTEM`, `tracing.bounded`, ...), imported on first use
_LAZY = (
    "MAX_HEADERS",
    "MAX_HEADER_NAME",
    "MAX_HEADER_VALUE",
    "SYSTEM",
    "OpenTelemetry",
    "Processing",
    "Sending",
    "Tracer",
    "bounded",
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from wakaq import tracers

        return getattr(tracers, name)
    raise AttributeError(f"module 'wakaq.tracing' has no attribute {name!r}")


#: tracers on in this process: registered ones, and OpenTelemetry once a real tracer provider was seen
_tracers: list[Tracer] = []
_otel_seen = False
_modules = sys.modules
#: the API builds a provider from this variable on first use (opentelemetry.environment_variables)
_PROVIDER_FROM_ENV = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ


def register(tracer: Tracer) -> None:
    """Turn `tracer` on in this process (once; registering it again does nothing)."""
    if tracer not in _tracers:
        _tracers.append(tracer)


def unregister(tracer: Tracer) -> None:
    """Turn a registered tracer off again."""
    if tracer in _tracers:
        _tracers.remove(tracer)


def active() -> bool:
    """A tracer is on: `.delay()` and the worker take the traced path. NOTE: the only cost of tracing when it is off:
    one list test, and one dict lookup while opentelemetry is not imported."""
    return bool(_tracers) or (OTEL_MODULE in _modules and _otel_configured())


def to_mode(value: object) -> str:
    """`WakaQ(tracing=...)`: "child" (default), "link", or "off" / False."""
    if value is False or value is None:
        return "off"
    if value is True:
        return "child"
    if isinstance(value, str) and value in MODES:
        return value
    raise WakaQError(f"tracing must be one of {', '.join(map(repr, MODES))} or False, got {value!r}")


def sending(queue: str, task: str, count: int = 1) -> AbstractContextManager[Sending]:
    """Every tracer's producer span around one push; the headers to send are in the yielded `Sending` (bounded)."""
    from wakaq import tracers

    return tracers.sending(_tracers, queue, task, count)


def processing(mode: str, task: str) -> AbstractContextManager[Any] | None:
    """Every tracer's consumer span around the task running in this worker context, or None: outside a worker (eager
    mode sets no queue), or tracing turned off for the app."""
    from wakaq import tracers

    return tracers.processing(_tracers, mode, task)


def _otel_configured() -> bool:
    """OpenTelemetry is imported: on once a real tracer provider is set (it cannot be unset: the API refuses a second
    one), then registered so `active` stops asking."""
    global _otel_seen
    if _otel_seen:
        return False  # NOTE: registered already, or turned off by `unregister`
    trace: Any = _modules[OTEL_MODULE]
    # NOTE: the API's global read directly while it is unset: `get_tracer_provider()` costs about 1 us (an os.environ
    # lookup) and redis-py 8 imports opentelemetry whenever it is installed, so every producer would pay it
    if getattr(trace, "_TRACER_PROVIDER", True) is None and not _PROVIDER_FROM_ENV:
        return False
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return False
    _otel_seen = True
    from wakaq.tracers import OpenTelemetry

    register(OpenTelemetry(provider))
    return True
