"""The dashboard's JSON API with 100,000 failed and 100,000 eta tasks stored: every answer under 50 ms.

Real redis-server, the real `wakaq-web` subprocess, requests over one keep-alive HTTP connection (what a browser
tab does). `make bench PYTEST_ARGS=benches/test_web_bench.py` runs them; each also asserts its median.
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from tests.redis_server import RedisServer
from tests.test_web import fake_failed
from tests.webserver import WebServer

N = 100_000
BUDGET = 0.050  # seconds: the bound for an API answer
PATHS = {
    "overview": "/api/overview",
    "daemons": "/api/daemons",
    "failed_first_page": "/api/failed?queue=default&limit=50",
    "failed_last_page": f"/api/failed?queue=default&offset={N - 50}&limit=50",
    "failed_search_hit": "/api/failed?queue=default&q=flaky3&limit=50",
    "failed_search_miss": "/api/failed?queue=default&q=nomatch",
    "eta_first_page": "/api/eta?queue=default&limit=50",
    "eta_last_page": f"/api/eta?queue=default&offset={N - 50}&limit=50",
}


@pytest.fixture(scope="module")
def web(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[http.client.HTTPConnection]:
    from wakaq._wakaq import encode_task

    r = redis.Redis.from_url(redis_server.url)
    r.flushall()
    fake_failed(r, "default", N)
    now = time.time()
    for start in range(0, N, 10_000):
        r.zadd("wakaq:eta:default", {encode_task("later", [i], {}, 0): now + i for i in range(start, start + 10_000)})
    server = WebServer(Path(tmp_path_factory.mktemp("web")), redis_server.url).wait_ready()
    conn = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1].rstrip("/")), timeout=10)
    try:
        yield conn
    finally:
        conn.close()
        server.stop()
        r.flushall()
        r.close()


def fetch(conn: http.client.HTTPConnection, path: str) -> Any:
    conn.request("GET", path)
    res = conn.getresponse()
    body = res.read()
    assert res.status == 200, body[:200]
    return json.loads(body)


@pytest.mark.parametrize("name", list(PATHS))
def test_api_answer_time(benchmark: Any, web: http.client.HTTPConnection, name: str) -> None:
    path = PATHS[name]
    reply = fetch(web, path)
    if "items" in reply:
        assert reply["total"] == N and len(reply["items"]) <= 50
    benchmark(fetch, web, path)
    times = []
    for _ in range(30):
        started = time.perf_counter()
        fetch(web, path)
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    print(f"\n{name}: median {median * 1000:.1f} ms, max {max(times) * 1000:.1f} ms over 30 requests")
    assert median < BUDGET, f"{name}: median {median * 1000:.1f} ms"
