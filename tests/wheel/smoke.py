"""The wheel smoke: run by tests/wheel/run.py inside a fresh venv where only the built wheel is installed.

Not collected by a plain `pytest` run (the file name does not start with `test_`): in the development venv wakaq is
the editable build, not a wheel. Checks that the installed package is the wheel's (no source tree, no cargo), then a
producer, a worker daemon running a sync and an async task, the scheduler firing a cron task, `wakaq-info` and
`wakaq-web`'s `/metrics`, all through the installed console scripts or `python -m wakaq`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
import redis

import wakaq
from tests.conftest import ROOT
from tests.webserver import WebServer, request
from tests.workers import Worker, events, wait_until

APP = "tests.wheel.smoke_app.wakaq"
BIN = Path(sys.executable).parent
COMMANDS = ("wakaq-worker", "wakaq-scheduler", "wakaq-info", "wakaq-purge", "wakaq-failed", "wakaq-cancel", "wakaq-web")


def run(*command: str, url: str) -> str:
    env = {"PATH": str(BIN), "WAKAQ_TEST_URL": url, "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, env=env, check=True, capture_output=True, text=True, timeout=30).stdout


@pytest.fixture
def worker(redis_url: str, tmp_path: Path) -> Iterator[Worker]:
    daemon = Worker(tmp_path, redis_url, app=APP)
    try:
        daemon.wait_ready(children=2)
        yield daemon
    finally:
        daemon.stop()


def test_the_wheel_is_what_runs() -> None:
    assert Path(wakaq.__file__).is_relative_to(sysconfig.get_paths()["purelib"]), wakaq.__file__
    assert wakaq._wakaq.__file__.endswith(".abi3.so"), wakaq._wakaq.__file__
    assert shutil.which("cargo") is None, "cargo is on PATH: the wheel test must run without a Rust toolchain"


def test_one_version_everywhere() -> None:
    cargo_version = re.search(r'^version = "([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.MULTILINE)
    assert cargo_version is not None
    assert wakaq.__version__ == cargo_version.group(1)
    for command in COMMANDS:  # every console script of the wheel is installed and answers
        printed = subprocess.run([BIN / command, "--version"], check=True, capture_output=True, text=True).stdout
        assert printed.strip() == f"{command} {wakaq.__version__}"


def test_worker_runs_sync_and_async_tasks(worker: Worker, rclient: redis.Redis) -> None:
    from tests.wheel import smoke_app

    when = datetime(2026, 12, 7, 15, 4, 5, 987654)
    smoke_app.add.delay(1, 2, when=when, amount=Decimal("0.10"))
    smoke_app.async_add.delay(3, 4)
    wait_until(lambda: len(events(rclient)) == 2, 15, what="both tasks done")
    assert events(rclient, "add")[0]["value"] == [3, when.isoformat(), "0.10"]
    assert events(rclient, "async_add")[0]["value"] == 7


def test_scheduler_fires_a_cron_task(worker: Worker, redis_url: str, rclient: redis.Redis, tmp_path: Path) -> None:
    out = (tmp_path / "scheduler.out").open("wb")
    env = {"PATH": str(BIN), "WAKAQ_TEST_URL": redis_url, "PYTHONPATH": str(ROOT)}
    scheduler = subprocess.Popen([BIN / "wakaq-scheduler", "--app", APP], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: events(rclient, "tick"), 15, 0.1, "the cron task to run")
    finally:
        scheduler.terminate()
        scheduler.wait(10)
        out.close()
    assert events(rclient, "tick")[0]["value"] == "cron"


def test_info_lists_the_worker(worker: Worker, redis_url: str) -> None:
    info = json.loads(run(str(BIN / "wakaq-info"), "--app", APP, url=redis_url))
    assert info["workers"] == 1
    assert set(info["queues"]) == {"high", "default"}


def test_web_answers_metrics(worker: Worker, redis_url: str, tmp_path: Path) -> None:
    from tests.wheel import smoke_app

    done = re.compile(r'^wakaq_tasks_done_total\{[^}]*task="async_add"[^}]*\} 1(\.0)?$', re.MULTILINE)

    def counted() -> bool:
        status, _, body = request(web.url + "metrics")
        assert status == 200
        return done.search(body.decode()) is not None

    web = WebServer(tmp_path, redis_url, app=APP).wait_ready()
    try:
        smoke_app.async_add.delay(1, 1)
        wait_until(counted, 15, 0.2, "the done task counted in /metrics")
    finally:
        web.stop()
