"""The WakaQ app of a Django project (wakaq.contrib.django): built from settings.WAKAQ, task modules discovered."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("django", minversion="6.0", reason="Django 6 needs Python >= 3.12: `make test-django` runs these")

from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from wakaq import WakaQ


def test_the_app_comes_from_settings_and_its_tasks_have_delay_on_commit(django_project: Path, redis_url: str) -> None:
    import wakaq.contrib.django as contrib
    from tests.contrib.django_project.shop import tasks
    from wakaq.contrib.django import DjangoTask, get_wakaq

    app = get_wakaq()
    assert contrib.wakaq is app and isinstance(app, WakaQ)
    assert [q.name for q in app.queues] == ["high", "default"]
    assert app.url == redis_url
    assert isinstance(tasks.ship, DjangoTask) and app.tasks["ship"] is tasks.ship
    from django.tasks import default_task_backend

    assert default_task_backend.app is app
    assert {"django_task", "django_async_task"} <= set(app.tasks), "the backend registers its runners"


def test_task_modules_are_each_installed_apps_tasks_module_unless_listed(django_project: Path) -> None:
    from wakaq.contrib.django import autodiscover, task_modules

    assert task_modules() == ["tests.contrib.django_project.shop.tasks"]
    assert autodiscover() == ["tests.contrib.django_project.shop.tasks"]
    with override_settings(WAKAQ_TASK_MODULES=["tests.contrib.django_project.shop.jobs"]):
        assert task_modules() == ["tests.contrib.django_project.shop.jobs"]
    with override_settings(WAKAQ_TASK_MODULES="tests.contrib.django_project.shop.jobs"):
        with pytest.raises(ImproperlyConfigured, match="list of module names"):
            task_modules()


def test_a_missing_wakaq_setting_is_improperly_configured(django_project: Path) -> None:
    from wakaq.contrib.django import _build

    with override_settings(WAKAQ=None):
        with pytest.raises(ImproperlyConfigured, match=r"settings\.WAKAQ must be a dict"):
            _build()
