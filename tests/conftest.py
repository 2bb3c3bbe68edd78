"""The one test harness: a private redis-server per test session (flushed before each test that uses it), the
test app of a module (`app`), worker and scheduler factories (`start_worker`, `start_scheduler`) and the start
method a worker test runs under.

A module picks its test app with `pytestmark = pytest.mark.app("tests.apps.results_app")` (default: worker_app);
`app` imports it and `start_worker` runs it. A folder changes the worker defaults by overriding `worker_defaults`
(tests/faults/conftest.py). A test that takes `start_method` runs twice, its workers forking and spawning children.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.keyspace import CLUSTER  # noqa: E402
from tests.redis_server import RedisServer, in_ci, redis_available  # noqa: E402
from tests.webserver import browser, web  # noqa: E402, F401 - the headless Chromium and `wakaq-web` fixtures
from tests.workers import Scheduler, StartScheduler, StartWorker, Worker  # noqa: E402

DEFAULT_APP = "tests.apps.worker_app"
#: a spawned child imports the app before it is ready: allow for a loaded machine
SPAWN_READY_TIMEOUT = 30.0

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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "app(module): the test app of a module (`app` fixture, `start_worker` default)")


def app_module(request: pytest.FixtureRequest) -> str:
    marker = request.node.get_closest_marker("app")
    return str(marker.args[0]) if marker else DEFAULT_APP


@pytest.fixture
def app(request: pytest.FixtureRequest, redis_url: str) -> ModuleType:
    """The module's test app, imported once WAKAQ_TEST_URL points at this session's Redis."""
    return importlib.import_module(app_module(request))


@pytest.fixture(params=["fork", "spawn"])
def start_method(request: pytest.FixtureRequest) -> str:
    """How `start_worker`'s daemons start their children (`--start-method`), for tests that take it."""
    return str(request.param)


@pytest.fixture
def worker_defaults(request: pytest.FixtureRequest) -> dict[str, Any]:
    """What `start_worker` uses unless a call says otherwise."""
    return {"app": f"{app_module(request)}.wakaq", "concurrency": 1, "ready_timeout": 15.0}


@pytest.fixture
def start_worker(
    request: pytest.FixtureRequest, tmp_path: Path, worker_defaults: dict[str, Any]
) -> Iterator[StartWorker]:
    """Start `wakaq-worker` daemons (tests/workers.py `Worker`); every one is stopped, its children killed, when
    the test ends, whatever happened. `url` defaults to the session's Redis (`redis_url`)."""
    started: list[Worker] = []

    def start(app: str | None = None, **given: Any) -> Worker:
        options = {**worker_defaults, **given}
        url = options.pop("url", None) or request.getfixturevalue("redis_url")
        name, wait = options.pop("name", "worker"), options.pop("wait", True)
        ready_timeout = float(options.pop("ready_timeout"))
        if "start_method" in request.fixturenames:
            method = request.getfixturevalue("start_method")
            options["args"] = (*options.get("args", ()), f"--start-method={method}")
            if method == "spawn":
                ready_timeout = max(ready_timeout, SPAWN_READY_TIMEOUT)
        app_path = app or options.pop("app")
        options.pop("app", None)
        worker = Worker(tmp_path, url, name=f"{name}{len(started)}", app=app_path, **options)
        started.append(worker)
        if wait:
            worker.wait_ready(children=int(options["concurrency"]), timeout=ready_timeout)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()


@pytest.fixture
def start_scheduler(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StartScheduler]:
    """Start `wakaq-scheduler` daemons of `app` (an import path); each is stopped when the test ends. `url`
    defaults to the session's Redis (`redis_url`)."""
    started: list[Scheduler] = []

    def start(app: str, *, url: str | None = None, name: str = "scheduler", **options: Any) -> Scheduler:
        url = url or request.getfixturevalue("redis_url")
        scheduler = Scheduler(tmp_path, url, name=f"{name}{len(started)}", app=app, **options)
        started.append(scheduler)
        return scheduler

    try:
        yield start
    finally:
        for scheduler in started:
            scheduler.stop()
