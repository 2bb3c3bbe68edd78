"""App for tests/test_parked.py and tests/test_keyspace_bounds.py: `send` on queue `default` with the rate limit of
WAKAQ_TEST_TASK_RATE (unset or empty: no limit, as after a deploy that removed it), `free` never limited, and a
broadcast task `crash` that kills its child (dead-listed after 3 deliveries). Each run appends "<task>:<i>" to the
Redis list `ran`."""

from __future__ import annotations

import os
import signal

import redis

from wakaq import WakaQ
from wakaq.connection import redis_py_client

env = os.environ.get


def build(rate: str | None) -> WakaQ:
    """The app with `send` limited to `rate` (None: not limited)."""
    app = WakaQ(
        url=os.environ["WAKAQ_TEST_URL"],
        queues=["default"],
        concurrency=int(env("WAKAQ_TEST_CONCURRENCY", "1")),
        wait_timeout=0.5,
        worker_log_file=env("WAKAQ_TEST_LOG") or None,
        worker_log_level="DEBUG",
    )
    app.task(rate_limit=rate)(send)
    app.task(free)
    app.task(crash)
    return app


_client: redis.Redis | None = None


def _ran(entry: str) -> None:
    global _client
    if _client is None:
        _client = redis_py_client(wakaq)
    _client.rpush("ran", entry)


def send(i: int) -> None:
    _ran(f"send:{i}")


def free(i: int) -> None:
    _ran(f"free:{i}")


def crash() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


wakaq = build(env("WAKAQ_TEST_TASK_RATE") or None)
