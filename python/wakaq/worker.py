"""The Python side of a forked worker child: claim tasks, run them (sync and async), settle them.

The Rust parent (`_wakaq.run_worker`) forks the child and calls `child_main(slot)`. Everything per task that is
not calling user code happens in Rust: the claim/ack round trip (`Consumer`), the payload decode and the
watchdog bookkeeping (`task_started` writes into shared memory, no syscall).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import logging
import signal
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import Token
from dataclasses import dataclass
from datetime import timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from wakaq import _wakaq, retries, tracing
from wakaq.connection import is_config_failure
from wakaq.constants import CANCELLED_REASON
from wakaq.context import running_meta, running_progress, running_queue, running_retry, set_meta
from wakaq.exceptions import BrokerError, PayloadError, SoftTimeout, TaskCancelled
from wakaq.invoke import compose, needs_event_loop, run_async, run_prepared, run_untraced
from wakaq.logger import current_task_name, setup_logging
from wakaq.results import CANCELLED, FAILED

if TYPE_CHECKING:
    from wakaq.app import WakaQ
    from wakaq.queue import Queue
    from wakaq.task import Task

log = logging.getLogger("wakaq")

#: Claim several tasks per round trip only while tasks finish this fast (seconds); slower tasks are claimed
#: one at a time so an idle sibling can take the next one.
FAST_TASK = 0.001
MAX_BATCH = 32
#: longest pause between two attempts to reach Redis during an outage (seconds)
MAX_BACKOFF = 1.0
#: An idle child claims after this many quiet doorbell waits even without a token, for tasks pushed without
#: ringing (WakaQ's own producers during a migration): they wait at most this many `wait_timeout`s.
CLAIM_EVERY_IDLE_WAITS = 5


@dataclass(slots=True, frozen=True)
class Plan:
    """How to run one task from one queue: worked out on first use, then reused."""

    task: Task[Any, Any]
    queue: Queue
    soft: float
    hard: float
    chain: Callable[..., Any] | None  # the wrapped function; None when an async part needs the event loop
    cell: int  # where this pair is counted (`_wakaq.counter_cell`: shared memory the parent publishes)
    retry: retries.RetryPolicy  # what a failure is retried for and how (wakaq.retries)


@dataclass(slots=True)
class Claimed:
    """A claimed task (`_wakaq.ClaimedTask`: seq, queue, payload held in Rust) and what this child learns of it."""

    task: _wakaq.ClaimedTask  # handed back to the Consumer to settle it
    seq: int
    queue: Queue | None  # None for a broadcast relayed by this daemon's parent
    queue_name: str
    meta: dict[str, Any] | None = None  # the payload's meta: None unless an opt-in feature is used
    soft_timer: asyncio.TimerHandle | None = None  # an async task's soft timeout, cancelled when it ends
    error: BaseException | None = None  # what the task raised (for its result record)


def _seconds(value: timedelta | None) -> float:
    return value.total_seconds() if value else 0.0


class Child:
    """One worker child process: a claim loop on an asyncio event loop."""

    def __init__(self, app: WakaQ, settings: _wakaq.Settings, slot: int) -> None:
        self.app = app
        self.slot = slot
        self.queues = app.worker_queues
        self.consumer = _wakaq.Consumer(settings)
        #: some queue or task has a rate limit: an empty claim may say how long until budget returns
        self.rate_limited = self.consumer.rate_limited
        self.stopping = False
        self.acks: list[int] = []
        self.done = 0
        self.sync_seq: int | None = None
        #: the sync task's own code is what runs now (between these two points a SIGQUIT may raise in it)
        self._armed = False
        #: a sync task run inside the event loop (async wrapper or callback): its own asyncio task
        self._loop_task: asyncio.Task[BaseException | None] | None = None
        self.async_tasks: dict[asyncio.Task[None], Claimed] = {}
        self.async_deadlines: dict[int, tuple[float, int]] = {}  # seq -> (hard deadline, counter cell)
        self.soft_timed_out: set[int] = set()
        #: seqs an admin cancelled while they ran (SIGUSR2): settled as failed, never retried
        self.cancelled: set[int] = set()
        #: seqs an admin cancelled after this child claimed them and before they started
        self.cancel_before_start: set[int] = set()
        self.batch = 1
        #: a tracer is on (`tracing.active()`, asked once per claimed batch)
        self._traced = False
        self._plans: dict[tuple[str, str], Plan] = {}
        self.debug = log.isEnabledFor(logging.DEBUG)
        self._wait_future: asyncio.Future[bool] | None = None
        self._down = False
        self._backoff = 0.0
        self._finished = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        #: the return value of the sync task that just ran (one sync task runs at a time)
        self._sync_value: Any = None

    # ---- signals -------------------------------------------------------------------------------------

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGQUIT, self._on_sigquit)
        signal.signal(signal.SIGUSR2, self._on_cancel)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _on_sigquit(self, signum: int, frame: FrameType | None) -> None:
        """The parent sends SIGQUIT for a sync task past its soft timeout.

        NOTE: if the task already finished by the time the handler runs, there is nothing to interrupt."""
        seq = self.sync_seq
        if seq is not None:
            self._interrupt_sync(seq, self.soft_timed_out, SoftTimeout("soft timeout"))

    def _on_cancel(self, signum: int, frame: FrameType | None) -> None:
        """The parent sends SIGUSR2 after posting seqs an admin cancelled (`terminate=True`) into this child's
        slot. Like a soft timeout, a sync task gets `TaskCancelled` raised inside its own code (or its asyncio task
        cancelled), an async task is cancelled. A seq that already finished is ignored: seqs are never reused in a
        child, so a late request can never hit the next task."""
        for seq in _wakaq.take_cancels():
            if seq == self.sync_seq:
                self._interrupt_sync(seq, self.cancelled, TaskCancelled(CANCELLED_REASON))
                continue
            for atask, claimed in self.async_tasks.items():
                if claimed.seq == seq:
                    atask.get_loop().call_soon_threadsafe(self._cancel, atask, seq, self.cancelled, CANCELLED_REASON)
                    break
            else:
                # NOTE: claimed but not started yet (later in a claimed batch, or its "running" record being
                # written): it is recorded cancelled instead of started. A seq that already finished is never
                # claimed again (seqs are not reused), so remembering it costs one set entry.
                self.cancel_before_start.add(seq)

    def _interrupt_sync(self, seq: int, marks: set[int], error: BaseException) -> None:
        """Interrupt the running sync task `seq` from a signal handler (soft timeout, cancel), noting `seq` in
        `marks` so it is settled as such. The handler runs wherever the main thread is, so it raises `error` only
        inside that task's own code; anywhere else (the selector, another async task, the worker's bookkeeping) it
        must not raise at all.

        NOTE: a signal landing between `task_started` and the task's own code (or after it returned) interrupts
        nothing: the task then runs (or ends) normally."""
        if self._armed:
            marks.add(seq)
            raise error
        inner = self._loop_task
        if inner is None or inner.done():
            return
        coro = inner.get_coro()
        if asyncio.current_task() is inner and getattr(coro, "cr_running", False):
            marks.add(seq)
            raise error  # NOTE: inside the task's own step: it propagates in the task
        # NOTE: the loop is elsewhere: cancel the task from the loop (call_soon_threadsafe is signal-safe: a
        # deque append and a byte to the loop's self-pipe), as an async task's soft timeout does
        inner.get_loop().call_soon_threadsafe(self._cancel, inner, seq, marks, str(error))

    def _cancel(self, atask: asyncio.Task[Any], seq: int, marks: set[int], why: str) -> None:
        """Cancel a task's asyncio task (in the loop), noting `seq` in `marks` (soft timeout, cancel)."""
        if not atask.done():
            marks.add(seq)
            atask.cancel(why)

    # ---- main loop -----------------------------------------------------------------------------------

    def run(self) -> int:
        self.install_signals()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self.main())
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
            loop.close()
        return 0

    async def main(self) -> None:
        await self._call_hook("after_worker_started_callback")
        limit = self.app.max_tasks_per_worker
        while not self.stopping and not (limit and self.done >= limit):
            if self._async_full():
                await self._async_finish()
                continue
            room = self._room(limit)
            try:
                batch = self.consumer.claim(self._take_acks(), room)
            except BrokerError as e:
                await self._outage(e)
                continue
            self._recovered()
            if not batch:
                await self._idle()
                continue
            await self._run_batch(batch)
        await self._drain()

    def _room(self, limit: int | None) -> int:
        room = self.batch
        if limit:
            room = min(room, limit - self.done)
        if self.app.async_concurrency:
            room = min(room, max(1, self.app.async_concurrency - len(self.async_tasks)))
        return max(1, room)

    async def _async_finish(self) -> None:
        """Wait until an async task finishes (an event set by its done callback: O(1), unlike asyncio.wait
        over every running task, which re-registers a callback on each of them per call)."""
        self._finished.clear()
        if self.async_tasks:
            await self._finished.wait()

    def _async_full(self) -> bool:
        limit = self.app.async_concurrency
        return bool(limit) and len(self.async_tasks) >= limit

    def _take_acks(self) -> list[int]:
        acks, self.acks = self.acks, []
        return acks

    async def _idle(self) -> None:
        """Nothing to claim: block on the doorbells (GIL released), without starving running async tasks."""
        self.batch = 1
        if self.stopping:
            return  # NOTE: a claim interrupted by SIGTERM also comes back empty: stop now, not after a wait
        if self.rate_limited and (budget := self.consumer.budget_wait) is not None:
            await self._budget_wait(budget)
            return
        if not self.async_tasks and (self._wait_future is None or self._wait_future.done()):
            for _ in range(CLAIM_EVERY_IDLE_WAITS):
                try:
                    if self.consumer.wait(self.app.wait_timeout) or self.stopping:
                        return
                except BrokerError as e:
                    await self._outage(e)
                    return
            return
        await self._wait_in_thread(None)

    async def _wait_in_thread(self, timeout: float | None) -> bool:
        """Block on the doorbells in a thread, until a token, an async task finishing, or `timeout` (seconds).
        False when only a timeout (this one or the doorbell wait's own) ended it."""
        if self._wait_future is None or self._wait_future.done():
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wakaq-wait")
            loop = asyncio.get_running_loop()
            self._wait_future = loop.run_in_executor(self._executor, self.consumer.wait, self.app.wait_timeout)
        waiting: list[asyncio.Future[Any]] = [self._wait_future]
        finished = asyncio.ensure_future(self._async_finish()) if self.async_tasks else None
        if finished is not None:
            waiting.append(finished)
        await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        woken = finished is not None and finished.done()
        if finished is not None:
            finished.cancel()
        if self._wait_future.done():
            if isinstance(error := self._wait_future.exception(), BrokerError):
                await self._outage(error)
                return True
            woken = woken or self._wait_future.exception() is not None or bool(self._wait_future.result())
        return woken

    async def _budget_wait(self, budget: float) -> None:
        """Pending work waits for rate-limit budget: claim again when it returns (the claim script staggers the
        children's waits one token apart), or sooner for a doorbell of a queue that has budget; never a busy loop.

        NOTE: timed here, not by BLPOP's own timeout: Redis checks blocked clients' timeouts only when its event loop
        turns (10 times a second on an idle server), which rounds short waits up to 100 ms and wastes the budget. A
        doorbell wait that merely timed out meanwhile is started again: claiming before the slot the script gave
        this child would only get it a later one."""
        deadline = time.monotonic() + min(budget, self.app.wait_timeout)
        while (left := deadline - time.monotonic()) > 0 and not self.stopping:
            if await self._wait_in_thread(left):
                return

    # ---- redis outages -------------------------------------------------------------------------------

    async def _outage(self, error: BrokerError) -> None:
        """Redis is unreachable: warn once per outage, back off (0.1 s doubling to 1 s), never spin.

        NOTE: the cap is what a child may add to the outage: tasks resume within about a second of Redis
        answering again, and one refused connection a second costs nothing.
        """
        if "interrupted by a signal" in str(error):
            return  # NOTE: a signal arrived mid-call; Redis is fine, lost replies are reconciled by the Consumer
        if not self._down:
            if is_config_failure(str(error)):
                log.error("%s; retrying until it is fixed", error)
            else:
                log.warning("%s; retrying until it is back", error)
            self._down = True
        self._backoff = min(MAX_BACKOFF, self._backoff * 2 or 0.1)
        await asyncio.sleep(self._backoff)

    def _recovered(self) -> None:
        if self._down:
            log.info("redis is reachable again")
            self._down = False
        self._backoff = 0.0

    async def _redis(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A settling call (fail, retry, release): retried until Redis answers; these calls are idempotent."""
        while True:
            try:
                result = call(*args, **kwargs)
            except BrokerError as e:
                await self._outage(e)
                continue
            self._recovered()
            return result

    async def _run_batch(self, batch: list[_wakaq.ClaimedTask]) -> None:
        # NOTE: asked once per batch, not per task: a tracer registered meanwhile takes over from the next batch
        self._traced = tracing.active()
        started = time.monotonic()
        async_before = len(self.async_tasks)
        for i, task in enumerate(batch):
            if self.stopping or (i and self._batch_turned_slow(started, i, len(self.async_tasks) - async_before)):
                await self._hand_back(batch[i:])
                self.batch = 1
                return
            await self._handle(self._claimed(task))
        started_async = len(self.async_tasks) - async_before
        if started_async > 0:
            # NOTE: let the tasks just started run before claiming more: a loop that only claims (starting
            # tasks never awaits) would take the whole queue into this child before any task finished
            await asyncio.sleep(0)
        self._next_batch_size(len(batch), time.monotonic() - started, started_async)

    async def _hand_back(self, rest: list[_wakaq.ClaimedTask]) -> None:
        """Return the unstarted rest of a batch to the front of its queues, except the tasks an admin cancelled
        meanwhile (`terminate=True` reached them claimed but not started): those are recorded cancelled here, not
        handed back to run elsewhere."""
        cancelled = [t for t in rest if t.seq in self.cancel_before_start]
        await self._redis(self.consumer.release, [t for t in rest if t.seq not in self.cancel_before_start])
        for task in cancelled:
            await self._handle(self._claimed(task))

    @staticmethod
    def _batch_turned_slow(started: float, ran: int, started_async: int) -> bool:
        """The sync tasks run so far in this batch took FAST_TASK or more each, on average.

        NOTE: a batch grows while tasks are fast; when slow tasks follow fast ones in the same queue, the rest
        of the batch is handed back (to the front of its queues, order kept) instead of being run here one by
        one: an idle sibling takes them at once, and the next claim sees higher-priority work again."""
        ran_sync = ran - started_async
        return ran_sync > 0 and time.monotonic() - started >= FAST_TASK * ran_sync

    def _next_batch_size(self, size: int, elapsed: float, started_async: int) -> None:
        """Claim more per round trip only while it cannot starve an idle sibling: async tasks start at once,
        and sync tasks that finish in under FAST_TASK are worth keeping; anything slower is claimed singly."""
        ran_sync = size - started_async
        if ran_sync <= 0 or elapsed / ran_sync < FAST_TASK:
            self.batch = min(MAX_BATCH, self.batch * 2)
        else:
            self.batch = 1

    def _claimed(self, task: _wakaq.ClaimedTask) -> Claimed:
        seq, index, queue_name = task.head()
        return Claimed(task, seq, self.queues[index - 1] if index else None, queue_name)

    async def _drain(self) -> None:
        """Stopping: let running async tasks finish (the parent enforces their hard timeouts), then ack."""
        if self.async_tasks:
            await asyncio.wait(list(self.async_tasks))
        if self._wait_future is not None:
            await asyncio.wait([self._wait_future])
        # NOTE: also when this side holds no acks: a claim cut short by a signal (the SIGTERM that stopped us,
        # or another one during this final ack) parks its acks in the Consumer and returns [] as if it had
        # run; exiting with them parked makes the parent requeue tasks that already ran.
        while self.acks or self.consumer.unsettled:
            await self._redis(self.consumer.claim, self._take_acks(), 0)

    # ---- one task ------------------------------------------------------------------------------------

    async def _handle(self, claimed: Claimed) -> None:
        # NOTE: `decode` marks the slot first: from here the parent counts this task's delivery if the child dies
        # (Slot::task_handling), so a task that kills every child before it starts is dead-listed too
        try:
            name, args, kwargs, retry, meta = claimed.task.decode()
        except PayloadError as e:
            await self._fail(claimed, f"undecodable payload: {e}", kind="undecodable")
            return
        if self.cancel_before_start and claimed.seq in self.cancel_before_start:
            self.cancel_before_start.discard(claimed.seq)
            claimed.meta = meta
            claimed.error = TaskCancelled(CANCELLED_REASON)
            await self._fail(
                claimed, CANCELLED_REASON, cell=_wakaq.counter_cell(claimed.queue_name, name), kind="cancelled"
            )
            return
        # NOTE: plain first runs (meta None, retry 0) pay one test here and one in the finally
        tokens = None
        if meta is not None or retry or self._traced:
            claimed.meta = meta
            # NOTE: a task with an id may report progress (current_task.set_progress); the asyncio task of an async
            # task copies this context, so its writer stays set there
            progress: Token[Any] | None = None
            if meta is not None and "id" in meta:
                progress = running_progress.set(functools.partial(self.consumer.progress, claimed.task))
            tokens = (set_meta(meta), running_retry.set(retry), running_queue.set(claimed.queue_name), progress)
            if meta is not None and "results" in meta:
                await self._redis(self.consumer.start, claimed.task)
        try:
            plan = self._plan(name, claimed)
            if plan is None:
                cell = _wakaq.counter_cell(claimed.queue_name, None)
                await self._fail(claimed, f"unknown task {name!r} (not registered on this app)", cell=cell)
            elif plan.task.is_async:
                # NOTE: the asyncio task copies the context here, meta included
                self._start_async(plan, claimed, args, kwargs, retry)
                # NOTE: started: the slot's async fields watch it now; the handling mark (a sync task's field) goes
                _wakaq.task_handling(0)
            else:
                await self._run_sync(plan, claimed, args, kwargs, retry)
        finally:
            if tokens is not None:
                running_meta.reset(tokens[0])
                running_retry.reset(tokens[1])
                running_queue.reset(tokens[2])
                if tokens[3] is not None:
                    running_progress.reset(tokens[3])

    def _plan(self, name: str, claimed: Claimed) -> Plan | None:
        """What running `name` from this queue takes (timeouts, wrapper chain), worked out once per pair."""
        plan = self._plans.get((name, claimed.queue_name))
        if plan is None:
            task = self.app.tasks.get(name)
            if task is None:
                return None
            queue = claimed.queue or task.queue or self.app.default_queue
            soft, hard = self.app.timeouts_for(task, queue)
            in_loop = needs_event_loop(self.app, task)
            chain = None if in_loop else compose(self.app, task)
            cell = _wakaq.counter_cell(claimed.queue_name, name)
            retry = self.app.retry_policy_for(task, queue)
            plan = Plan(task, queue, _seconds(soft), _seconds(hard), chain, cell, retry)
            self._plans[(name, claimed.queue_name)] = plan
        return plan

    async def _run_sync(
        self, plan: Plan, claimed: Claimed, args: list[Any], kwargs: dict[str, Any], retry: int
    ) -> None:
        task = plan.task
        token = current_task_name.set(task.name)
        if self.debug:
            log.debug("starting task %s", task.name)
        _wakaq.task_started(claimed.seq, plan.soft, plan.hard, plan.cell)
        self.sync_seq = claimed.seq
        done = False
        try:
            if plan.chain is None:
                outcome = await self._call_in_loop(task, args, kwargs)
            else:
                outcome = self._call_sync(task, plan.chain, args, kwargs)
            done = outcome is None
        finally:
            self.sync_seq = None
            _wakaq.task_finished(done)
        try:
            if outcome is None:
                value, self._sync_value = self._sync_value, None
                self._succeeded(task, claimed)
                if claimed.meta is not None:
                    await self._settle_success(claimed, value)
            else:
                await self._settle(plan, claimed, args, kwargs, retry, outcome)
        finally:
            current_task_name.reset(token)

    def _call_sync(
        self, task: Task[Any, Any], chain: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]
    ) -> BaseException | None:
        try:
            self._armed = True
            try:
                run = run_prepared if self._traced else run_untraced
                self._sync_value = run(self.app, task, chain, args, kwargs)
            finally:
                # NOTE: a SIGQUIT landing after the task returned, before this line, still raises inside the
                # outer try: the task is retried (a soft timeout that came late), never a crashed child
                self._armed = False
        except SoftTimeout as e:
            return e
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            return e
        return None

    async def _call_in_loop(
        self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> BaseException | None:
        """A sync task with an async wrapper or callback, still watched as a sync task: run as its own asyncio
        task, so its soft timeout can cancel it whatever else the loop is doing."""
        inner = asyncio.get_running_loop().create_task(self._in_loop(task, args, kwargs))
        self._loop_task = inner
        try:
            return await inner
        finally:
            self._loop_task = None

    async def _in_loop(self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any]) -> BaseException | None:
        try:
            self._sync_value = await run_async(self.app, task, args, kwargs)
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            return e
        return None

    def _start_async(self, plan: Plan, claimed: Claimed, args: list[Any], kwargs: dict[str, Any], retry: int) -> None:
        soft, hard = plan.soft, plan.hard
        loop = asyncio.get_running_loop()
        coro = self._run_async(plan, claimed, args, kwargs, retry)
        _wakaq.count_task(plan.cell, "started")
        atask = loop.create_task(coro)
        self.async_tasks[atask] = claimed
        if soft:
            marks = self.soft_timed_out
            claimed.soft_timer = loop.call_later(soft, self._cancel, atask, claimed.seq, marks, "soft timeout")
        if hard:
            self.async_deadlines[claimed.seq] = (time.monotonic() + hard, plan.cell)
            self._report_async_deadline()
        atask.add_done_callback(self._async_done)

    def _async_done(self, atask: asyncio.Task[None]) -> None:
        self._finished.set()
        claimed = self.async_tasks.pop(atask, None)
        if claimed is None:
            return
        if claimed.soft_timer is not None:
            # NOTE: an armed timer keeps the finished task (coroutine, arguments, element) alive for the whole
            # soft timeout: 300 s of finished tasks in a busy child
            claimed.soft_timer.cancel()
            claimed.soft_timer = None
        if self.async_deadlines.pop(claimed.seq, None) is not None:
            self._report_async_deadline()

    def _report_async_deadline(self) -> None:
        if self.async_deadlines:
            seq, (at, cell) = min(self.async_deadlines.items(), key=lambda kv: kv[1][0])
            _wakaq.async_deadline(seq, at, cell)
        else:
            _wakaq.async_deadline(0, 0.0)

    async def _run_async(
        self, plan: Plan, claimed: Claimed, args: list[Any], kwargs: dict[str, Any], retry: int
    ) -> None:
        task = plan.task
        token = current_task_name.set(task.name)
        if self.debug:
            log.debug("starting task %s", task.name)
        outcome: BaseException | None = None
        began = time.monotonic()
        value = None
        try:
            value = await run_async(self.app, task, args, kwargs)
        except asyncio.CancelledError as e:
            if claimed.seq not in self.soft_timed_out and claimed.seq not in self.cancelled:
                raise
            outcome = e
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            outcome = e
        _wakaq.count_task(plan.cell, "done" if outcome is None else "exception", time.monotonic() - began)
        if outcome is None:
            self._succeeded(task, claimed)
            if claimed.meta is not None:
                await self._settle_success(claimed, value)
        else:
            await self._settle(plan, claimed, args, kwargs, retry, outcome)
        current_task_name.reset(token)

    def _succeeded(self, task: Task[Any, Any], claimed: Claimed) -> None:
        """A task returned: counted, and acked with the next claim unless it has a result or a lock to settle
        (`_settle_success`). NOTE: not a coroutine: the plain task's path pays no await for the features."""
        self.done += 1
        if self.soft_timed_out:
            self.soft_timed_out.discard(claimed.seq)  # the task caught its soft timeout and returned
        if self.debug:
            log.debug("finished task %s", task.name)
        meta = claimed.meta
        if meta is None or not ("results" in meta or "unique" in meta):
            self.acks.append(claimed.seq)

    async def _settle_success(self, claimed: Claimed, value: Any) -> None:
        """A task with a result or a lock returned: settled at once (not acked with the next claim)."""
        meta = claimed.meta
        if meta is None or not ("results" in meta or "unique" in meta):
            return
        # NOTE: a task that stores results or holds a lock is settled at once, its result and its lock with its ack
        # in one script (finish.lua): first writer wins, so a rerun after a crash cannot change a stored outcome
        packed = None
        if meta.get("results"):
            try:
                packed = _wakaq.packb(value)
            except TypeError as e:
                log.error("task result not stored (%s): %s", claimed.queue_name, e)
                claimed.error = e
                error = ("TypeError", f"cannot encode the task's return value: {e}")
                reason = f"TypeError: cannot encode the task's return value: {e}"
                await self._redis(self.consumer.fail, claimed.task, reason, "", self._take_acks(), error=error)
                return
        await self._redis(self.consumer.done, claimed.task, packed, self._take_acks())

    async def _settle(
        self, plan: Plan, claimed: Claimed, args: list[Any], kwargs: dict[str, Any], retry: int, outcome: BaseException
    ) -> None:
        """A task that did not succeed: a soft timeout (retried while retries are left), an exception to retry
        (`retry_on`, `Retry`), or a failure."""
        self.done += 1
        claimed.error = outcome
        if self.cancelled and claimed.seq in self.cancelled:
            self.cancelled.discard(claimed.seq)
            self.soft_timed_out.discard(claimed.seq)
            await self._fail(claimed, CANCELLED_REASON, _format_tb(outcome), cell=plan.cell, kind="cancelled")
        elif claimed.seq in self.soft_timed_out:
            self.soft_timed_out.discard(claimed.seq)
            await self._soft_timeout(plan, claimed, args, kwargs, retry)
        elif claimed.meta is not None or isinstance(outcome, plan.retry.catches):
            await self._retry_or_fail(plan, claimed, retry, outcome)
        else:
            await self._fail(claimed, _describe(outcome), _format_tb(outcome), cell=plan.cell)

    async def _retry_or_fail(self, plan: Plan, claimed: Claimed, retry: int, outcome: BaseException) -> None:
        """Retry through the eta set (or the queue, when due now), atomically with settling the claim; when it is
        not to be retried, or its retries are used up, record it failed with every attempt's reason."""
        step = None
        if isinstance(outcome, plan.retry.catches) and claimed.queue is not None:
            step = retries.next_attempt(plan.retry, retry, outcome, claimed.meta)
        if step is None:
            reason = retries.failure_reason(_describe(outcome), claimed.meta, retry, plan.retry.max_retries)
            await self._fail(claimed, reason, _format_tb(outcome), cell=plan.cell)
            return
        name = plan.task.name
        when = "now" if step.delay is None else f"in {step.delay:.3g}s"
        log.warning(
            "task %s failed (%s), retry %d of %d %s", name, _describe(outcome), retry + 1, plan.retry.max_retries, when
        )
        _wakaq.count_task(plan.cell, "retried")
        error = _error_of(outcome, _describe(outcome))
        acks = self._take_acks()
        # NOTE: the Consumer rewrites `retry` and `meta` in the payload it holds: the arguments' bytes as sent, not
        # as the task left them (no decode, no encode again)
        if step.delay is None:
            await self._redis(self.consumer.retry, claimed.task, step.meta, acks, error=error)
        else:
            await self._redis(self.consumer.retry_at, claimed.task, step.delay, step.meta, acks, error=error)

    async def _soft_timeout(
        self, plan: Plan, claimed: Claimed, args: list[Any], kwargs: dict[str, Any], retry: int
    ) -> None:
        task = plan.task
        limit = plan.retry.max_retries
        if retry < limit and claimed.queue is not None:
            log.warning("task %s hit its soft timeout, retry %d of %d", task.name, retry + 1, limit)
            meta = retries.soft_timeout_meta(plan.retry, claimed.meta)
            _wakaq.count_task(plan.cell, "retried")
            error = _error_of(claimed.error, "soft timeout")
            # NOTE: the arguments' bytes as sent, not as the task left them (it may have changed them, or left
            # something that cannot be encoded: raising here, after the slot was cleared, would kill the child on
            # every delivery); the Consumer rewrites `retry` and `meta` in the payload it holds
            await self._redis(self.consumer.retry, claimed.task, meta, self._take_acks(), error=error)
        else:
            reason = f"soft timeout (retried {retry} of {limit} times)"
            if retries.errors_of(claimed.meta):
                reason = retries.failure_reason("SoftTimeout: soft timeout", claimed.meta, retry, limit)
            await self._fail(claimed, reason, cell=plan.cell)

    async def _fail(
        self, claimed: Claimed, reason: str, tb: str = "", *, cell: int | None = None, kind: str = "exception"
    ) -> None:
        if cell is None:
            cell = _wakaq.counter_cell(claimed.queue_name, None)
        _wakaq.count_task(cell, kind)
        log.error("task failed (%s): %s%s", claimed.queue_name, reason, "\n" + tb.rstrip() if tb else "")
        status = CANCELLED if kind == "cancelled" else FAILED
        error = _error_of(claimed.error, reason)
        acks = self._take_acks()
        await self._redis(self.consumer.fail, claimed.task, reason, tb, acks, error=error, status=status)

    async def _call_hook(self, name: str, *args: Any) -> None:
        hook: Callable[..., Any] | None = getattr(self.app, name, None)
        if hook is None or not callable(hook):
            return
        result = hook(*args)
        if inspect.isawaitable(result):
            await result


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"task called sys.exit({exc.code!r})"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _error_of(exc: BaseException | None, reason: str) -> tuple[str, str]:
    """(type name, message) of a failure, for its result record."""
    if reason.startswith("soft timeout"):
        return "SoftTimeout", reason
    if exc is None:
        return "WakaQError", reason
    return type(exc).__name__, str(exc) or reason


def _format_tb(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def child_main(app: WakaQ, settings: _wakaq.Settings) -> Callable[[int], int]:
    """The function the Rust parent calls in each forked child; `settings` are the daemon's (`wakaq.daemon`)."""

    def main(slot: int) -> int:
        # NOTE: everything imported before the fork is long-lived: keep it out of the collector's scans (fewer,
        # shorter GC pauses) and out of its writes (copy-on-write pages stay shared with the parent).
        gc.freeze()
        setup_logging(app.worker_log_level, stream=sys.stderr)
        child = Child(app, settings, slot)
        return child.run()

    return main
