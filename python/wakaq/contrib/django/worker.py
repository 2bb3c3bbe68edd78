"""The app a Django project's worker runs: `wakaq-worker --app wakaq.contrib.django.worker.wakaq` (also for
`wakaq-scheduler`, `wakaq-info` and the other commands). DJANGO_SETTINGS_MODULE must name the settings.

Importing this module sets Django up, builds the app from settings.WAKAQ, registers the tasks that run Django's
tasks (when settings.TASKS names wakaq.contrib.django.backend) and imports every task module, so the worker knows
every task. Only processes that run tasks import it: producers use `wakaq.contrib.django.wakaq`.

Database connections, as Django's request cycle handles them: closed in the parent before it forks (a connection
shared by forked children would be corrupted by them), and each sync task starts and ends with
`close_old_connections()` (connections past CONN_MAX_AGE or broken are dropped, as around a request).

WARN: a worker child runs a sync task from inside its asyncio event loop (the loop waits while the task runs, in the
same thread), and Django refuses the ORM wherever a loop is running ("SynchronousOnlyOperation: You cannot call this
from an async context"). While a sync task runs nothing else runs in that thread, so the ORM is safe there: its
start and end set and restore DJANGO_ALLOW_ASYNC_UNSAFE (Django's own switch for this), for sync tasks only. Async
tasks keep Django's check: they reach the ORM through its async API or `sync_to_async`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

import django
from django.db import close_old_connections, connections

from wakaq.context import running_task
from wakaq.contrib.django import DjangoWakaQ, autodiscover, get_wakaq, uses_backend

__all__ = ["wakaq"]

#: Django's switch that lets the ORM run where an event loop is running
ALLOW_ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"
#: what DJANGO_ALLOW_ASYNC_UNSAFE was before a sync task started, restored when it ends
_saved: list[str | None] = []


def _sync_task_running() -> bool:
    task = running_task.get()
    return task is not None and not task.is_async


def task_starts() -> None:
    """Before each task: a sync one may use the ORM (see the module's WARN), on fresh connections."""
    if _sync_task_running():
        _saved.append(os.environ.get(ALLOW_ASYNC_UNSAFE))
        os.environ[ALLOW_ASYNC_UNSAFE] = "true"
        close_old_connections()


def task_ends() -> None:
    """After each task, also one that raised: connections past their age dropped, Django's check back on."""
    if _sync_task_running() and _saved:
        try:
            close_old_connections()
        finally:
            before = _saved.pop()
            if before is None:
                os.environ.pop(ALLOW_ASYNC_UNSAFE, None)
            else:
                os.environ[ALLOW_ASYNC_UNSAFE] = before


def _chain(first: Callable[[], Any], then: Callable[[], Any] | None) -> Callable[[], Any]:
    """A task callback calling `first`, then `then` (the app's own, sync or async) when there is one."""
    if then is None:
        return first
    if inspect.iscoroutinefunction(then):

        async def both_async() -> None:
            first()
            await then()

        return both_async

    def both() -> None:
        first()
        then()

    return both


def _before(app: DjangoWakaQ, callback: Callable[[], Any]) -> None:
    """`callback` before each task, ahead of the app's own `before_task_started` (if any)."""
    app.before_task_started_callback = _chain(callback, app.before_task_started_callback)


def _after(app: DjangoWakaQ, callback: Callable[[], Any]) -> None:
    """`callback` after each task, after the app's own `after_task_finished` (if any)."""
    own = app.after_task_finished_callback
    if own is None:
        app.after_task_finished_callback = callback
    elif inspect.iscoroutinefunction(own):

        async def both_async() -> None:
            try:
                await own()
            finally:
                callback()

        app.after_task_finished_callback = both_async
    else:

        def both() -> None:
            try:
                own()
            finally:
                callback()

        app.after_task_finished_callback = both


def load() -> DjangoWakaQ:
    """Set Django up, build the app, import the task modules, hook the connection cleanup; returns the app."""
    django.setup()
    app = get_wakaq()
    if uses_backend():
        from wakaq.contrib.django.backend import register_runners

        register_runners(app)
    autodiscover()
    # NOTE: sync callbacks: they keep sync tasks off the event loop path (wakaq.invoke.needs_event_loop)
    _before(app, task_starts)
    _after(app, task_ends)
    connections.close_all()
    return app


wakaq = load()
