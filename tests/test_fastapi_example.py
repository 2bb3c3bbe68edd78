"""docs/examples/fastapi_app.py for real: a redis-server, a `wakaq-worker` of the example's app, a uvicorn serving
it on a loopback port (asyncio's loop and uvloop), and an HTTP client calling its endpoints."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.keyspace import KEYS
from tests.redis_server import free_port
from tests.workers import StartWorker, wait_until

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


class Uvicorn:
    """`uvicorn fastapi_app:api` on a free loopback port; its output in a file."""

    def __init__(self, tmp: Path, loop: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = tmp / "uvicorn.out"
        with self.out.open("wb") as output:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "fastapi_app:api", "--app-dir", str(EXAMPLES), "--host",
                 "127.0.0.1", "--port", str(self.port), "--loop", loop],
                stdout=output,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"uvicorn exited with {self.proc.returncode}:\n{self.out.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/openapi.json", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(params=["asyncio", "uvloop"])
def service(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The example served by uvicorn (`--loop` asyncio or uvloop) on the session's Redis: its base URL."""
    monkeypatch.setenv("WAKAQ_URL", redis_url)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(EXAMPLES), os.environ["PYTHONPATH"]]))
    server = Uvicorn(tmp_path, str(request.param))
    try:
        wait_until(server.ready, timeout=30.0, interval=0.1, what="uvicorn serving the example")
        yield server.url
    finally:
        server.stop()


def test_endpoints_enqueue_and_await_results(service: str, start_worker: StartWorker, rclient: redis.Redis) -> None:
    # NOTE: the example logs to stderr, so readiness is its registration in Redis (not the harness's log lines)
    worker = start_worker(app="fastapi_app.wakaq", wait=False)
    wait_until(lambda: worker.alive() and rclient.scard(KEYS.daemons) == 1, timeout=30.0, what="the worker daemon")
    with httpx.Client(base_url=service, timeout=30.0) as http:
        for i in range(3):
            reply = http.post("/signup", json={"email": f"user{i}@example.com"})
            assert reply.status_code == 202 and reply.json() == {"queued": True}
        reply = http.post("/count", json={"text": "the quick brown fox jumps", "timeout": 20})
        assert reply.status_code == 200, reply.text
        assert reply.json()["words"] == 5
        handle_id = reply.json()["id"]
    wanted = {f"user{i}@example.com".encode() for i in range(3)}
    wait_until(lambda: rclient.smembers("example:welcomed") == wanted, timeout=15.0, what="the welcome tasks")
    assert rclient.hget(KEYS.result(handle_id), "status") == b"done"


def test_a_result_not_ready_in_time_is_a_504(service: str, rclient: redis.Redis) -> None:
    """No worker runs: the task waits in its queue, and the endpoint's `aresult` gives up after its timeout."""
    with httpx.Client(base_url=service, timeout=30.0) as http:
        reply = http.post("/count", json={"text": "nobody counts this", "timeout": 0.5})
    assert reply.status_code == 504, reply.text
    assert rclient.llen(KEYS.queue("default")) == 1
