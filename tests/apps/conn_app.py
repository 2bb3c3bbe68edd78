"""App for connection tests (tests/test_connections.py): passwords, ACL users and TLS.

`make_app(url, **ssl_options)` builds the app. The module's `wakaq`, for the subprocesses, is built from
WAKAQ_TEST_URL and the TLS options WAKAQ_TEST_CA (ssl_ca_certs), WAKAQ_TEST_CERT_REQS, WAKAQ_TEST_CERTFILE and
WAKAQ_TEST_KEYFILE; WAKAQ_TEST_LOG is the worker and scheduler log file, WAKAQ_TEST_CRON the one schedule. Each
task appends a JSON event to the Redis list `events` through a redis-py client made with the app's own connection
settings (so it authenticates and speaks TLS like the admin commands do).
"""

from __future__ import annotations

import os
from typing import Any

from tests.apps.common import Events
from wakaq import CronTask, WakaQ

env = os.environ.get


def make_app(url: str, **ssl_options: Any) -> WakaQ:
    app = WakaQ(
        url=url,
        queues=[(0, "high"), "default"],
        schedules=[CronTask(env("WAKAQ_TEST_CRON", "* * * * * *"), "note", args=["cron"])],
        concurrency=1,
        wait_timeout=0.5,
        socket_timeout=3,
        socket_connect_timeout=2,
        worker_log_file=env("WAKAQ_TEST_LOG") or None,
        worker_log_level="DEBUG",
        scheduler_log_file=env("WAKAQ_TEST_LOG") or None,
        scheduler_log_level="DEBUG",
        **ssl_options,
    )
    events = Events(app)

    @app.task
    def note(tag: str) -> None:
        events.record("note", tag=tag)

    return app


def _env_options() -> dict[str, Any]:
    options: dict[str, Any] = {}
    if env("WAKAQ_TEST_CA"):
        options["ssl_ca_certs"] = env("WAKAQ_TEST_CA")
    if env("WAKAQ_TEST_CERT_REQS"):
        options["ssl_cert_reqs"] = env("WAKAQ_TEST_CERT_REQS")
    if env("WAKAQ_TEST_CERTFILE"):
        options["ssl_certfile"] = env("WAKAQ_TEST_CERTFILE")
    if env("WAKAQ_TEST_KEYFILE"):
        options["ssl_keyfile"] = env("WAKAQ_TEST_KEYFILE")
    return options


wakaq = make_app(env("WAKAQ_TEST_URL") or "redis://127.0.0.1:1/0", **_env_options())
