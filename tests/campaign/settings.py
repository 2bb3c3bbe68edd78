"""What one campaign run does: seed, duration, and which features and faults are on (environment variables).

- `WAKAQ_CAMPAIGN_SEED`: the seed (default: a new one, printed); the same seed gives the same operations and fault
  schedule (the timing of processes and Redis is not under the seed's control, so a failure is likely, not certain,
  to recur).
- `WAKAQ_CAMPAIGN_SECONDS`: the whole run, load and quiet period (default 120).
- `WAKAQ_CAMPAIGN_PROFILE`: a name from `PROFILES` (default "all").
- `WAKAQ_CAMPAIGN_FEATURES` / `WAKAQ_CAMPAIGN_FAULTS`: comma lists replacing the profile's ("none": empty), or
  `-name,...` to take names out of the profile's.
- `WAKAQ_CAMPAIGN_DAEMONS` (default 3), `WAKAQ_CAMPAIGN_RATE`: operations per second of the generator (default 12).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

FEATURES = (
    "plain",  # sync task, no options
    "async",  # async tasks
    "eta",  # eta as a timedelta and as a datetime
    "retry",  # retry_on with backoff; some exhaust their retries
    "results",  # store_results=True (sync and async)
    "unique",  # unique_for, with duplicates sent on purpose
    "rate_queue",  # the "limited" queue's rate limit
    "rate_task",  # a task rate limit
    "cancel",  # app.cancel(id) of pending tasks
    "terminate",  # app.cancel(id, terminate=True) of running tasks
    "broadcast",  # .broadcast()
    "garbage",  # undecodable bytes and msgpack that is not a task, RPUSHed raw
    "bad_meta",  # task payloads whose meta is malformed, RPUSHed raw
)
FAULTS = (
    "kill_child",  # kill -9 of a worker child
    "kill_parent",  # kill -9 of a daemon's parent alone (a replacement daemon is started)
    "kill_daemon",  # kill -9 of a parent and its children (a replacement daemon is started)
    "sigstop",  # SIGSTOP of a parent past heartbeat_timeout, then SIGCONT
    "stop_kill",  # sigstop, then kill -9 of the whole daemon 2 s after the SIGCONT (issue 19, defect 3)
    "redis_restart",  # kill -9 of an AOF redis-server (appendfsync always), restarted on the same port and dir
    "proxy_reset",  # every worker connection reset at once by the TCP proxy the daemons connect through
    "skew",  # one daemon runs 300 s behind (libfaketime)
    "unlimit",  # after a burst of 20 rate-limited tasks, every daemon redeployed without the rate limits
)
#: known defects of main (issue 19) each need: bad_meta (1), unlimit (2), stop_kill (3)
PROFILES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "all": (FEATURES, FAULTS),
    "features": (FEATURES, ()),
    "faults": (("plain", "async", "eta"), FAULTS),
    "valid": (tuple(f for f in FEATURES if f not in ("garbage", "bad_meta")), ()),
    "crashes": (
        tuple(f for f in FEATURES if f not in ("garbage", "bad_meta")),
        ("kill_child", "kill_parent", "kill_daemon", "redis_restart", "proxy_reset"),
    ),
}


@dataclass(frozen=True)
class Settings:
    seed: int
    seconds: float
    features: frozenset[str]
    faults: frozenset[str]
    daemons: int = 3
    rate: float = 12.0
    concurrency: int = 2
    heartbeat: float = 4.0

    @property
    def quiet(self) -> float:
        """The longest the end of the run waits for the system to settle (it stops as soon as it has)."""
        return min(90.0, max(30.0, self.seconds * 0.25))

    @property
    def load(self) -> float:
        return max(5.0, self.seconds - self.quiet)

    def describe(self) -> str:
        return (
            f"seed={self.seed} seconds={self.seconds:g} daemons={self.daemons} "
            f"features={','.join(sorted(self.features)) or 'none'} faults={','.join(sorted(self.faults)) or 'none'}"
        )


def _names(value: str | None, base: tuple[str, ...], known: tuple[str, ...], what: str) -> frozenset[str]:
    if value is None or value == "":
        return frozenset(base)
    if value == "none":
        return frozenset()
    items = [v.strip() for v in value.split(",") if v.strip()]
    unknown = {v.lstrip("-") for v in items} - set(known)
    if unknown:
        raise ValueError(f"unknown campaign {what}: {sorted(unknown)} (known: {', '.join(known)})")
    if all(v.startswith("-") for v in items):
        return frozenset(base) - {v[1:] for v in items}
    return frozenset(items)


def from_env(environ: dict[str, str] | None = None) -> Settings:
    e = os.environ if environ is None else environ
    profile = e.get("WAKAQ_CAMPAIGN_PROFILE") or "all"
    if profile not in PROFILES:
        raise ValueError(f"unknown WAKAQ_CAMPAIGN_PROFILE {profile!r} (known: {', '.join(PROFILES)})")
    features, faults = PROFILES[profile]
    seed = e.get("WAKAQ_CAMPAIGN_SEED")
    return Settings(
        seed=int(seed) if seed else random.SystemRandom().randrange(1, 10**9),
        seconds=float(e.get("WAKAQ_CAMPAIGN_SECONDS") or 120),
        features=_names(e.get("WAKAQ_CAMPAIGN_FEATURES"), features, FEATURES, "features"),
        faults=_names(e.get("WAKAQ_CAMPAIGN_FAULTS"), faults, FAULTS, "faults"),
        daemons=int(e.get("WAKAQ_CAMPAIGN_DAEMONS") or 3),
        rate=float(e.get("WAKAQ_CAMPAIGN_RATE") or 12),
    )
