"""`Queue`: a named Redis list with a priority and optional per-queue timeouts and retries.

Lower priority numbers are served first. A queue without a priority (-1, or given as a plain str) gets the lowest
priority: the WakaQ app moves it after the highest number given. The last queue after sorting is the default queue.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from wakaq.config import TimeoutValue, check_queue_name, to_max_retries, to_timeout
from wakaq.exceptions import WakaQError
from wakaq.keys import DEFAULT_PREFIX, Keys
from wakaq.ratelimit import Rate, RateValue, to_rate

NO_PRIORITY = -1


class Queue:
    """A queue. `max_retries` and the timeouts override the app's for tasks running from this queue; `rate_limit`
    ("100/s", "N/m", "N/h" or a number per second) caps how many of its tasks start, over every worker."""

    __slots__ = ("cluster", "hard_timeout", "max_retries", "name", "prefix", "priority", "rate_limit", "soft_timeout")

    name: str
    priority: int
    max_retries: int | None
    soft_timeout: timedelta | None
    hard_timeout: timedelta | None
    rate_limit: Rate | None
    prefix: str
    cluster: bool

    def __init__(
        self,
        name: str,
        priority: int = NO_PRIORITY,
        *,
        max_retries: int | None = None,
        soft_timeout: TimeoutValue = None,
        hard_timeout: TimeoutValue = None,
        prefix: str = DEFAULT_PREFIX,
        rate_limit: RateValue | Rate = None,
    ) -> None:
        self.name = check_queue_name(name)
        self.priority = _check_priority(priority, name)
        self.max_retries = to_max_retries(max_retries, f"max_retries of queue {name!r}")
        self.soft_timeout = to_timeout(soft_timeout, f"soft_timeout of queue {name!r}")
        self.hard_timeout = to_timeout(hard_timeout, f"hard_timeout of queue {name!r}")
        self.prefix = prefix
        self.rate_limit = rate_limit if isinstance(rate_limit, Rate) else to_rate(rate_limit, f"queue {name!r}")
        self.cluster = False
        check_timeout_order(self.soft_timeout, self.hard_timeout, f"queue {name!r}")

    @classmethod
    def create(cls, obj: Queue | str | tuple[Any, Any] | list[Any]) -> Queue:
        """A Queue from a Queue, `(priority, name)`, `(name, priority)` or a plain name; either pair may end with a
        rate limit: `(priority, name, "100/s")`."""
        if isinstance(obj, Queue):
            return obj
        if isinstance(obj, str):
            return cls(obj)
        if isinstance(obj, tuple | list) and len(obj) in (2, 3):
            first, second = obj[0], obj[1]
            rate = obj[2] if len(obj) == 3 else None
            if isinstance(first, int) and not isinstance(first, bool):
                return cls(second, first, rate_limit=rate)
            return cls(first, second, rate_limit=rate)
        raise WakaQError(
            f"invalid queue {obj!r}: use a Queue, a name, (priority, name) or (name, priority), optionally followed "
            "by a rate limit"
        )

    def with_defaults(self, priority: int, prefix: str, *, cluster: bool = False) -> Queue:
        """A copy bound to an app's key prefix (and key layout: `cluster`) and final priority (the user's object is
        left alone)."""
        bound = Queue(
            self.name,
            priority,
            max_retries=self.max_retries,
            soft_timeout=self.soft_timeout,
            hard_timeout=self.hard_timeout,
            prefix=prefix,
            rate_limit=self.rate_limit,
        )
        bound.cluster = cluster
        return bound

    @property
    def broker_key(self) -> str:
        """The Redis list of pending tasks (WakaQ's name for it)."""
        return Keys(self.prefix, self.cluster).queue(self.name)

    @property
    def broker_eta_key(self) -> str:
        """The Redis sorted set of eta tasks (WakaQ's name for it)."""
        return Keys(self.prefix, self.cluster).eta(self.name)

    def __repr__(self) -> str:
        return f"Queue({self.name!r}, priority={self.priority})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Queue):
            return NotImplemented
        return all(getattr(self, slot) == getattr(other, slot) for slot in self.__slots__)

    def __hash__(self) -> int:
        return hash((self.name, self.priority, self.prefix, self.cluster))


def _check_priority(priority: object, name: str) -> int:
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise WakaQError(f"invalid priority {priority!r} of queue {name!r}: must be an int")
    return priority


def check_timeout_order(soft: timedelta | None, hard: timedelta | None, where: str) -> None:
    """hard_timeout must be greater than soft_timeout when both are set."""
    if soft is not None and hard is not None and hard <= soft:
        raise WakaQError(
            f"hard_timeout ({hard.total_seconds():g}s) must be greater than soft_timeout "
            f"({soft.total_seconds():g}s) for {where}"
        )


def sort_queues(queues: list[Queue], prefix: str, *, cluster: bool = False) -> list[Queue]:
    """Bind queues to the prefix, give unprioritised ones the lowest priority and sort (stable) by priority."""
    lowest = max((q.priority for q in queues), default=NO_PRIORITY)
    bound = [q.with_defaults(q.priority if q.priority >= 0 else lowest + 1, prefix, cluster=cluster) for q in queues]
    return sorted(bound, key=lambda q: q.priority)
