"""wakaq tasks of the test project (found by autodiscovery: the `tasks` module of an installed app)."""

from __future__ import annotations

from tests.apps.common import Events
from tests.contrib.django_project.shop.models import Order
from wakaq.contrib.django import wakaq

record = Events(wakaq).record


@wakaq.task
def ship(order_id: int) -> None:
    """Records the order as the worker reads it from the database (None: the row is not there)."""
    order = Order.objects.filter(id=order_id).first()
    record("ship", order_id=order_id, name=None if order is None else order.name)
