"""A backend for Django 6's `django.tasks`: Django tasks are sent on wakaq, run by wakaq workers, and their results
are read back from wakaq's result records.

settings.py:

    WAKAQ = {"url": "redis://localhost:6379/0", "queues": ["high", "default"]}
    TASKS = {"default": {"BACKEND": "wakaq.contrib.django.backend.WakaQBackend"}}

A Django task's `queue_name` is the wakaq queue it goes to; Django's default queue name ("default") is the app's
default queue when no wakaq queue has that name. `QUEUES` (Django's option) narrows the names allowed; without it,
every wakaq queue is. `run_after` is the wakaq `eta`; `priority` is not supported (a wakaq queue has a priority, a
task has none: use a queue). Async task functions run on the worker's event loop.

How: the app built from settings (`wakaq.contrib.django.get_wakaq`) gets two tasks that run Django tasks,
`django_task` and `django_async_task` (registered by this backend, and by the worker module when settings.TASKS names
this backend), sent with results on.
Their arguments are the Django task's module path, its (JSON-normalised) arguments and when it was enqueued; on
success they return an envelope (`Envelope`) that holds the return value, so a finished task's result is one read.
The TaskResult id is the wakaq task id (so `wakaq-cancel`, the dashboard and `app.result_handle(id)` take it too).

NOTE: a task that has not succeeded yet (pending, running, retrying, failed) is found by its id in wakaq's lists
(in-flight hashes, queues, eta sets, parked lists, failed lists), read in windows: `get_result` of such a task
costs reads proportional to those lists' lengths; of a succeeded one, one read. A failed task's error comes from its
wakaq failure record (class path, traceback); once that record is trimmed from its bounded failed list (or its
result record expired, `result_ttl`), `get_result` raises TaskResultDoesNotExist.
"""

from __future__ import annotations

import builtins
import os
import socket
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from inspect import iscoroutinefunction
from typing import TYPE_CHECKING, Any, TypedDict

from django.conf import settings
from django.tasks import DEFAULT_TASK_QUEUE_NAME, Task, TaskContext, TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import TaskError
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.utils import timezone as dj_timezone
from django.utils.json import normalize_json
from django.utils.module_loading import import_string

from wakaq import _wakaq
from wakaq import exceptions as wakaq_exceptions
from wakaq.current import current_task
from wakaq.exceptions import PayloadError
from wakaq.results import CANCELLED, DONE, FAILED, RETRYING, RUNNING, client, redis_errors

if TYPE_CHECKING:
    from wakaq.app import WakaQ

__all__ = ["ASYNC_RUNNER", "RUNNER", "WakaQBackend", "register_runners"]

#: the wakaq task that runs a sync Django task, and the one that runs an async one
RUNNER = "django_task"
ASYNC_RUNNER = "django_async_task"
RUNNERS = (RUNNER, ASYNC_RUNNER)
#: elements read per LRANGE/ZRANGE/HSCAN while looking for a task by id
WINDOW = 500
#: looks for a task before it is declared missing (it may move between two lists while they are read)
LOOKS = 3
#: this process, as Django's `worker_ids` name it
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


class Envelope(TypedDict):
    """What a runner returns (and wakaq stores as the result): the Django task's call and its return value."""

    path: str
    args: list[Any]
    kwargs: dict[str, Any]
    enqueued: float
    started: float
    attempt: int
    worker: str
    value: Any


# ---- the worker side ----------------------------------------------------------------------------------------------


def django_task(path: str, args: list[Any], kwargs: dict[str, Any], enqueued: float) -> Envelope:
    """Run the sync Django task at `path` (a wakaq task: `RUNNER`)."""
    task, result = _starting(path, args, kwargs, enqueued)
    if iscoroutinefunction(task.func):
        raise InvalidTask(f"{path} is an async function now; it was sent as a sync one")
    try:
        value = task.func(*_call_args(task, result), **result.kwargs)
        return _succeeded(result, value)
    except BaseException as e:
        _failed(result, e)
        raise


