"""Prometheus text exposition (format 0.0.4) of `wakaq.stats.snapshot`, with prometheus_client's naming
conventions: counters end in `_total`, the run-time histogram has `_bucket{le=...}`, `_sum` and `_count`, labels
`queue` and `task`.

Monotonic across daemon restarts by carried totals: a daemon's counters live in `<prefix>:stats:<id>` while it is
registered, and the Lua script that deregisters or reaps it adds them into `<prefix>:stats:retired` in the same
atomic step. Every counter here is retired + the sum over registered daemons, so a restart never makes one go down
(a counter reset would make `rate()` see a huge jump). No prometheus_client needed at run time.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from wakaq.constants import STATS_FAILED_KINDS
from wakaq.stats import snapshot

if TYPE_CHECKING:
    import redis

    from wakaq.app import WakaQ

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render_metrics(app: WakaQ, r: redis.Redis) -> str:
    """The `/metrics` page: queue gauges, daemon gauges, per (queue, task) counters and histogram."""
    return render_snapshot(snapshot(app, r))


def render_snapshot(snap: dict[str, Any]) -> str:
    out: list[str] = []
    _queue_gauges(out, snap["queues"])
    _daemon_gauges(out, snap["daemons"])
    _task_counters(out, snap["tasks"])
    _runtime_histogram(out, snap["tasks"])
    return "\n".join(out) + "\n"


def _queue_gauges(out: list[str], queues: dict[str, Any]) -> None:
    for field, name, help_text in (
        ("pending_tasks", "wakaq_queue_pending_tasks", "Tasks waiting in the queue."),
        ("pending_eta_tasks", "wakaq_queue_eta_tasks", "Tasks scheduled for later (eta set)."),
        ("inflight_tasks", "wakaq_queue_inflight_tasks", "Tasks claimed by a worker and not yet acknowledged."),
        ("failed_tasks", "wakaq_queue_failed_tasks", "Failure records stored for the queue (bounded list)."),
    ):
        _header(out, name, help_text, "gauge")
        for q in queues.values():
            out.append(_sample(name, {"queue": q["name"]}, q[field]))
    name = "wakaq_queue_paused"
    _header(out, name, "1 while the queue is paused (no daemon claims from it; wakaq-pause), else 0.", "gauge")
    for q in queues.values():
        out.append(_sample(name, {"queue": q["name"]}, int(q.get("paused", False))))


def _daemon_gauges(out: list[str], daemons: list[dict[str, Any]]) -> None:
    alive = [d for d in daemons if d["alive"]]
    _header(out, "wakaq_daemons_alive", "Worker daemons with a live heartbeat.", "gauge")
    out.append(_sample("wakaq_daemons_alive", {}, len(alive)))
    _header(out, "wakaq_daemons_registered", "Worker daemons registered (alive or not yet reaped).", "gauge")
    out.append(_sample("wakaq_daemons_registered", {}, len(daemons)))
    children = [c for d in alive for c in d["children"]]
    _header(out, "wakaq_children", "Worker children of live daemons.", "gauge")
    out.append(_sample("wakaq_children", {}, len(children)))
    _header(out, "wakaq_children_busy", "Worker children of live daemons running a task now.", "gauge")
    out.append(_sample("wakaq_children_busy", {}, sum(1 for c in children if c["busy"])))


def _task_counters(out: list[str], tasks: list[dict[str, Any]]) -> None:
    for field, help_text in (
        ("started", "Tasks a worker child started."),
        ("done", "Tasks that finished without an exception."),
        ("retried", "Tasks re-enqueued after a soft timeout."),
    ):
        # NOTE: in the 0.0.4 text format a counter's TYPE line names the sample (with `_total`), as prometheus_client
        # writes it; its parser then reports the family without the suffix.
        name = f"wakaq_tasks_{field}_total"
        _header(out, name, help_text, "counter")
        for t in tasks:
            out.append(_sample(name, _labels(t), t[field]))
    name = "wakaq_tasks_failed_total"
    _header(out, name, "Tasks recorded as failed, by reason (" + ", ".join(STATS_FAILED_KINDS) + ").", "counter")
    for t in tasks:
        for kind in STATS_FAILED_KINDS:
            out.append(_sample(name, {**_labels(t), "reason": kind}, t["failed"][kind]))


def _runtime_histogram(out: list[str], tasks: list[dict[str, Any]]) -> None:
    name = "wakaq_task_runtime_seconds"
    _header(out, name, "Run time of tasks that ran to an end in a child (done, exception, soft timeout).", "histogram")
    for t in tasks:
        labels, rt = _labels(t), t["runtime"]
        for le, cumulative in rt["buckets"]:
            out.append(_sample(f"{name}_bucket", {**labels, "le": _le(le)}, cumulative))
        out.append(_sample(f"{name}_sum", labels, rt["sum"]))
        out.append(_sample(f"{name}_count", labels, rt["count"]))


def _labels(task: dict[str, Any]) -> dict[str, str]:
    return {"queue": task["queue"], "task": task["task"]}


def _header(out: list[str], name: str, help_text: str, kind: str) -> None:
    out.append(f"# HELP {name} {_escape_help(help_text)}")
    out.append(f"# TYPE {name} {kind}")


def _sample(name: str, labels: dict[str, str], value: float) -> str:
    if not labels:
        return f"{name} {_value(value)}"
    body = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
    return f"{name}{{{body}}} {_value(value)}"


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _value(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")
