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
#: separator of a parked-registry member's queue and task
PARKED_SEP = "\x1f"


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

    @property
    def broadcast_failed(self) -> str:
        """The failed list of every daemon's broadcasts (the Rust broker maps each `bcast:<daemon>` pseudo queue to
        it: rust/src/broker/keys.rs `failed` says why)."""
        return self.failed("broadcast")

    def rate_queue(self, name: str) -> str:
        return f"{self.namespace}:rate:queue:{name}"

    def rate_task(self, task: str) -> str:
        return f"{self.namespace}:rate:task:{task}"

    def parked(self, queue: str, task: str) -> str:
        return f"{self.namespace}:parked:{queue}:{task}"

    @property
    def parked_registry(self) -> str:
        """Set of the parked lists that may hold elements, members `parked_member(queue, task)` (keys.rs says who
        adds and removes them)."""
        return f"{self.namespace}:parked"

    @staticmethod
    def parked_member(queue: str, task: str) -> str:
        return f"{queue}{PARKED_SEP}{task}"

    @staticmethod
    def parse_parked_member(member: bytes) -> tuple[str, str] | None:
        """(queue, task) of a registry member; None for anything else."""
        queue, sep, task = member.decode(errors="replace").partition(PARKED_SEP)
        return (queue, task) if sep else None

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
