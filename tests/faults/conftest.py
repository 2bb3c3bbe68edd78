"""Fixtures of the fault suite, and the summary table printed at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.faults.driver import RESULTS, format_table
from tests.redis_server import RedisServer, in_ci, redis_available
from tests.workers import Worker

APP = "tests.faults.app.wakaq"


class StartWorker(Protocol):
    def __call__(
        self, url: str, name: str = ..., concurrency: int = ..., wait: bool = ..., **options: Any
    ) -> Worker: ...


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[StartWorker]:
    """Start `wakaq-worker --app tests.faults.app.wakaq` daemons; every one is stopped (and its children
    killed) when the test ends, whatever happened."""
    started: list[Worker] = []

    def start(url: str, name: str = "worker", concurrency: int = 2, wait: bool = True, **options: Any) -> Worker:
        options.setdefault("log_level", "DEBUG")
        worker = Worker(tmp_path, url, name=f"{name}{len(started)}", app=APP, concurrency=concurrency, **options)
        started.append(worker)
        if wait:
            worker.wait_ready(children=concurrency, timeout=30)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()


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


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    terminalreporter.write_sep("=", "fault injection: every task accounted for")
    for line in format_table(RESULTS):
        terminalreporter.write_line(line)
