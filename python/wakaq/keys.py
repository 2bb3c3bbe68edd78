"""Redis key names. The Rust broker (`rust/src/broker/keys.rs`) uses the same layout; a test checks both agree.

See docs/internals.md for what each key holds.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "wakaq"
BROADCAST_CHANNEL = "wakaq-broadcast"
ETA_CHANNEL = "wakaq-eta"


@dataclass(frozen=True)
class Keys:
    prefix: str = DEFAULT_PREFIX

    def queue(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    def eta(self, name: str) -> str:
        return f"{self.prefix}:eta:{name}"

    def bell(self, name: str) -> str:
        return f"{self.prefix}:bell:{name}"

    def failed(self, name: str) -> str:
        return f"{self.prefix}:failed:{name}"

    def broadcast_queue(self, daemon: str) -> str:
        return f"{self.prefix}:bcast:{daemon}"

    def inflight(self, daemon: str) -> str:
        return f"{self.prefix}:inflight:{daemon}"

    def heartbeat(self, daemon: str) -> str:
        return f"{self.prefix}:hb:{daemon}"

    def daemon_info(self, daemon: str) -> str:
        return f"{self.prefix}:daemon:{daemon}"

    def stats(self, daemon: str) -> str:
        return f"{self.prefix}:stats:{daemon}"

    @property
    def stats_retired(self) -> str:
        return f"{self.prefix}:stats:retired"

    @property
    def daemons(self) -> str:
        return f"{self.prefix}:daemons"

    def schedule_slot(self, schedule_id: str, slot: int) -> str:
        return f"{self.prefix}:sched:{schedule_id}:{slot}"

    @property
    def broadcast_channel(self) -> str:
        return BROADCAST_CHANNEL if self.prefix == DEFAULT_PREFIX else f"{self.prefix}-broadcast"

    @property
    def eta_channel(self) -> str:
        return ETA_CHANNEL if self.prefix == DEFAULT_PREFIX else f"{self.prefix}-eta"
