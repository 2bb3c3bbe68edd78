"""Fixtures of the fault suite, and the summary table printed at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import redis

from tests.faults.driver import RESULTS, format_table
from tests.faults.proxy import Proxy
from tests.redis_server import RedisServer, in_ci, redis_available

APP = "tests.faults.app.wakaq"


@pytest.fixture
def worker_defaults() -> dict[str, Any]:
    """The shared `start_worker` (tests/conftest.py) runs the suite's app, two children, with DEBUG logs; the
    scenarios load the machine, so a daemon gets longer to be ready."""
    return {"app": APP, "concurrency": 2, "log_level": "DEBUG", "ready_timeout": 30.0}


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server with `appendonly yes`, `appendfsync always`, restartable on the same port and dir."""
    if not redis_available():
        if in_ci():
            pytest.fail("redis-server is missing; CI must install it (.ci/run does)")
        pytest.skip("redis-server is not installed")
    data = tmp_path / "redis"
    data.mkdir()
    server = RedisServer("--appendonly", "yes", "--appendfsync", "always", "--save", "", dir=str(data))
    try:
        yield server.start()
    finally:
        server.stop(kill=True)


@pytest.fixture
def proxy(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Proxy]:
    """A TCP proxy in front of the test Redis (tests/faults/proxy.py); `indirect` parametrization sets its latency
    per reply in seconds."""
    p = Proxy(urlparse(redis_url).port or 6379, latency=getattr(request, "param", 0.0))
    try:
        yield p
    finally:
        p.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    terminalreporter.write_sep("=", "fault injection: every task accounted for")
    for line in format_table(RESULTS):
        terminalreporter.write_line(line)


@pytest.fixture
def client(rclient: redis.Redis) -> redis.Redis:
    """The shared test Redis (scenarios with their own server override this)."""
    return rclient
