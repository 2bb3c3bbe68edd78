"""Retries on exceptions, with exponential backoff and full jitter (issue 11): the values and the decisions.

`@app.task(retry_on=(TimeoutError, ...), max_retries=5, retry_backoff=1, retry_backoff_max=600, retry_jitter=True)`,
with app-wide defaults of the same names on `WakaQ(...)`; `raise Retry(countdown=..., eta=...)` inside a task retries
it whatever `retry_on` says. The delay before attempt n+1, after attempt n failed (n = 1 for the first run):

    delay = min(retry_backoff_max, retry_backoff * 2 ** (n - 1))
    delay = uniform(0, delay)              # when retry_jitter ("full jitter", as Celery's)

Exception retries and soft-timeout retries share the payload's `retry` counter and `max_retries` (task, else queue,
else app). Retried payloads carry meta `errors` (the reasons of the earlier attempts) and `id` (a task id, given
one if it had none: the eta set dedupes equal payloads, and two equal tasks failing alike must stay two).

The worker and eager mode call the functions here; nothing here touches Redis. No retry_on configured: a task's
policy catches only `Retry`, so an exception is recorded failed exactly as before.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from wakaq.context import running_meta, running_retry
from wakaq.exceptions import WakaQError
from wakaq.ids import new_id

T = TypeVar("T")

#: defaults of `retry_backoff` / `retry_backoff_max` (seconds) and `retry_jitter` (Celery's values)
DEFAULT_BACKOFF = 1.0
DEFAULT_BACKOFF_MAX = 600.0
DEFAULT_JITTER = True
#: one reason kept in meta `errors` is cut to this many characters (the list is bounded by max_retries)
MAX_REASON = 1000

ExceptionTypes = tuple[type[BaseException], ...]
RetryOnValue = type[BaseException] | Sequence[type[BaseException]] | None
BackoffValue = int | float | timedelta | None


class Retry(WakaQError):
    """Raise inside a task to run it again later, whatever its `retry_on` says; it counts against `max_retries`
    (once they are used up the task is recorded failed). `countdown`: seconds (or a timedelta) from now; `eta`: a
    datetime (naive = UTC); neither: the task's backoff. `raise Retry(...) from exc` records `exc` as the reason."""

    def __init__(self, reason: str = "", *, countdown: BackoffValue = None, eta: datetime | None = None) -> None:
        super().__init__(reason)
        if countdown is not None and eta is not None:
            raise WakaQError("Retry takes countdown= or eta=, not both")
        self.countdown = None if countdown is None else to_backoff(countdown, "Retry countdown")
        if eta is not None and not isinstance(eta, datetime):
            raise WakaQError(f"Retry eta must be a datetime, got {eta!r} (use countdown= for seconds)")
        self.eta = eta

    def __str__(self) -> str:
        return str(self.args[0]) if self.args and self.args[0] else "retry requested"

    def delay(self, now: float) -> float | None:
        """Seconds from `now` (unix time) until the retry the raiser asked for; None: the backoff decides."""
        if self.countdown is not None:
            return self.countdown
        if self.eta is not None:
            aware = self.eta if self.eta.tzinfo is not None else self.eta.replace(tzinfo=timezone.utc)
            return max(0.0, aware.timestamp() - now)
        return None


