"""The Django project of these tests (tests/contrib/django_project) on a real SQLite file, set up once per session.

Django 6 needs Python >= 3.12; `make test-django` runs these tests in a venv of its own (.tmp/django-venv). Each test
module skips itself where Django 6 is not installed (`pytest.importorskip` at its top).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

SETTINGS = "tests.contrib.django_project.settings"
#: the module the worker runs: Django set up, task modules imported (wakaq.contrib.django.worker)
WORKER_APP = "wakaq.contrib.django.worker.wakaq"


@pytest.fixture(scope="session")
def django_db_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The SQLite file, and the environment every worker inherits to find the project and that file."""
    path = tmp_path_factory.mktemp("django") / "db.sqlite3"
    saved = {k: os.environ.get(k) for k in ("DJANGO_SETTINGS_MODULE", "WAKAQ_TEST_DJANGO_DB")}
    os.environ.update(DJANGO_SETTINGS_MODULE=SETTINGS, WAKAQ_TEST_DJANGO_DB=str(path))
    try:
        yield path
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def django_project(django_db_file: Path, redis_url: str) -> Path:
    """Django set up on the session's Redis (first use: setup and tables), with no orders left by a test before."""
    import django
    from django.apps import apps
    from django.core.management import call_command

    if not apps.ready:
        django.setup()
        call_command("migrate", run_syncdb=True, verbosity=0)
    from tests.contrib.django_project.shop.models import Order

    Order.objects.all().delete()
    return django_db_file
