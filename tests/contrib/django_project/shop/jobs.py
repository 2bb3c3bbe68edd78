"""`django.tasks` tasks of the test project, run through wakaq's backend."""

from __future__ import annotations

import asyncio
from typing import Any

from django.tasks import TaskContext, task

from tests.contrib.django_project.shop.models import Order


class OutOfStock(Exception):
    pass


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def count_orders(name: str) -> dict[str, Any]:
    return {"name": name, "orders": Order.objects.filter(name=name).count()}


@task(takes_context=True)
def whoami(context: TaskContext, tag: str) -> dict[str, Any]:
    return {"id": context.task_result.id, "attempt": context.attempt, "tag": tag}


@task
async def async_double(x: float) -> float:
    await asyncio.sleep(0.01)
    return x * 2


@task
def refuse(item: str) -> None:
    raise OutOfStock(f"no {item} left")


@task(queue_name="high")
def urgent() -> str:
    return "high"
