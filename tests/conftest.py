"""Shared fixtures: a private redis-server per test session, flushed before each test that uses it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.keyspace import CLUSTER  # noqa: E402
from tests.redis_server import RedisServer, in_ci, redis_available  # noqa: E402
from tests.webserver import browser  # noqa: E402, F401 - the headless Chromium fixture

if TYPE_CHECKING:
    from tests.redis_cluster import RedisClusterServers


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    if not redis_available():
        if in_ci():
            pytest.fail("redis-server is missing; CI must install it (.ci/run does)")
        pytest.skip("redis-server is not installed")
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """A private 6-node Redis Cluster (3 masters, 3 replicas) for the session (`WAKAQ_TEST_CLUSTER=1`)."""
    from tests.redis_cluster import RedisClusterServers

    if not redis_available():
        if in_ci():
            pytest.fail("redis-server is missing; CI must install it (.ci/run does)")
        pytest.skip("redis-server is not installed")
    cluster = RedisClusterServers().start()
    try:
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """URL of a clean Redis (a `redis+cluster://` one with WAKAQ_TEST_CLUSTER=1); also exported as WAKAQ_TEST_URL
    for test apps and worker subprocesses."""
    if CLUSTER:
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        cluster.flushall()
        url = cluster.url
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        client = redis.Redis.from_url(server.url)
        client.flushall()
        client.close()
        url = server.url
    monkeypatch.setenv("WAKAQ_TEST_URL", url)
    return url


@pytest.fixture
def rclient(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Any]:
    """A redis-py client of that Redis: `redis.Redis`, or `redis.RedisCluster` in cluster mode."""
    client: Any = request.getfixturevalue("redis_cluster").client() if CLUSTER else redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _pythonpath(monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker subprocesses import test apps as `tests.apps.<name>`."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
