"""The Flask integration (wakaq.contrib.flask): tasks run inside the Flask app's context on a real `wakaq-worker`,
one context per task; tests/apps/flask_app.py is the app."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("flask")

from flask import Flask, g

from tests.workers import StartWorker, events, wait_until
from wakaq import TaskFailed, WakaQ, WakaQError
from wakaq.contrib.flask import WakaQFlask, init_app

pytestmark = [pytest.mark.timeout(90), pytest.mark.app("tests.apps.flask_app")]


def test_a_sync_task_reads_current_app_on_the_worker(app: ModuleType, start_worker: StartWorker) -> None:
    start_worker()
    assert app.greeting.delay().result(timeout=15) == "hello from the Flask config"


def test_an_async_task_reads_current_app_on_the_worker(app: ModuleType, start_worker: StartWorker) -> None:
    start_worker()
    assert app.async_greeting.delay().result(timeout=15) == "hello from the Flask config (async)"


def test_each_task_gets_its_own_app_context_torn_down_after_it(
    app: ModuleType, rclient: Any, start_worker: StartWorker
) -> None:
    start_worker()
    first, second = app.mark_g.delay("first"), app.mark_g.delay("second")
    assert first.result(timeout=15) is None
    assert second.result(timeout=15) is None, "g kept what the task before left: one context for two tasks"
    teardowns = wait_until(lambda: len(events(rclient, "teardown")) >= 2 and events(rclient, "teardown"), 10)
    assert sorted(e["seen"] for e in teardowns) == ["first", "second"]


def test_without_init_app_the_same_task_fails_outside_a_context(app: ModuleType, start_worker: StartWorker) -> None:
    """The control: the tests above pass because of init_app, not because the worker has a context anyway."""
    start_worker(flask=0)
    with pytest.raises(TaskFailed) as failed:
        app.greeting.delay().result(timeout=15)
    assert failed.value.error_type == "RuntimeError"
    assert "application context" in str(failed.value)


def test_init_app_registers_one_wrapper_and_refuses_a_second_flask_app() -> None:
    wakaq = WakaQ(queues=["default"], eager=True)
    first = Flask("first")
    ext = WakaQFlask(wakaq=wakaq)
    ext.init_app(first)
    init_app(first, wakaq)
    assert len(wakaq.task_wrappers) == 1
    assert first.extensions["wakaq"] is wakaq
    with pytest.raises(WakaQError, match="already runs its tasks in Flask app 'first'"):
        init_app(Flask("second"), wakaq)
    with pytest.raises(WakaQError, match="needs a WakaQ app"):
        WakaQFlask().init_app(first)


def test_eager_task_inside_the_apps_context_runs_in_that_context() -> None:
    flask_app = Flask("eager")
    wakaq = WakaQ(queues=["default"], eager=True)
    init_app(flask_app, wakaq)

    @wakaq.task
    def read_g() -> str:
        return str(g.request_value)

    @wakaq.task
    def fresh_g() -> bool:
        return hasattr(g, "request_value")

    with flask_app.app_context():
        g.request_value = "set by the caller"
        assert read_g.delay() == "set by the caller"
    assert fresh_g.delay() is False, "outside any context the task gets a new one"
