"""Benchmarks reuse the test fixtures: a private redis-server on a free port."""

from tests.conftest import _pythonpath, rclient, redis_server, redis_url

__all__ = ["_pythonpath", "rclient", "redis_server", "redis_url"]
