"""`delay_on_commit` (wakaq.contrib.django) in a real Django project on SQLite, run by a real `wakaq-worker`:
a task sent in a rolled-back transaction never runs, one sent in a committed transaction runs once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("django", minversion="6.0", reason="Django 6 needs Python >= 3.12: `make test-django` runs these")

from django.db import transaction

from tests.contrib.django.conftest import WORKER_APP
from tests.keyspace import KEYS
from tests.workers import StartWorker, events, wait_until

pytestmark = [pytest.mark.timeout(90)]


class Rollback(Exception):
    pass


def shipped(rclient: Any) -> list[dict[str, Any]]:
    return events(rclient, "ship")


def test_a_task_sent_in_a_rolled_back_transaction_never_runs(
    django_project: Path, rclient: Any, start_worker: StartWorker
) -> None:
    from tests.contrib.django_project.shop import tasks
    from tests.contrib.django_project.shop.models import Order

    start_worker(WORKER_APP)
    with pytest.raises(Rollback), transaction.atomic():
        lost = Order.objects.create(name="lost")
        tasks.ship.delay_on_commit(lost.id)
        raise Rollback
    assert rclient.llen(KEYS.queue("default")) == 0
    # NOTE: a task committed after it, then waited for: the worker has run everything sent before it
    kept = Order.objects.create(name="kept")
    tasks.ship.delay_on_commit(kept.id)
    wait_until(lambda: shipped(rclient), 15, what="the committed task")
    time.sleep(1.0)
    assert [(e["order_id"], e["name"]) for e in shipped(rclient)] == [(kept.id, "kept")]


def test_a_task_sent_in_a_committed_transaction_runs_once_after_the_commit(
    django_project: Path, rclient: Any, start_worker: StartWorker
) -> None:
    from tests.contrib.django_project.shop import tasks
    from tests.contrib.django_project.shop.models import Order

    start_worker(WORKER_APP)
    with transaction.atomic():
        order = Order.objects.create(name="committed")
        tasks.ship.delay_on_commit(order.id)
        time.sleep(0.5)
        assert rclient.llen(KEYS.queue("default")) == 0, "sent before the commit"
        assert not shipped(rclient)
    found = wait_until(lambda: shipped(rclient), 15, what="the committed task")
    assert found[0]["name"] == "committed", "the worker ran it before it could see the committed row"
    time.sleep(1.5)  # NOTE: a second run would have happened by now (the worker is idle, wait_timeout 0.5 s)
    assert len(shipped(rclient)) == 1
    assert rclient.llen(KEYS.queue("default")) == 0


def test_a_rolled_back_savepoint_drops_its_task_and_the_outer_commit_sends_the_rest(
    django_project: Path, rclient: Any, start_worker: StartWorker
) -> None:
    from tests.contrib.django_project.shop import tasks
    from tests.contrib.django_project.shop.models import Order
    from wakaq.contrib.django import delay_on_commit_with_options

    start_worker(WORKER_APP)
    with transaction.atomic():
        outer = Order.objects.create(name="outer")
        with pytest.raises(Rollback), transaction.atomic():
            inner = Order.objects.create(name="inner")
            tasks.ship.delay_on_commit(inner.id)
            raise Rollback
        delay_on_commit_with_options(tasks.ship, (outer.id,), using="default", queue="high")
    found = wait_until(lambda: shipped(rclient), 15, what="the outer task")
    time.sleep(1.0)
    assert [(e["order_id"], e["name"]) for e in shipped(rclient)] == [(outer.id, "outer")]
    assert found[0]["name"] == "outer"


def test_outside_a_transaction_it_is_sent_at_once(django_project: Path, rclient: Any) -> None:
    from tests.contrib.django_project.shop import tasks

    tasks.ship.delay_on_commit(7, queue="high")
    assert rclient.llen(KEYS.queue("high")) == 1
