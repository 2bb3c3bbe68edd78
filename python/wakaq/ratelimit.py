"""Global rate limits: `Queue(..., rate_limit="100/s")` and `@app.task(rate_limit="10/s")`.

Enforced in the claim script (`rust/src/broker/lua/claim_limited.lua`) with Redis's clock, so every daemon on every
host shares one budget per queue and per task. This module only turns the user's value into a `Rate` and hands the
child's Consumer its limits; docs/internals.md ("Rate limits") describes the algorithm and the keys.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from wakaq.exceptions import WakaQError

#: seconds per unit of "N/<unit>"
PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}
#: how many tasks may start at once after a quiet spell: those of this many seconds at the rate (at least 1)
BURST_SECONDS = 0.1
#: how late a waking child may claim a token without it being lost (at most half an interval, so the burst stays)
SLACK_SECONDS = 0.05

RateValue = str | int | float | None
ConsumerLimits = tuple[list[tuple[float, float]] | None, list[tuple[str, float, float]] | None]

_RATE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*/\s*([smh])\s*")


@dataclass(frozen=True, slots=True)
class Rate:
    """`count` tasks per `period` seconds, `burst` of them at once."""

    count: float
    period: float
    text: str

    @property
    def per_second(self) -> float:
        return self.count / self.period

    @property
    def burst(self) -> int:
        return max(1, math.floor(self.per_second * BURST_SECONDS))

    @property
    def interval_us(self) -> float:
        """GCRA's emission interval T: microseconds between two starts at the steady rate."""
        return self.period * 1e6 / self.count

    def script_args(self) -> tuple[float, float]:
        """(T, tau) in microseconds, as claim_limited.lua takes them: tau = (burst - 1) * T + slack.

        NOTE: the slack (min(T / 2, 50 ms)) lets a child that wakes a little late still take the token it was told
        to come for; without it every late wake-up would push the schedule back and the rate would fall short."""
        interval = self.interval_us
        return interval, (self.burst - 1) * interval + min(interval / 2, SLACK_SECONDS * 1e6)

    def __str__(self) -> str:
        return self.text


def to_rate(value: object, where: str) -> Rate | None:
    """A rate from "N/s", "N/m", "N/h" or a number (per second); None for None. WakaQError naming the value else."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if math.isfinite(value) and value > 0:
            return Rate(float(value), 1.0, f"{value:g}/s")
    elif isinstance(value, str) and (match := _RATE.fullmatch(value)):
        count = float(match[1])
        if count > 0:
            return Rate(count, PERIODS[match[2]], value.strip())
    raise WakaQError(
        f"invalid rate_limit {value!r} of {where}: use 'N/s', 'N/m' or 'N/h' (N > 0), or a number of tasks per second"
    )


class _Limited(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def rate_limit(self) -> Rate | None: ...


def consumer_limits(queues: Iterable[_Limited], tasks: Iterable[_Limited]) -> ConsumerLimits:
    """The worker settings' `queue_rates` and `task_rates` (`_wakaq.Settings`, which the Consumer takes) for these
    limits: (None, None) when nothing is limited (the claim then stays claim.lua)."""
    queue_rates = [q.rate_limit.script_args() if q.rate_limit else (0.0, 0.0) for q in queues]
    task_rates = [(t.name, *t.rate_limit.script_args()) for t in tasks if t.rate_limit]
    if not task_rates and not any(r[0] for r in queue_rates):
        return None, None
    return queue_rates, task_rates


class _KeyNames(Protocol):
    def parked(self, queue: str, task: str) -> str: ...

    @staticmethod
    def parse_parked_member(member: bytes) -> tuple[str, str] | None: ...


def parked_lists(
    keys: _KeyNames, registry: Iterable[bytes], queues: Iterable[str], tasks: Iterable[_Limited]
) -> list[tuple[str, str, str]]:
    """(queue, task, key) of every parked list of `queues` that may hold tasks: those in the registry (`registry`:
    the members of `keys.parked_registry`, whatever config parked them) and those of the rate-limited `tasks` of
    this config. Empty when neither has any (then nothing reads Redis for them)."""
    names = set(queues)
    pairs = {pair for member in registry if (pair := keys.parse_parked_member(member)) and pair[0] in names}
    limited = [t.name for t in tasks if t.rate_limit]
    pairs.update((queue, task) for queue in names for task in limited)
    return [(queue, task, keys.parked(queue, task)) for queue, task in sorted(pairs)]
