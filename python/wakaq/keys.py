"""Redis key names, filled in from the one definition of the layout in the Rust broker (`rust/src/broker/keys.rs`,
read through `wakaq._wakaq.key_layout`): this module spells no key itself.

Keys live under a namespace: the key prefix on a single Redis (WakaQ's names: `wakaq:default`), `{prefix}` on a
Redis Cluster, so the hash tag puts all of an app's keys in one slot (`{wakaq}:default`). See docs/internals.md for
what each key holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from wakaq._wakaq import key_layout

DEFAULT_PREFIX = "wakaq"

#: the placeholders of `key_layout`'s templates
_SLOTS = re.compile(r"\{(queue|daemon|task|id|key|schedule|slot|day)\}")


@lru_cache(maxsize=64)
def _templates(prefix: str, cluster: bool) -> dict[str, tuple[str, ...]]:
    """Each template as its literal parts around the placeholders (split after the namespace, which on a cluster is
    itself in braces)."""
    layout = key_layout(prefix, cluster)
    ns = layout.pop("namespace")
    layout.pop("parked_member")  # NOTE: not a key (no namespace): see PARKED_SEP
    out: dict[str, tuple[str, ...]] = {"namespace": (ns,)}
    for kind, template in layout.items():
        head, rest = (ns, template[len(ns) :]) if template.startswith(ns) else ("", template)
        parts = _SLOTS.split(rest)
        out[kind] = (head + parts[0], *parts[2::2])
    return out


_DEFAULTS = _templates(DEFAULT_PREFIX, False)
BROADCAST_CHANNEL = _DEFAULTS["broadcast_channel"][0]
ETA_CHANNEL = _DEFAULTS["eta_channel"][0]
CONTROL_CHANNEL = _DEFAULTS["control_channel"][0]
#: separator of a parked-registry member's queue and task (from Rust's `Keys::parked_member`)
PARKED_SEP = key_layout(DEFAULT_PREFIX)["parked_member"].replace("{queue}", "").replace("{task}", "")


@dataclass(frozen=True)
class Keys:
    prefix: str = DEFAULT_PREFIX
    cluster: bool = False
    _t: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_t", _templates(self.prefix, self.cluster))

    def _fill(self, kind: str, *values: str | int) -> str:
        parts = self._t[kind]
        out = [parts[0]]
        for value, literal in zip(values, parts[1:], strict=True):
            out += [str(value), literal]
        return "".join(out)

    @property
    def namespace(self) -> str:
        return self._t["namespace"][0]

    def queue(self, name: str) -> str:
        return self._fill("queue", name)

    def eta(self, name: str) -> str:
        return self._fill("eta", name)

    def bell(self, name: str) -> str:
        return self._fill("bell", name)

    def failed(self, name: str) -> str:
        return self._fill("failed", name)

    @property
    def broadcast_failed(self) -> str:
        """The failed list of every daemon's broadcasts (the Rust broker maps each `bcast:<daemon>` pseudo queue to
        it: rust/src/broker/keys.rs `failed` says why)."""
        return self.failed("broadcast")

    def rate_queue(self, name: str) -> str:
        return self._fill("rate_queue", name)

    def rate_task(self, task: str) -> str:
        return self._fill("rate_task", task)

    def parked(self, queue: str, task: str) -> str:
        return self._fill("parked", queue, task)

    @property
    def parked_registry(self) -> str:
        """Set of the parked lists that may hold elements, members `parked_member(queue, task)` (keys.rs says who
        adds and removes them)."""
        return self._fill("parked_registry")

    @staticmethod
    def parked_member(queue: str, task: str) -> str:
        return f"{queue}{PARKED_SEP}{task}"

    @staticmethod
    def parse_parked_member(member: bytes) -> tuple[str, str] | None:
        """(queue, task) of a registry member; None for anything else."""
        queue, sep, task = member.decode(errors="replace").partition(PARKED_SEP)
        return (queue, task) if sep else None

    def conc(self, task: str, key: str) -> str:
        """The permits of one concurrency key of a task (hash: holder -> 1; keys.rs says what a holder is)."""
        return self._fill("conc", task, key)

    def conc_wait(self, task: str, key: str) -> str:
        """Elements of a task parked while its concurrency key had no free permit (list of "<queue>\\n<element>")."""
        return self._fill("conc_wait", task, key)

    @property
    def conc_registry(self) -> str:
        """Set of "<task>\\x1f<key>" members with permits or waiters, walked by the daemons' heartbeats."""
        return self._fill("conc_registry")

    def result(self, task_id: str) -> str:
        return self._fill("result", task_id)

    def result_ready(self, task_id: str) -> str:
        return self._fill("result_ready", task_id)

    def workflow(self, workflow_id: str) -> str:
        return self._fill("workflow", workflow_id)

    def workflow_results(self, workflow_id: str) -> str:
        return self._fill("workflow_results", workflow_id)

    def workflow_ready(self, workflow_id: str) -> str:
        return self._fill("workflow_ready", workflow_id)

    @property
    def workflows_recent(self) -> str:
        """The index of recent workflows: zset of workflow ids scored by their start (Redis time, seconds), kept to
        the newest 1,000 and expiring with the longest-lived one by the start script (broker/workflow.rs)."""
        return self._fill("workflows_recent")

    def unique(self, key: str) -> str:
        return self._fill("unique", key)

    def progress(self, task_id: str) -> str:
        """A running task's last progress (hash: `v` msgpack {done, total, info}, `at`; written by progress.lua)."""
        return self._fill("progress", task_id)

    def debounce(self, key: str) -> str:
        """A debounce window: the pending call's payload and due time (enqueue_debounce.lua)."""
        return self._fill("debounce", key)

    def broadcast_queue(self, daemon: str) -> str:
        return self._fill("broadcast_queue", daemon)

    def inflight(self, daemon: str) -> str:
        return self._fill("inflight", daemon)

    def heartbeat(self, daemon: str) -> str:
        return self._fill("heartbeat", daemon)

    def daemon_info(self, daemon: str) -> str:
        return self._fill("daemon_info", daemon)

    def stats(self, daemon: str) -> str:
        return self._fill("stats", daemon)

    @property
    def stats_retired(self) -> str:
        return self._fill("stats_retired")

    @property
    def daemons(self) -> str:
        return self._fill("daemons")

    @property
    def paused(self) -> str:
        """Set of the paused queues' names: the claim scripts skip them on every daemon (`WakaQ.pause`)."""
        return self._fill("paused")

    def history(self, day: int) -> str:
        """Per-minute counter totals of one UTC day (days since the epoch), written by the dashboard
        (wakaq.web.minutes): a hash of at most 1,440 fields that expires a few days after its day."""
        return self._fill("history", day)

    def schedule_slot(self, schedule_id: str, slot: int) -> str:
        return self._fill("schedule_slot", schedule_id, slot)

    @property
    def broadcast_channel(self) -> str:
        return self._fill("broadcast_channel")

    @property
    def eta_channel(self) -> str:
        return self._fill("eta_channel")

    @property
    def control_channel(self) -> str:
        """Admin requests to the daemons' parents (`cancel <daemon> <pid> <seq>`, see wakaq.cancel)."""
        return self._fill("control_channel")