async def django_async_task(path: str, args: list[Any], kwargs: dict[str, Any], enqueued: float) -> Envelope:
    """Run the Django task at `path` on the worker's event loop (a wakaq task: `ASYNC_RUNNER`)."""
    task, result = _starting(path, args, kwargs, enqueued)
    try:
        value = task.func(*_call_args(task, result), **result.kwargs)
        if iscoroutinefunction(task.func):
            value = await value
        return _succeeded(result, value)
    except BaseException as e:
        _failed(result, e)
        raise


def register_runners(app: WakaQ) -> None:
    """Register the runner tasks on `app` (results on, the app's `result_ttl`); once."""
    for fn in (django_task, django_async_task):
        if fn.__name__ not in app.tasks:
            app.task(store_results=True)(fn)


def _starting(path: str, args: list[Any], kwargs: dict[str, Any], enqueued: float) -> tuple[Task, TaskResult]:
    task = import_string(path)
    if not isinstance(task, Task):
        raise InvalidTask(f"{path} is {type(task).__name__}, not a Django task (@django.tasks.task)")
    started = _now()
    result = TaskResult(
        task=task,
        id=current_task.id or "",
        status=TaskResultStatus.RUNNING,
        enqueued_at=_time(enqueued),
        started_at=started,
        finished_at=None,
        last_attempted_at=started,
        args=args,
        kwargs=kwargs,
        backend=task.backend,
        errors=[],
        worker_ids=[WORKER_ID] * max(1, current_task.attempt),
    )
    task_started.send(WakaQBackend, task_result=result)
    return task, result


def _call_args(task: Task, result: TaskResult) -> list[Any]:
    return [TaskContext(task_result=result), *result.args] if task.takes_context else list(result.args)


def _succeeded(result: TaskResult, value: Any) -> Envelope:
    value = normalize_json(value)  # NOTE: as Django's own backends: a value JSON cannot hold fails the task
    object.__setattr__(result, "_return_value", value)
    _finish(result, TaskResultStatus.SUCCESSFUL)
    started = result.started_at.timestamp() if result.started_at is not None else 0.0
    enqueued = result.enqueued_at.timestamp() if result.enqueued_at is not None else 0.0
    path, attempt = result.task.module_path, len(result.worker_ids)
    return Envelope(
        path=path, args=result.args, kwargs=result.kwargs, enqueued=enqueued, started=started, attempt=attempt,
        worker=WORKER_ID, value=value,
    )  # fmt: skip


def _failed(result: TaskResult, error: BaseException) -> None:
    kind = type(error)
    path = f"{kind.__module__}.{kind.__qualname__}"
    result.errors.append(TaskError(exception_class_path=path, traceback="".join(traceback.format_exception(error))))
    _finish(result, TaskResultStatus.FAILED)


def _finish(result: TaskResult, status: TaskResultStatus) -> None:
    object.__setattr__(result, "finished_at", _now())
    object.__setattr__(result, "status", status)
    task_finished.send(WakaQBackend, task_result=result)


# ---- the backend --------------------------------------------------------------------------------------------------


