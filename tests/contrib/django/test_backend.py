"""The `django.tasks` backend (wakaq.contrib.django.backend): Django tasks enqueued through it run on a real
`wakaq-worker` of the test project and their results are read back through Django's API."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("django", minversion="6.0", reason="Django 6 needs Python >= 3.12: `make test-django` runs these")

from django.tasks import TaskResult, TaskResultStatus
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.utils import timezone

from tests.contrib.django.conftest import WORKER_APP
from tests.keyspace import KEYS
from tests.workers import StartWorker

pytestmark = [pytest.mark.timeout(90)]


def finished(result: TaskResult, timeout: float = 15.0) -> TaskResult:
    """`result` refreshed through Django's API until it is finished (or the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        result.refresh()
        if result.is_finished:
            return result
        assert time.monotonic() < deadline, f"task {result.id} not finished after {timeout}s: {result.status}"
        time.sleep(0.05)


def test_a_task_runs_on_the_worker_and_its_result_is_read_back(django_project: Path, start_worker: StartWorker) -> None:
    from tests.contrib.django_project.shop import jobs

    result = jobs.add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY and result.args == [2, 3]
    pending = jobs.add.get_result(result.id)
    assert (pending.status, pending.args, pending.task.func) == (TaskResultStatus.READY, [2, 3], jobs.add.func)
    start_worker(WORKER_APP)
    done = finished(result)
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.return_value == 5
    again = jobs.add.get_result(result.id)  # NOTE: read afresh, as another process would
    assert again.return_value == 5 and again.args == [2, 3] and again.attempts == 1
    assert again.enqueued_at <= again.started_at <= again.finished_at  # type: ignore[operator]
    assert again.errors == []


def test_a_task_reads_the_committed_database(django_project: Path, start_worker: StartWorker) -> None:
    from tests.contrib.django_project.shop import jobs
    from tests.contrib.django_project.shop.models import Order

    Order.objects.create(name="book")
    Order.objects.create(name="book")
    start_worker(WORKER_APP)
    assert finished(jobs.count_orders.enqueue("book")).return_value == {"name": "book", "orders": 2}


def test_context_async_tasks_and_queues(django_project: Path, start_worker: StartWorker, rclient: Any) -> None:
    from tests.contrib.django_project.shop import jobs

    urgent = jobs.urgent.enqueue()
    assert rclient.llen(KEYS.queue("high")) == 1
    start_worker(WORKER_APP)
    who = jobs.whoami.enqueue("me")
    assert finished(who).return_value == {"id": who.id, "attempt": 1, "tag": "me"}
    assert finished(jobs.async_double.enqueue(2.5)).return_value == 5.0
    assert finished(urgent).return_value == "high"


def test_a_failed_task_reports_its_exception_class_and_traceback(
    django_project: Path, start_worker: StartWorker
) -> None:
    from tests.contrib.django_project.shop import jobs

    start_worker(WORKER_APP)
    result = finished(jobs.refuse.enqueue("tea"))
    assert result.status == TaskResultStatus.FAILED
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018
    [error] = jobs.refuse.get_result(result.id).errors
    assert error.exception_class is jobs.OutOfStock
    assert "no tea left" in error.traceback and "raise OutOfStock" in error.traceback


def test_run_after_waits_in_the_eta_set(django_project: Path, start_worker: StartWorker, rclient: Any) -> None:
    from tests.contrib.django_project.shop import jobs

    start_worker(WORKER_APP)
    sent = time.monotonic()
    result = jobs.add.using(run_after=timezone.now() + timedelta(seconds=1.5)).enqueue(1, 1)
    assert rclient.zcard(KEYS.eta("default")) == 1
    assert jobs.add.get_result(result.id).status == TaskResultStatus.READY
    assert finished(result).return_value == 2
    assert time.monotonic() - sent >= 1.4


def test_what_the_backend_refuses(django_project: Path) -> None:
    from tests.contrib.django_project.shop import jobs

    with pytest.raises(InvalidTask, match="priority"):
        jobs.add.using(priority=10)
    with pytest.raises(InvalidTask, match="'nowhere' is not a queue of the WakaQ app"):
        jobs.add.using(queue_name="nowhere")
    with pytest.raises(TaskResultDoesNotExist):
        jobs.add.get_result("0" * 32)