@dataclass(frozen=True, slots=True)
class RetryOptions:
    """What a task (or the app, as defaults) says about retries; None: take the app's value."""

    retry_on: ExceptionTypes | None = None
    backoff: float | None = None
    backoff_max: float | None = None
    jitter: bool | None = None

    @classmethod
    def create(
        cls, retry_on: RetryOnValue, backoff: BackoffValue, backoff_max: BackoffValue, jitter: bool | None, what: str
    ) -> RetryOptions:
        if jitter is not None and not isinstance(jitter, bool):
            raise WakaQError(f"retry_jitter of {what} must be True or False, got {jitter!r}")
        return cls(
            None if retry_on is None else to_retry_on(retry_on, f"retry_on of {what}"),
            None if backoff is None else to_backoff(backoff, f"retry_backoff of {what}"),
            None if backoff_max is None else to_backoff(backoff_max, f"retry_backoff_max of {what}"),
            jitter,
        )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A task's effective retry settings from one queue (worked out once per (task, queue) by the worker)."""

    retry_on: ExceptionTypes
    max_retries: int
    backoff: float = DEFAULT_BACKOFF
    backoff_max: float = DEFAULT_BACKOFF_MAX
    jitter: bool = DEFAULT_JITTER
    #: what a failure is retried for: `Retry` always, then `retry_on`
    catches: ExceptionTypes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "catches", (Retry, *self.retry_on))

    @property
    def keeps_errors(self) -> bool:
        """Retries of this task record their reasons in meta `errors` (soft-timeout retries too)."""
        return bool(self.retry_on)

    def delay(self, attempt: int, rand: Callable[[], float] | None = None) -> float:
        """Seconds to wait after attempt `attempt` (1 = the first run) failed: see the module docstring."""
        return backoff_delay(attempt, self.backoff, self.backoff_max, self.jitter, rand)


def resolve(task: RetryOptions | None, app: RetryOptions, max_retries: int) -> RetryPolicy:
    """The policy of a task: each setting from the task, else the app (`app`'s None values: the defaults)."""
    mine = task or RetryOptions()

    def pick(name: str, default: Any) -> Any:
        value = getattr(mine, name)
        if value is None:
            value = getattr(app, name)
        return default if value is None else value

    return RetryPolicy(
        pick("retry_on", ()),
        max_retries,
        pick("backoff", DEFAULT_BACKOFF),
        pick("backoff_max", DEFAULT_BACKOFF_MAX),
        pick("jitter", DEFAULT_JITTER),
    )


def backoff_delay(
    attempt: int, base: float, cap: float, jitter: bool, rand: Callable[[], float] | None = None
) -> float:
    """min(cap, base * 2 ** (attempt - 1)), then uniform in [0, that) with jitter (`rand`: `random.random`)."""
    # NOTE: 2.0 ** 1023 is the largest power a float holds; base * it may be inf, which min() turns into the cap
    delay = min(cap, base * 2.0 ** min(max(attempt - 1, 0), 1023))
    if not jitter:
        return delay
    if rand is None:
        import random  # NOTE: here, not at the top: `import wakaq` stays free of it

        rand = random.random
    return delay * rand()


def to_retry_on(value: RetryOnValue, what: str) -> ExceptionTypes:
    """An exception class or a sequence of them, as a tuple."""
    items = (value,) if isinstance(value, type) else value
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise WakaQError(f"{what} must be an exception class or a tuple of them, got {value!r}")
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise WakaQError(f"{what} must hold exception classes, got {item!r}")
    return tuple(items)


