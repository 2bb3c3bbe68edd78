"""Redis key names. The Rust broker (`rust/src/broker/keys.rs`) uses the same layout; a test checks both agree.

Keys live under a namespace: the key prefix on a single Redis (WakaQ's names: `wakaq:default`), `{prefix}` on a
Redis Cluster, so the hash tag puts all of an app's keys in one slot (`{wakaq}:default`). See docs/internals.md for
what each key holds.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "wakaq"
BROADCAST_CHANNEL = "wakaq-broadcast"
ETA_CHANNEL = "wakaq-eta"
CONTROL_CHANNEL = "wakaq-control"


@dataclass(frozen=True)
class Keys:
    prefix: str = DEFAULT_PREFIX
    cluster: bool = False

    @property
    def namespace(self) -> str:
        return f"{{{self.prefix}}}" if self.cluster else self.prefix

    def queue(self, name: str) -> str:
        return f"{self.namespace}:{name}"

    def eta(self, name: str) -> str:
        return f"{self.namespace}:eta:{name}"

    def bell(self, name: str) -> str:
        return f"{self.namespace}:bell:{name}"

    def failed(self, name: str) -> str:
        return f"{self.namespace}:failed:{name}"

    def rate_queue(self, name: str) -> str:
        return f"{self.namespace}:rate:queue:{name}"

    def rate_task(self, task: str) -> str:
        return f"{self.namespace}:rate:task:{task}"

    def parked(self, queue: str, task: str) -> str:
        return f"{self.namespace}:parked:{queue}:{task}"

    def result(self, task_id: str) -> str:
        return f"{self.namespace}:result:{task_id}"

    def result_ready(self, task_id: str) -> str:
        return f"{self.namespace}:result:{task_id}:ready"

    def unique(self, key: str) -> str:
        return f"{self.namespace}:unique:{key}"

    def broadcast_queue(self, daemon: str) -> str:
        return f"{self.namespace}:bcast:{daemon}"

    def inflight(self, daemon: str) -> str:
        return f"{self.namespace}:inflight:{daemon}"

    def heartbeat(self, daemon: str) -> str:
        return f"{self.namespace}:hb:{daemon}"

    def daemon_info(self, daemon: str) -> str:
        return f"{self.namespace}:daemon:{daemon}"

    def stats(self, daemon: str) -> str:
        return f"{self.namespace}:stats:{daemon}"

    @property
    def stats_retired(self) -> str:
        return f"{self.namespace}:stats:retired"

    @property
    def daemons(self) -> str:
        return f"{self.namespace}:daemons"

    def history(self, day: int) -> str:
        """Per-minute counter totals of one UTC day (days since the epoch), written by the dashboard
        (wakaq.web.minutes): a hash of at most 1,440 fields that expires a few days after its day."""
        return f"{self.namespace}:history:{day}"

    def schedule_slot(self, schedule_id: str, slot: int) -> str:
        return f"{self.namespace}:sched:{schedule_id}:{slot}"

    @property
    def broadcast_channel(self) -> str:
        return BROADCAST_CHANNEL if self.prefix == DEFAULT_PREFIX else f"{self.prefix}-broadcast"

    @property
    def eta_channel(self) -> str:
        return ETA_CHANNEL if self.prefix == DEFAULT_PREFIX else f"{self.prefix}-eta"

    @property
    def control_channel(self) -> str:
        """Admin requests to the daemons' parents (`cancel <daemon> <pid> <seq>`, see wakaq.cancel)."""
        return CONTROL_CHANNEL if self.prefix == DEFAULT_PREFIX else f"{self.prefix}-control"