class WakaQBackend(BaseTaskBackend):
    """`django.tasks` on wakaq: `TASKS = {"default": {"BACKEND": "wakaq.contrib.django.backend.WakaQBackend"}}`."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = False

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        if "QUEUES" not in params:
            self.queues: set[str] = set()  # NOTE: every queue of the wakaq app (validate_task checks)

    @property
    def app(self) -> WakaQ:
        from wakaq.contrib.django import get_wakaq

        app = get_wakaq()
        register_runners(app)  # NOTE: once per process (the worker module registers them on the worker's side)
        return app

    def validate_task(self, task: Task) -> None:
        super().validate_task(task)
        self.queue_of(task)

    def queue_of(self, task: Task) -> str:
        """The wakaq queue of a Django task's `queue_name`."""
        app = self.app
        if task.queue_name in app.queues_by_name:
            return task.queue_name
        if task.queue_name == DEFAULT_TASK_QUEUE_NAME:
            return app.default_queue.name
        known = ", ".join(app.queues_by_name)
        raise InvalidTask(f"Queue {task.queue_name!r} is not a queue of the WakaQ app (queues: {known})")

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        args, kwargs = normalize_json(args), normalize_json(kwargs)
        enqueued = _now()
        runner = self.app.tasks[ASYNC_RUNNER if iscoroutinefunction(task.func) else RUNNER]
        call = (task.module_path, args, kwargs, enqueued.timestamp())
        handle = runner.delay_with_options(call, queue=self.queue_of(task), eta=_eta(task.run_after))
        result = TaskResult(
            task=task,
            id=handle.id,
            status=TaskResultStatus.READY,
            enqueued_at=enqueued,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        app = self.app
        for _ in range(LOOKS):
            record = app.result_handle(result_id).record()
            status = record.get("status", b"").decode()
            at = float(record["at"]) if "at" in record else None
            if status == DONE:
                return self._from_envelope(result_id, _wakaq.unpackb(record["value"]), at)
            found = locate(app, result_id)
            if found is not None:
                return self._from_found(result_id, found, record, status, at)
        raise TaskResultDoesNotExist(result_id)

    def _from_envelope(self, result_id: str, env: Envelope, finished: float | None) -> TaskResult:
        result = self._result(
            result_id, env["path"], env["args"], env["kwargs"], TaskResultStatus.SUCCESSFUL, env["enqueued"]
        )
        started = _time(env["started"])
        object.__setattr__(result, "started_at", started)
        object.__setattr__(result, "last_attempted_at", started)
        object.__setattr__(result, "finished_at", _time(finished))
        object.__setattr__(result, "_return_value", env["value"])
        result.worker_ids.extend([env["worker"]] * env["attempt"])
        return result

    def _from_found(
        self, result_id: str, found: Found, record: dict[str, bytes], status: str, at: float | None
    ) -> TaskResult:
        path, args, kwargs, enqueued = found.args
        state = _STATUSES.get(status, TaskResultStatus.READY)
        if found.failure is not None:
            state = TaskResultStatus.FAILED
        result = self._result(result_id, path, args, kwargs, state, enqueued)
        if state == TaskResultStatus.RUNNING:
            object.__setattr__(result, "started_at", _time(at))
            object.__setattr__(result, "last_attempted_at", _time(at))
        if state == TaskResultStatus.FAILED:
            object.__setattr__(result, "finished_at", _time(at))
            result.errors.append(_task_error(record, found.failure or {}))
        if found.worker:
            result.worker_ids.extend([found.worker] * (found.retry + 1))
        return result

    def _result(
        self, result_id: str, path: str, args: list[Any], kwargs: dict[str, Any], status: str, enqueued: float | None
    ) -> TaskResult:
        task = import_string(path)
        if not isinstance(task, Task):
            raise TaskResultDoesNotExist(f"{result_id}: {path} is no Django task any more")
        return TaskResult(
            task=task,
            id=result_id,
            status=TaskResultStatus(status),
            enqueued_at=_time(enqueued),
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )


_STATUSES = {
    RUNNING: TaskResultStatus.RUNNING,
    RETRYING: TaskResultStatus.READY,
    FAILED: TaskResultStatus.FAILED,
    CANCELLED: TaskResultStatus.FAILED,
}


def _task_error(record: dict[str, bytes], failure: dict[str, Any]) -> TaskError:
    """Django's error of a failed task: the class from the result record's type name (its module from the failure
    record's traceback, whose last line names it), the traceback from the failure record."""
    name = record.get("error_type", b"").decode() or "Exception"
    message = record.get("error", b"").decode()
    text = str(failure.get("traceback") or "") or f"{name}: {message}"
    return TaskError(exception_class_path=_class_path(name, text), traceback=text)


def _class_path(name: str, text: str) -> str:
    """The dotted path of exception class `name`: as a traceback's exception line spells it (`pkg.mod.Name: ...`;
    builtins have no module there), else wakaq's own exceptions (SoftTimeout, ...), else `builtins.<name>`."""
    for line in reversed(text.splitlines()):
        head = line.split(":", 1)[0].strip()
        if not line.startswith(" ") and head.endswith("." + name):
            return head
    if hasattr(wakaq_exceptions, name):
        return f"{wakaq_exceptions.__name__}.{name}"
    return f"builtins.{name}" if hasattr(builtins, name) else name


# ---- finding a task by id -----------------------------------------------------------------------------------------


@dataclass
class Found:
    """A runner's payload found by its id: the runner's arguments, its retry count, and where it was."""

    args: tuple[str, list[Any], dict[str, Any], float]
    retry: int
    worker: str | None = None  # the daemon running it, or the worker its failure record names
    failure: dict[str, Any] | None = None  # its failure record, when it was found in a failed list


def locate(app: WakaQ, task_id: str) -> Found | None:
    """The runner task with this id, wherever it is now (read-only); None when it is in none of wakaq's lists."""
    r = client(app).redis
    needle = task_id.encode()
    with redis_errors(app):
        for worker, element in _candidates(app, r, needle):
            found = _decode(_payload_of(element), task_id)
            if found is not None:
                found.worker = worker
                return found
        for queue in app.queues:
            for raw in _list(r, app.keys.failed(queue.name), needle):
                failure = _wakaq.unpackb(raw)
                found = _decode(failure.get("payload", b""), task_id) if isinstance(failure, dict) else None
                if found is not None:
                    found.worker, found.failure = failure.get("worker"), failure
                    return found
    return None


def _candidates(app: WakaQ, r: Any, needle: bytes) -> Iterator[tuple[str | None, bytes]]:
    """(daemon or None, element) of in-flight, pending, parked and eta entries whose bytes contain `needle`."""
    for daemon in sorted(d.decode() for d in r.smembers(app.keys.daemons)):
        for _, entry in r.hscan_iter(app.keys.inflight(daemon), count=WINDOW):
            _queue, sep, element = bytes(entry).partition(b"\n")
            if sep and needle in element:
                yield daemon, element
    for queue in app.queues:
        lists = [app.keys.queue(queue.name), *(app.keys.parked(queue.name, name) for name in RUNNERS)]
        for key in lists:
            for element in _list(r, key, needle):
                yield None, element
        start = 0
        while chunk := r.zrange(app.keys.eta(queue.name), start, start + WINDOW - 1):
            yield from ((None, m) for m in chunk if needle in m)
            start += WINDOW


def _list(r: Any, key: str, needle: bytes) -> Iterator[bytes]:
    start = 0
    while chunk := r.lrange(key, start, start + WINDOW - 1):
        yield from (e for e in chunk if needle in e)
        start += WINDOW


def _payload_of(element: bytes) -> bytes:
    """The payload of a queue element (its deliveries prefix dropped); b"" for garbage."""
    try:
        return _wakaq.split_element(element)[1]
    except (PayloadError, ValueError):
        return b""


def _decode(payload: bytes, task_id: str) -> Found | None:
    """A runner's payload with meta id `task_id`, else None."""
    try:
        name, args, _kwargs, retry, meta = _wakaq.decode_task_meta(payload)
    except (PayloadError, ValueError, TypeError):
        return None
    if name not in RUNNERS or meta is None or meta.get("id") != task_id or len(args) != 4:
        return None
    path, call_args, call_kwargs, enqueued = args
    return Found((str(path), list(call_args), dict(call_kwargs), float(enqueued)), int(retry))


# ---- time ---------------------------------------------------------------------------------------------------------


def _now() -> datetime:
    return dj_timezone.now()


def _time(seconds: float | None) -> datetime | None:
    """A unix time as Django keeps times: aware UTC with USE_TZ, else naive local time."""
    if seconds is None:
        return None
    if settings.USE_TZ:
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    return datetime.fromtimestamp(seconds)


def _eta(run_after: datetime | None) -> datetime | None:
    """`run_after` as wakaq's eta (a naive one is in Django's current time zone; wakaq takes naive as UTC)."""
    if run_after is None or dj_timezone.is_aware(run_after):
        return run_after
    return dj_timezone.make_aware(run_after)
