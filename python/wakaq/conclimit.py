"""Per-key concurrency: `@app.task(concurrency_key=..., concurrency_limit=N)` runs at most N of a task at once per key,
across every worker daemon and host; tasks of other keys are never held up by a full one.

The producer computes the key at `.delay()` (a callable of the task's arguments, or the name of one of them) and sends
it in the payload's meta `ck`; the worker's claim script takes a permit of that key in the same atomic step that
claims the task, or parks the task until a permit frees up (rust/src/broker/lua/conc.lua has the design). A key of
None means "not limited". Eager mode ignores the limit.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wakaq.exceptions import WakaQError

#: longest key, in UTF-8 bytes (rust/src/codec/meta.rs MAX_CONC_KEY)
MAX_KEY_BYTES = 256
#: largest limit (rust/src/supervisor/config.rs MAX_CONC_LIMIT)
MAX_LIMIT = 1_000_000

KeyFunction = Callable[..., object]


@dataclass(frozen=True)
class ConcurrencyLimit:
    """How a task's key is found and how many of its tasks may run at once per key."""

    task: str
    limit: int
    key: KeyFunction | str
    signature: inspect.Signature | None

    @classmethod
    def create(
        cls, fn: Callable[..., Any], task: str, key: KeyFunction | str | None, limit: object
    ) -> ConcurrencyLimit | None:
        """The limit of `@app.task(concurrency_key=key, concurrency_limit=limit)`; None when neither is given."""
        if key is None and limit is None:
            return None
        where = f"task {task!r}"
        if key is None or limit is None:
            raise WakaQError(f"concurrency_key and concurrency_limit of {where} go together: give both or neither")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise WakaQError(f"concurrency_limit of {where} must be an int from 1 to {MAX_LIMIT}, got {limit!r}")
        if isinstance(key, str):
            signature = inspect.signature(fn)
            if key not in signature.parameters:
                params = ", ".join(signature.parameters) or "none"
                raise WakaQError(f"concurrency_key {key!r} of {where} is not one of its parameters ({params})")
            return cls(task, limit, key, signature)
        if not callable(key):
            raise WakaQError(f"concurrency_key of {where} must be an argument name or a callable, got {key!r}")
        return cls(task, limit, key, None)

    def key_of(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
        """The key of one call: a str (an int is written in decimal), or None (not limited). WakaQError for
        anything else, or a key longer than MAX_KEY_BYTES."""
        if isinstance(self.key, str):
            assert self.signature is not None
            try:
                bound = self.signature.bind(*args, **kwargs)
            except TypeError as e:
                raise WakaQError(f"task {self.task!r}: cannot find concurrency_key {self.key!r}: {e}") from None
            bound.apply_defaults()
            value = bound.arguments.get(self.key)
        else:
            value = self.key(*args, **kwargs)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise WakaQError(
                f"the concurrency key of task {self.task!r} must be a str, an int or None, got {type(value).__name__}"
            )
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            size = -1
        if not 1 <= size <= MAX_KEY_BYTES:
            raise WakaQError(
                f"the concurrency key of task {self.task!r} must be 1 to {MAX_KEY_BYTES} bytes of UTF-8, got {size}"
            )
        return value

    def meta(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], meta: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """`meta` with this call's key added (a new dict; `meta` itself when the call is not limited)."""
        key = self.key_of(args, kwargs)
        if key is None:
            return meta
        return {**(meta or {}), "ck": key}
