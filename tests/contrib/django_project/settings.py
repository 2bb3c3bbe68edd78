"""A minimal Django project for the Django integration tests (tests/contrib/django): one app (`shop`) on a real
SQLite file (WAKAQ_TEST_DJANGO_DB), wakaq from `WAKAQ`, `django.tasks` on wakaq's backend."""

from __future__ import annotations

import os

from tests.apps.common import worker_options

SECRET_KEY = "wakaq-tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["tests.contrib.django_project.shop"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["WAKAQ_TEST_DJANGO_DB"]}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

WAKAQ = {"queues": ["high", "default"], "wait_timeout": 0.5, **worker_options()}
TASKS = {"default": {"BACKEND": "wakaq.contrib.django.backend.WakaQBackend"}}