def to_backoff(value: int | float | timedelta, what: str) -> float:
    """A delay as float seconds >= 0 (a number or a timedelta)."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds < math.inf:
        raise WakaQError(f"{what} must be a number of seconds >= 0 or a timedelta, got {value!r}")
    return float(seconds)


# ---- the worker's decisions ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NextAttempt:
    """A retry to send: at `due` (unix time; None: now, straight back to the queue) with this payload meta.

    NOTE: the worker sends `delay`, not `due`: the retry is due that long after the script runs, on Redis's clock,
    so a worker whose clock is off does not retry early or late (a `Retry(eta=...)` datetime is turned into a delay
    here, on this host's clock, as the raiser meant it)."""

    due: float | None
    meta: dict[str, Any]
    delay: float | None = None


def describe(exc: BaseException) -> str:
    """ "<ExcType>: <msg>" (a `Retry` raised from an exception names that exception)."""
    if isinstance(exc, Retry) and exc.__cause__ is not None and not exc.args[0]:
        exc = exc.__cause__
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def with_error(meta: Mapping[str, Any] | None, reason: str) -> dict[str, Any]:
    """A copy of `meta` whose `errors` end with `reason`."""
    new = dict(meta or {})
    new["errors"] = [*errors_of(meta), reason[:MAX_REASON]]
    return new


def errors_of(meta: Mapping[str, Any] | None) -> list[str]:
    errors = meta.get("errors") if meta is not None else None
    return [str(e) for e in errors] if isinstance(errors, list) else []


def next_attempt(
    policy: RetryPolicy, retry: int, exc: BaseException, meta: Mapping[str, Any] | None, now: float | None = None
) -> NextAttempt | None:
    """The retry after a failed attempt (payload `retry` = `retry`, so attempt retry + 1); None when retries are
    exhausted."""
    if retry >= policy.max_retries:
        return None
    now = time.time() if now is None else now
    delay = exc.delay(now) if isinstance(exc, Retry) else None
    if delay is None:
        delay = policy.delay(retry + 1)
    new = with_error(meta, describe(exc))
    new.setdefault("id", new_id())
    if delay <= 0:
        return NextAttempt(None, new)
    return NextAttempt(now + delay, new, delay)


def failure_reason(reason: str, meta: Mapping[str, Any] | None, retry: int, limit: int) -> str:
    """The reason recorded for a failed task: every attempt's reason when earlier attempts failed too."""
    earlier = errors_of(meta)
    if not earlier:
        return reason
    spent = "retries exhausted" if retry >= limit else "not retried"
    attempts = [*earlier, reason]
    listed = "; ".join(f"attempt {i}: {r}" for i, r in enumerate(attempts, 1))
    return f"{reason} ({spent}: attempt {retry + 1}, max_retries {limit}; {listed})"


def soft_timeout_meta(policy: RetryPolicy, meta: dict[str, Any] | None) -> dict[str, Any] | None:
    """The meta of a soft-timeout retry: unchanged for plain tasks, the reason added for tasks that keep errors."""
    if policy.keeps_errors or (meta is not None and "errors" in meta):
        return with_error(meta, "SoftTimeout: soft timeout")
    return meta


# ---- eager mode -----------------------------------------------------------------------------------------------


def _give_up(exc: BaseException, errors: list[str], policy: RetryPolicy) -> None:
    if errors:
        listed = "; ".join(f"attempt {i}: {r}" for i, r in enumerate([*errors, describe(exc)], 1))
        note = f"wakaq: gave up after {len(errors) + 1} attempts (max_retries {policy.max_retries}): {listed}"
        # NOTE: add_note is Python 3.11+; on 3.10 the note goes where 3.11 keeps it (printed by traceback there)
        add_note = getattr(exc, "add_note", None)
        if add_note is not None:
            add_note(note)
        else:
            exc.__notes__ = [*getattr(exc, "__notes__", []), note]  # type: ignore[attr-defined]


def attempts_inline(policy: RetryPolicy, call: Callable[[], T]) -> T:
    """Eager mode: `call()` until it succeeds or retries run out, at once (no backoff sleep); then the last
    exception propagates, the earlier reasons in a note."""
    errors: list[str] = []
    while True:
        with _attempt(policy, errors):
            return call()


async def attempts_inline_async(policy: RetryPolicy, call: Callable[[], Awaitable[T]]) -> T:
    """`attempts_inline` for an async task (or one with an async wrapper or callback)."""
    errors: list[str] = []
    while True:
        with _attempt(policy, errors):
            return await call()


@contextmanager
def _attempt(policy: RetryPolicy, errors: list[str]) -> Iterator[None]:
    """One inline attempt: the retry number and earlier reasons visible to the task (`current_task`); an exception
    to retry is swallowed and its reason added to `errors` (the caller's loop runs the next attempt), any other, or
    the last, propagates."""
    tokens = (running_retry.set(len(errors)), running_meta.set({"errors": list(errors)})) if errors else None
    try:
        yield
    except BaseException as exc:
        if not isinstance(exc, policy.catches) or len(errors) >= policy.max_retries:
            _give_up(exc, errors, policy)
            raise
        errors.append(describe(exc))
    finally:
        if tokens is not None:
            running_retry.reset(tokens[0])
            running_meta.reset(tokens[1])
