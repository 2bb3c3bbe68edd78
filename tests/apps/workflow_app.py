"""App for the workflow tests (tests/test_workflow.py): WAKAQ_TEST_* options as in worker_app. Tasks append JSON
events to the Redis list `events` (tests/apps/common.py)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from tests.apps.common import Events, worker_options
from wakaq import WakaQ, current_task

wakaq = WakaQ(queues=["high", "low"], max_retries=0, wait_timeout=0.5, **worker_options(concurrency=2))

record = Events(wakaq).record


@wakaq.task
def add(a: int, b: int) -> int:
    record("add", a=a, b=b, workflow=current_task.workflow_id)
    return a + b


@wakaq.task(queue="high")
def mul(a: int, b: int) -> int:
    record("mul", a=a, b=b)
    return a * b


@wakaq.task
def ident(x: Any) -> Any:
    record("ident", x=x)
    return x


@wakaq.task
def collect(results: list[Any], tag: str = "") -> list[Any]:
    """A callback: records what it got."""
    record("collect", results=results, tag=tag)
    return results


@wakaq.task
def boom(message: str) -> None:
    record("boom", message=message)
    raise ValueError(message)


@wakaq.task
def nap(seconds: float, tag: str) -> str:
    record("nap", tag=tag)
    time.sleep(seconds)
    return tag


@wakaq.task
def die() -> None:
    """Kills its own child every time (a poison pill: dead-listed by the parent after 3 deliveries)."""
    record("die")
    os.kill(os.getpid(), signal.SIGKILL)
