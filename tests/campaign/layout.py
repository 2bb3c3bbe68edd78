"""The documented Redis key layout as one list of patterns, built from the code itself so it follows the lead's
changes: the templates `wakaq._wakaq.key_layout(prefix)` gives (Rust, the source of truth), plus every key method
and property of `wakaq.keys.Keys` (unique, sched, result, ... where Rust has no template yet). Channels are not keys.

Each pattern also says whether its keys may live without a TTL, and how big such a key may grow (`BOUNDS`)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from wakaq import _wakaq
from wakaq.keys import Keys

#: the bound of every failed list (rust/src/broker/give_back.rs FAILED_KEEP)
FAILED_KEEP = 10_000

#: the bound of the index of recent workflows (rust/src/broker/workflow.rs RECENT_KEEP)
WORKFLOWS_KEEP = 1_000

#: placeholders that name a queue (Keys calls the parameter `name`); `bcast:<daemon>` is a daemon's broadcast queue
QUEUE_PLACEHOLDERS = ("queue", "name")
#: placeholders that name a daemon: its keys must belong to a registered daemon
DAEMON_PLACEHOLDERS = ("daemon",)
_PLACEHOLDER = re.compile(r"\\\{(\w+)\\\}")


@dataclass(frozen=True)
class Pattern:
    name: str
    template: str  # after the namespace
    regex: re.Pattern[str]

    @property
    def literal(self) -> int:
        """Length of the fixed text: the most specific template wins when several match."""
        return len(re.sub(r"\{\w+\}", "", self.template))


def templates(prefix: str, cluster: bool = False) -> dict[str, str]:
    # NOTE: the namespace and a parked-registry member are in the layout but are no keys
    skip = ("namespace", "parked_member")
    found = {
        k: v for k, v in _wakaq.key_layout(prefix, cluster).items() if not k.endswith("_channel") and k not in skip
    }
    keys = Keys(prefix, cluster)
    for name, member in inspect.getmembers(Keys):
        if name.startswith("_") or name.endswith("_channel") or name in ("namespace", "prefix", "cluster"):
            continue
        if isinstance(inspect.getattr_static(Keys, name), staticmethod):
            continue
        if isinstance(member, property):
            value = getattr(keys, name)
        elif inspect.isfunction(member):
            params = list(inspect.signature(member).parameters)[1:]
            value = member(keys, *[f"{{{p}}}" for p in params])
        else:
            continue
        if isinstance(value, str) and value not in found.values():
            found.setdefault(name, value)
    return found


def patterns(prefix: str, queues: Iterable[str], tasks: Iterable[str], cluster: bool = False) -> list[Pattern]:
    queue_re = "(?:" + "|".join(re.escape(q) for q in queues) + r"|bcast:.+)"
    task_re = "(?:" + "|".join(re.escape(t) for t in tasks) + ")"

    def part(m: re.Match[str]) -> str:
        p = m.group(1)
        if p in QUEUE_PLACEHOLDERS:
            return f"(?P<{p}>{queue_re})"
        if p == "task":
            return f"(?P<task>{task_re})"
        return f"(?P<{p}>.+)"

    # WARN: the cluster namespace `{prefix}` looks like a placeholder: it is taken out before placeholders are read
    ns = Keys(prefix, cluster).namespace
    out = []
    for name, template in templates(prefix, cluster).items():
        body = template[len(ns) :] if template.startswith(ns) else template
        head = re.escape(ns) if template.startswith(ns) else ""
        regex = re.compile("^" + head + _PLACEHOLDER.sub(part, re.escape(body)) + "$", re.S)
        out.append(Pattern(name, body, regex))
    return sorted(out, key=lambda p: -p.literal)


def classify(key: str, pats: list[Pattern]) -> tuple[Pattern, dict[str, str]] | None:
    for p in pats:
        m = p.regex.match(key)
        if m:
            return p, m.groupdict()
    return None


def daemon_of(parts: dict[str, str]) -> str | None:
    """The daemon a key belongs to: a `daemon` placeholder, or a `bcast:<daemon>` queue."""
    for p in DAEMON_PLACEHOLDERS:
        if p in parts:
            return parts[p]
    for p in QUEUE_PLACEHOLDERS:
        if parts.get(p, "").startswith("bcast:"):
            return parts[p][len("bcast:") :]
    return None


#: keys that may live without a TTL, with the most elements each may hold once the system is quiet (given the number
#: of items sent and of daemons started); every other key must carry a TTL. Pending work is counted by the oracle
#: as `stuck`, so these bounds are for what stays after the quiet period.
BOUNDS: dict[str, Callable[[int, int], int]] = {
    "queue": lambda sent, daemons: sent,
    "eta": lambda sent, daemons: sent,
    "bell": lambda sent, daemons: 1,
    "failed": lambda sent, daemons: FAILED_KEEP,
    "broadcast_failed": lambda sent, daemons: FAILED_KEEP,
    "parked": lambda sent, daemons: sent,
    # NOTE: one member per (queue, rate-limited task) pair of the configs that ran (keys.rs `parked_registry`)
    "parked_registry": lambda sent, daemons: 64,
    # NOTE: per-key concurrency: permits (one per running task of a key, stale ones dropped when counted), waiters and
    # the registry of keys with either (keys.rs `conc`, `conc_wait`, `conc_registry`); all empty once quiet
    "conc": lambda sent, daemons: sent,
    "conc_wait": lambda sent, daemons: sent,
    "conc_registry": lambda sent, daemons: sent,
    "inflight": lambda sent, daemons: sent,
    "broadcast_queue": lambda sent, daemons: sent,
    "daemons": lambda sent, daemons: daemons,
    # NOTE: one member per paused queue (keys.rs `paused`), until an admin resumes it
    "paused": lambda sent, daemons: 64,
    "daemon_info": lambda sent, daemons: 8,
    "stats": lambda sent, daemons: 100_000,
    "stats_retired": lambda sent, daemons: 100_000,
    # NOTE: `progress` (progress.lua) and `debounce` (enqueue_debounce.lua) always carry a TTL: no bound here
    # NOTE: it carries a TTL too (that of the longest-lived workflow it names): the bound holds either way
    "workflows_recent": lambda sent, daemons: WORKFLOWS_KEEP,
}
