"""Workflows: signatures (`add.s(1, 2)`, `.si()`), chains (`chain(a, b)` or `a | b`), groups (`group([...])`) and
callbacks (`group([...]).then(cb.s())`), and the handle `.delay()` returns.

A workflow is a tree: a chain runs its steps one after the other (each step's result becomes the next one's first
argument, unless it was made with `.si()`), a group runs its members at once and its result is the list of theirs in
member order, so `group(...).then(cb)` is the chain (group, cb). The producer sends the whole tree in one script
(`Broker.start_workflow`, rust/src/broker/workflow.rs); from then on Redis moves it on: the script that settles a step
(its ack, its failure record, its dead-listing, a cancel) also records its result in the workflow and enqueues what
comes next (rust/src/broker/lua/workflow.lua), so a step counts once and a crash between a step and its ack neither
loses nor doubles what follows. Steps are tasks with results: their payloads carry meta `id`, `results` and `wf`.

Keys (`wakaq.keys.Keys`): `<ns>:wf:<id>` (hash: status, result or error, the tree), `<ns>:wf:<id>:results` (node ->
packed result of finished group members), `<ns>:wf:<id>:ready` (one token when it ends); each step's result record
`<ns>:result:<id>-<node>`. All expire `ttl` seconds after the last write (default: the app's `result_ttl`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from wakaq.exceptions import TaskFailed, WakaQError
from wakaq.ids import new_workflow_id
from wakaq.results import FINAL, PENDING, WAIT_SLICE, ResultsHost, client, redis_errors

if TYPE_CHECKING:
    from wakaq._wakaq import Broker
    from wakaq.queue import Queue

#: a step not started yet (the steps before it have not finished)
WAITING = "waiting"


class WorkflowApp(ResultsHost, Protocol):
    """The app as workflows need it (`WakaQ` satisfies it)."""

    eager: bool
    result_ttl: float
    default_queue: Queue

    @property
    def broker(self) -> Broker: ...

    def get_queue(self, queue: Any, context: str) -> Queue: ...


class StepTask(Protocol):
    """A registered task as a step needs it."""

    name: str
    queue: Queue | None

    @property
    def app(self) -> Any: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


class Canvas:
    """What chains, groups and signatures share: `|` chains them, `.delay()` starts them."""

    def __or__(self, other: Canvas) -> Chain:
        return chain(self, other)

    def signatures(self) -> Iterable[Signature]:
        raise NotImplementedError

    @property
    def app(self) -> WorkflowApp:
        first = next(iter(self.signatures()), None)
        if first is None:
            raise WakaQError("an empty chain or group has nothing to run")
        app: WorkflowApp = first.task.app
        return app

    def delay(self, ttl: float | None = None) -> WorkflowHandle | EagerWorkflowHandle:
        """Start the workflow; returns its handle. `ttl`: how long (seconds) its state and its steps' results are
        kept after their last write (default: the app's `result_ttl`). Eager mode runs it inline."""
        app = self.app
        if app.eager:
            return EagerWorkflowHandle(new_workflow_id(), self._run_eager(None, False))
        nodes: list[tuple[str, int, bool, str, str, Any, Any]] = []
        self._flatten(-1, nodes)
        workflow_id = new_workflow_id()
        keep = int(max(1.0, ttl if ttl is not None else app.result_ttl))
        app.broker.start_workflow(workflow_id, keep, nodes)
        return WorkflowHandle(app, workflow_id)

    async def adelay(self, ttl: float | None = None) -> WorkflowHandle | EagerWorkflowHandle:
        """`delay` for async code (the round trip runs in a thread)."""
        import asyncio

        return await asyncio.to_thread(self.delay, ttl)

    def _flatten(self, parent: int, out: list[tuple[str, int, bool, str, str, Any, Any]]) -> None:
        raise NotImplementedError

    def _run_eager(self, previous: Any, has_previous: bool) -> Any:
        raise NotImplementedError


class Signature(Canvas):
    """A frozen call of a task (`task.s(*args, **kwargs)`); `immutable` (`task.si(...)`): it ignores the result of
    the step before it."""

    def __init__(self, task: StepTask, args: Sequence[Any], kwargs: dict[str, Any], immutable: bool = False) -> None:
        self.task, self.args, self.kwargs, self.immutable = task, tuple(args), dict(kwargs), immutable

    def __repr__(self) -> str:
        return f"{self.task.name}.{'si' if self.immutable else 's'}{self.args!r}"

    def signatures(self) -> Iterable[Signature]:
        yield self

    def _flatten(self, parent: int, out: list[tuple[str, int, bool, str, str, Any, Any]]) -> None:
        app = self.task.app
        queue = app.get_queue(self.task.queue or app.default_queue, "workflow").name
        out.append(("t", parent, self.immutable, queue, self.task.name, self.args, self.kwargs))

    def _run_eager(self, previous: Any, has_previous: bool) -> Any:
        from wakaq.eager import run_eager

        args = self.args if self.immutable or not has_previous else (previous, *self.args)
        value = run_eager(self.task, args, self.kwargs)  # type: ignore[arg-type]
        if hasattr(value, "__await__"):
            raise WakaQError("eager workflows run sync steps only (an event loop is running)")
        return value


class Chain(Canvas):
    """Steps run one after the other; each result is the next step's first argument."""

    steps: list[Canvas]

    def __init__(self, steps: Sequence[Canvas]) -> None:
        flat: list[Canvas] = []
        for step in steps:
            flat.extend(step.steps if isinstance(step, Chain) else [_canvas(step)])
        if not flat:
            raise WakaQError("a chain needs at least one step")
        self.steps = flat

    def __repr__(self) -> str:
        return " | ".join(map(repr, self.steps))

    def signatures(self) -> Iterable[Signature]:
        for step in self.steps:
            yield from step.signatures()

    def _flatten(self, parent: int, out: list[tuple[str, int, bool, str, str, Any, Any]]) -> None:
        me = len(out)
        out.append(("c", parent, False, "", "", (), {}))
        for step in self.steps:
            step._flatten(me, out)

    def _run_eager(self, previous: Any, has_previous: bool) -> Any:
        for step in self.steps:
            previous, has_previous = step._run_eager(previous, has_previous), True
        return previous


class Group(Canvas):
    """Members run at once; the group's result is the list of their results, in member order. `allow_failure`: a
    member that fails (after its retries) counts as its error's description ("ValueError: bad") instead of failing
    the workflow."""

    def __init__(self, members: Sequence[Canvas], allow_failure: bool = False) -> None:
        self.members = [_canvas(m) for m in members]
        if not self.members:
            raise WakaQError("a group needs at least one member")
        self.allow_failure = bool(allow_failure)

    def __repr__(self) -> str:
        return f"group({self.members!r})"

    def then(self, callback: Canvas, allow_failure: bool | None = None) -> Chain:
        """Run `callback` once with the list of the members' results, after every member finished. `allow_failure`
        (default: the group's): failed members' descriptions take their places instead of failing the workflow."""
        flag = self.allow_failure if allow_failure is None else allow_failure
        return Chain([Group(self.members, flag), callback])

    def signatures(self) -> Iterable[Signature]:
        for member in self.members:
            yield from member.signatures()

    def _flatten(self, parent: int, out: list[tuple[str, int, bool, str, str, Any, Any]]) -> None:
        me = len(out)
        out.append(("g", parent, self.allow_failure, "", "", (), {}))
        for member in self.members:
            member._flatten(me, out)

    def _run_eager(self, previous: Any, has_previous: bool) -> Any:
        results = []
        for member in self.members:
            try:
                results.append(member._run_eager(previous, has_previous))
            except Exception as e:
                if not self.allow_failure:
                    raise
                results.append(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        return results


def _canvas(value: object) -> Canvas:
    if not isinstance(value, Canvas):
        raise WakaQError(f"a workflow step must be a signature (task.s(...)), a chain or a group, got {value!r}")
    return value


def chain(*steps: Canvas | Iterable[Canvas]) -> Chain:
    """`chain(a.s(1), b.s(), c.s())` (or one list of them): each step's result is the next step's first argument.
    The same as `a.s(1) | b.s() | c.s()`."""
    if len(steps) == 1 and not isinstance(steps[0], Canvas):
        return Chain(list(steps[0]))
    return Chain(steps)  # type: ignore[arg-type]


def group(*members: Canvas | Iterable[Canvas], allow_failure: bool = False) -> Group:
    """`group([a.s(1), b.s(2)])` (or the members as arguments): run at once; `.then(cb.s())` runs `cb` with the list
    of their results."""
    if len(members) == 1 and not isinstance(members[0], Canvas):
        return Group(list(members[0]), allow_failure)
    return Group(members, allow_failure)  # type: ignore[arg-type]


# ---- handles ----------------------------------------------------------------------------------------------------


class WorkflowHandle:
    """A running (or finished) workflow: its id, status, each step's status, and its result (of the last step or
    the callback). `app.workflow_handle(id)` rebuilds one; `app.cancel(id)` cancels it."""

    def __init__(self, app: ResultsHost, workflow_id: str) -> None:
        self.app = app
        self.id = workflow_id

    def __repr__(self) -> str:
        return f"<WorkflowHandle {self.id}>"

    def record(self) -> dict[str, bytes]:
        """status, result / error_type, error, failed_node (only these fields, not the tree)."""
        fields = ("status", "result", "error_type", "error", "failed_node")
        with redis_errors(self.app):
            raw: list[bytes | None] = client(self.app).redis.hmget(self.app.keys.workflow(self.id), fields)  # type: ignore[assignment]
        return {k: v for k, v in zip(fields, raw, strict=True) if v is not None}

    def status(self) -> str:
        """ "running", "done", "failed", "cancelled"; "pending" when there is no such workflow (expired)."""
        with redis_errors(self.app):
            raw: bytes | None = client(self.app).redis.hget(self.app.keys.workflow(self.id), "status")  # type: ignore[assignment]
        return PENDING if raw is None else raw.decode()

    def members(self) -> list[dict[str, Any]]:
        """Every task step in tree order: `id` (its task id), `task` (its name), `node`, `status` ("waiting": the
        steps before it have not finished; "pending": queued; then as a task's: running, retrying, done, failed,
        cancelled)."""
        key = self.app.keys.workflow(self.id)
        with redis_errors(self.app):
            r: Any = client(self.app).redis
            count = int(r.hget(key, "nodes") or 0)  # type: ignore[arg-type]
            kinds = r.hmget(key, [f"k{i}" for i in range(count)]) if count else []
            steps = [i for i, kind in enumerate(kinds) if kind == b"t"]
            if not steps:
                return []
            ids = r.hmget(key, [f"m{i}" for i in steps])
            names = r.hmget(key, [f"w{i}" for i in steps])
            pipe = r.pipeline(transaction=False)
            for member in ids:
                pipe.hmget(self.app.keys.result((member or b"").decode()), ["status", "wf"])
            states = pipe.execute()
        out = []
        for node, member, name, (status, linked) in zip(steps, ids, names, states, strict=True):
            state = status.decode() if status else (PENDING if linked else WAITING)
            out.append({"id": (member or b"").decode(), "task": (name or b"").decode(), "node": node, "status": state})
        return out

    def result(self, timeout: float | None = None) -> Any:
        """Wait until the workflow ends (at most `timeout` seconds; None: forever) and return the result of its last
        step (or callback). Raises TaskFailed when it failed (the failed step's error) or was cancelled,
        TimeoutError when it has not ended in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = self._final()
            if found is not None:
                return self._outcome(found)
            left = WAIT_SLICE if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"workflow {self.id} has not ended after {timeout}s (status {self.status()!r})")
            self._wait(min(left, WAIT_SLICE))

    async def aresult(self, timeout: float | None = None) -> Any:
        """`result()` for async code: each blocking wait (at most 1 s) runs in a thread."""
        import asyncio

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = await asyncio.to_thread(self._final)
            if found is not None:
                return self._outcome(found)
            left = WAIT_SLICE if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"workflow {self.id} has not ended after {timeout}s")
            await asyncio.to_thread(self._wait, min(left, WAIT_SLICE))

    def _final(self) -> dict[str, bytes] | None:
        found = self.record()
        return found if found.get("status", b"").decode() in FINAL else None

    def _outcome(self, record: dict[str, bytes]) -> Any:
        from wakaq._wakaq import unpackb

        status = record["status"].decode()
        if status == "done":
            return unpackb(record["result"]) if "result" in record else None
        error_type = record.get("error_type", status.encode()).decode()
        raise TaskFailed(self.id, error_type, record.get("error", b"").decode(), status)

    def _wait(self, seconds: float) -> None:
        """As `TaskHandle._wait`: BLMOVE of the ready list onto itself, so every waiter sees the token."""
        ready = self.app.keys.workflow_ready(self.id)
        if self.app.socket_timeout:
            seconds = min(seconds, self.app.socket_timeout / 2)
        with redis_errors(self.app):
            client(self.app).redis.blmove(ready, ready, max(0.01, seconds), "LEFT", "RIGHT")  # type: ignore[arg-type]


class EagerWorkflowHandle:
    """What `.delay()` of a workflow returns in eager mode: it ran inline already (a failed step raised there)."""

    def __init__(self, workflow_id: str, value: Any) -> None:
        self.id = workflow_id
        self._value = value

    def __repr__(self) -> str:
        return f"<EagerWorkflowHandle {self.id}>"

    def status(self) -> str:
        return "done"

    def members(self) -> list[dict[str, Any]]:
        return []

    def result(self, timeout: float | None = None) -> Any:
        return self._value

    async def aresult(self, timeout: float | None = None) -> Any:
        return self._value


# ---- the index of recent workflows (the dashboard's list, wakaq-info's counts) ----------------------------------


def recent_statuses(app: Any, r: Any) -> list[tuple[str, float, str]]:
    """(id, started, status) of every workflow of the index that still exists, newest first."""
    found: list[tuple[bytes, float]] = r.zrevrange(app.keys.workflows_recent, 0, -1, withscores=True)  # type: ignore[assignment]
    if not found:
        return []
    pipe: Any = r.pipeline(transaction=False)
    for member, _ in found:
        pipe.hget(app.keys.workflow(member.decode(errors="replace")), "status")
    out = []
    for (member, score), status in zip(found, pipe.execute(), strict=True):
        if status is not None:
            out.append((member.decode(errors="replace"), score, status.decode(errors="replace")))
    return out


def recent_counts(app: Any, r: Any) -> dict[str, int]:
    """Recent workflows (those the index names that have not expired) by status, and their total (`recent`)."""
    by_status = Counter(status for _, _, status in recent_statuses(app, r))
    return {"recent": sum(by_status.values()), **dict(sorted(by_status.items()))}
