"""What crosses a move from WakaQ in the compatibility tests (tests/test_wakaq_compat.py): the arguments of task `i`
and how a task records its run. Standard library and redis-py only: WakaQ's venv imports this module too.

Every type WakaQ 4.0.4's JSON carries is here (datetime, date, timedelta, Decimal, bytes, ints beyond 64 bits,
floats of both notations, escaped and non-ASCII text), and a timezone-aware datetime, which arrives as naive UTC
whichever side sent it.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

#: hash: task id -> how many times it ran
RUNS = "compat:runs"
#: hash: task id -> repr([args, kwargs]) as the task received them
SEEN = "compat:seen"


def arguments(i: int) -> tuple[list[Any], dict[str, Any]]:
    """The (args, kwargs) sent for task `i`."""
    args = [
        i,
        2**70 + i,
        -(2**63),
        0.1 * i,
        1e-07,
        1.5e16,
        -0.0,
        f'é ✓ "q" \\ \n\t{i}',
        None,
        True,
        [1, [2, "x"], []],
        {"k": {"n": i}, "": []},
        datetime(2024, 2, 29, 23, 59, 58, 750_000 + i),
        date(2024, 1, 1),
        timedelta(days=-1, seconds=5, microseconds=i),
        Decimal(f"1.{i:02d}0"),
        bytes([0, 255, i % 256]) + b"bin",
    ]
    kwargs = {"when": datetime(2024, 1, 1, 12, 30, tzinfo=timezone(timedelta(hours=2))), "n": i}
    return args, kwargs


def expected(i: int) -> str:
    """What task `i` records: its arguments as a task receives them (the aware datetime as naive UTC)."""
    args, kwargs = arguments(i)
    kwargs["when"] = datetime(2024, 1, 1, 10, 30)
    return repr([args, kwargs])


_clients: dict[int, Any] = {}


def record(url: str, args: Any, kwargs: Any) -> None:
    """The task body on both sides: count the run of task `args[0]` and keep what it received. One client per
    process (worker children are forked)."""
    import redis

    client = _clients.get(os.getpid())
    if client is None:
        client = _clients[os.getpid()] = redis.Redis.from_url(url)
    client.hincrby(RUNS, str(args[0]), 1)
    client.hset(SEEN, str(args[0]), repr([list(args), kwargs]))
