"""What the test apps share: the options the `start_worker` fixture passes as WAKAQ_TEST_* variables, and the Redis
list `events` their tasks append to (read by tests/workers.py `events`)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis

from wakaq import WakaQ
from wakaq.connection import redis_py_client

env = os.environ.get


def worker_options(concurrency: int = 1, log_level: str = "DEBUG") -> dict[str, Any]:
    """`WakaQ(...)` options every worker test app takes from the environment (defaults: the arguments)."""
    return {
        "url": os.environ["WAKAQ_TEST_URL"],
        "concurrency": int(env("WAKAQ_TEST_CONCURRENCY") or concurrency),
        "worker_log_file": env("WAKAQ_TEST_LOG") or None,
        "worker_log_level": env("WAKAQ_TEST_LOG_LEVEL", log_level),
        "start_method": env("WAKAQ_TEST_START_METHOD", "fork"),
    }


class Events:
    """The list `events` in the app's Redis: one JSON object per `record` (task, pid, time and the fields given)."""

    KEY = "events"

    def __init__(self, app: WakaQ) -> None:
        self.app = app
        self._client: redis.Redis | None = None

    def client(self) -> redis.Redis:
        """The app's redis-py client (a RedisCluster on a cluster url), made on first use.

        NOTE: made lazily, so a worker child makes its own after the fork instead of sharing the parent's socket."""
        if self._client is None:
            self._client = redis_py_client(self.app)
        return self._client

    def record(self, task: str, **fields: Any) -> None:
        event = {"task": task, "pid": os.getpid(), "t": time.time(), **fields}
        self.client().rpush(self.KEY, json.dumps(event))

    def count(self, key: str) -> int:
        """One more run of `key`, counted in Redis (a retry may run in another child): the runs so far."""
        return int(self.client().incr(key))
