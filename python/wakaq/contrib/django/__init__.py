"""Django: the WakaQ app configured from settings, `delay_on_commit`, and a `django.tasks` backend.

settings.py:

    WAKAQ = {"url": "redis://localhost:6379/0", "queues": ["high", "default"], "concurrency": 4}  # WakaQ(**WAKAQ)
    WAKAQ_TASK_MODULES = ["shop.jobs"]  # optional; default: the `tasks` module of every installed app that has one

myapp/tasks.py:

    from wakaq.contrib.django import wakaq

    @wakaq.task
    def send_welcome(user_id: int) -> None: ...

    with transaction.atomic():
        user = User.objects.create(...)
        send_welcome.delay_on_commit(user.id)  # sent when the transaction commits; never if it rolls back

The worker (and `wakaq-scheduler`, `wakaq-info`, ...) loads the app through `wakaq.contrib.django.worker`, which
sets Django up and imports the task modules first:

    DJANGO_SETTINGS_MODULE=mysite.settings wakaq-worker --app wakaq.contrib.django.worker.wakaq

`django.tasks` (Django 6): `wakaq.contrib.django.backend.WakaQBackend`, see that module.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast, overload

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from wakaq.app import WakaQ
from wakaq.task import EtaValue, QueueArg, Task

if TYPE_CHECKING:
    from wakaq.durable import DurableArg

__all__ = [
    "DjangoTask",
    "DjangoWakaQ",
    "autodiscover",
    "delay_on_commit",
    "delay_on_commit_with_options",
    "get_wakaq",
]

P = ParamSpec("P")
R = TypeVar("R")

#: the setting that holds `WakaQ(...)`'s keyword arguments
SETTING = "WAKAQ"
#: the setting that lists the modules defining tasks (default: each installed app's `tasks` module, if it has one)
TASK_MODULES_SETTING = "WAKAQ_TASK_MODULES"
#: the module, inside each installed app, that autodiscovery imports
TASKS_MODULE = "tasks"


# ---- delay_on_commit ----------------------------------------------------------------------------------------------


def delay_on_commit(task: Task[P, Any], *args: Any, **kwargs: Any) -> None:
    """`task.delay(*args, **kwargs)` when the current transaction of the default database commits (at once outside
    a transaction); never when it rolls back. Any WakaQ task; `queue=` and `eta=` as in `.delay()`. Returns None: the
    task is not sent yet (a results handle does not exist until then).

    NOTE: the arguments are encoded at commit, not now: an argument changed in between is sent changed."""
    transaction.on_commit(functools.partial(task.delay, *args, **kwargs))


def delay_on_commit_with_options(
    task: Task[P, Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    using: str | None = None,
    robust: bool = False,
    queue: QueueArg | None = None,
    eta: EtaValue | None = None,
    durable: DurableArg = None,
    unique_key: str | None = None,
) -> None:
    """`task.delay_with_options(...)` when the transaction of database `using` commits (Django's `on_commit`
    arguments: `robust=True` logs an enqueue that fails at commit instead of raising it from the commit)."""
    send = functools.partial(
        task.delay_with_options, tuple(args), dict(kwargs or {}), queue=queue, eta=eta, durable=durable,
        unique_key=unique_key,
    )  # fmt: skip
    transaction.on_commit(send, using=using, robust=robust)


class DjangoTask(Task[P, R]):
    """A task of the app built from settings (`DjangoWakaQ`): a `Task` with `delay_on_commit`."""

    @overload
    def delay_on_commit(self, *args: P.args, **kwargs: P.kwargs) -> None: ...
    @overload
    def delay_on_commit(
        self, *args: Any, queue: QueueArg | None, eta: EtaValue | None = None, **kwargs: Any
    ) -> None: ...
    @overload
    def delay_on_commit(self, *args: Any, eta: EtaValue | None, **kwargs: Any) -> None: ...
    def delay_on_commit(self, *args: Any, **kwargs: Any) -> None:
        """`.delay(...)` when the current transaction commits; never if it rolls back (Celery 5.4's name)."""
        delay_on_commit(self, *args, **kwargs)

    def delay_on_commit_with_options(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        using: str | None = None,
        robust: bool = False,
        queue: QueueArg | None = None,
        eta: EtaValue | None = None,
        durable: DurableArg = None,
        unique_key: str | None = None,
    ) -> None:
        """`.delay_with_options(...)` when the transaction of database `using` commits."""
        delay_on_commit_with_options(
            self, args, kwargs, using=using, robust=robust, queue=queue, eta=eta, durable=durable,
            unique_key=unique_key,
        )  # fmt: skip


class DjangoWakaQ(WakaQ):
    """The WakaQ app of a Django project: its tasks are `DjangoTask`s (they have `delay_on_commit`)."""

    @overload  # type: ignore[override]
    def task(self, fn: Callable[P, R]) -> DjangoTask[P, R]: ...
    @overload
    def task(self, fn: None = None, **options: Any) -> Callable[[Callable[P, R]], DjangoTask[P, R]]: ...
    def task(
        self, fn: Callable[P, R] | None = None, **options: Any
    ) -> DjangoTask[P, R] | Callable[[Callable[P, R]], DjangoTask[P, R]]:
        """`WakaQ.task` (same options), the registered task made a `DjangoTask`."""
        register = cast(Callable[[Callable[P, R]], Task[P, R]], super().task(**options))
        if fn is not None:
            return _as_django_task(register(fn))
        return lambda f: _as_django_task(register(f))


def _as_django_task(task: Task[P, R]) -> DjangoTask[P, R]:
    # NOTE: the registered object itself becomes a DjangoTask (WakaQ.task builds a plain Task, and the registry holds
    # that object): DjangoTask adds methods only, no state, so the object is whole either way
    task.__class__ = DjangoTask
    return cast(DjangoTask[P, R], task)


# ---- the app from settings ----------------------------------------------------------------------------------------

_lock = threading.Lock()
_app: DjangoWakaQ | None = None


def get_wakaq() -> DjangoWakaQ:
    """The WakaQ app of this project: `DjangoWakaQ(**settings.WAKAQ)`, built once per process."""
    global _app
    with _lock:
        if _app is None:
            _app = _build()
        return _app


def _build() -> DjangoWakaQ:
    options = getattr(settings, SETTING, None)
    if not isinstance(options, Mapping):
        raise ImproperlyConfigured(
            f"settings.{SETTING} must be a dict of WakaQ() keyword arguments, e.g. "
            f'{{"url": "redis://localhost:6379/0", "queues": ["default"]}}; got {options!r}'
        )
    return DjangoWakaQ(**options)


def uses_backend() -> bool:
    """settings.TASKS names our `django.tasks` backend (then the worker registers the tasks that run Django's tasks;
    the backend registers them on the producer's side)."""
    backends = getattr(settings, "TASKS", None) or {}
    return any(str(b.get("BACKEND", "")).startswith(__name__ + ".") for b in backends.values())


def task_modules() -> list[str]:
    """The modules that define tasks: settings.WAKAQ_TASK_MODULES, else each installed app's `tasks` module."""
    listed = getattr(settings, TASK_MODULES_SETTING, None)
    if listed is not None:
        if isinstance(listed, str) or not all(isinstance(m, str) for m in listed):
            what = f"settings.{TASK_MODULES_SETTING}"
            raise ImproperlyConfigured(f"{what} must be a list of module names, got {listed!r}")
        return list(listed)
    from django.apps import apps

    found = []
    for config in apps.get_app_configs():
        name = f"{config.name}.{TASKS_MODULE}"
        # NOTE: only a missing module is skipped; an error inside an existing one is raised (find_spec does not run it)
        if importlib.util.find_spec(name) is not None:
            found.append(name)
    return found


def autodiscover() -> list[str]:
    """Import every task module (Django must be set up); returns their names."""
    names = task_modules()
    for name in names:
        importlib.import_module(name)
    return names


def __getattr__(name: str) -> Any:
    """`from wakaq.contrib.django import wakaq`: the app from settings, built on first use."""
    if name == "wakaq":
        return get_wakaq()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# NOTE: for type checkers: the module attribute `wakaq` (built lazily by __getattr__ above)
if TYPE_CHECKING:
    wakaq: DjangoWakaQ
