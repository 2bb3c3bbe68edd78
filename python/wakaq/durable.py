"""Durable enqueue (opt-in): a push returns only once `replicas` replicas confirmed it (Redis `WAIT`).

Spellings: `WakaQ(durable_enqueue=True | n, durable_timeout=seconds)` for every push of an app;
`task.delay_with_options(args, kwargs, durable=...)` and `task.delay_many(calls, durable=...)` per call (a keyword
of `.delay()` itself would be a task keyword argument). `durable`: None = the app's setting, False/0 = off,
True = 1 replica, n = n replicas.
"""

from __future__ import annotations

from datetime import timedelta

from wakaq.config import to_seconds
from wakaq.exceptions import WakaQError

#: seconds a durable push waits for its replicas by default
DEFAULT_DURABLE_TIMEOUT = 1.0

DurableArg = bool | int | None


def to_replicas(value: bool | int, what: str) -> int:
    """True -> 1, False -> 0, an int >= 0 as is."""
    if isinstance(value, bool):
        return int(value)
    if not isinstance(value, int) or value < 0:
        raise WakaQError(f"{what} must be True, False or a number of replicas >= 0, got {value!r}")
    return value


def to_durable_timeout(value: float | timedelta) -> float:
    return to_seconds(value, "durable_timeout", allow_none=False)  # type: ignore[return-value]


def replicas_of(durable: DurableArg, default: int) -> int:
    """The replica count of one call: the app's `default` unless `durable` says otherwise."""
    return default if durable is None else to_replicas(durable, "durable")
