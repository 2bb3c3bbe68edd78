"""The seeded generator: one operation per step, drawn from the enabled features, and what each one sent.

Every operation gets a fresh tid and leaves a `Sent` entry in the ledger saying what the oracle may expect of it.
Cancels are scheduled at a (seeded) delay after the task they cancel was sent."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import redis

from wakaq import TaskHandle, WakaQ, _wakaq
from wakaq.cancel import derived_id
from wakaq.ids import new_id

from .app import BURST

#: what the oracle expects of a sent item
RUN = "run"  # runs at least once, or is recorded terminal
DEDUPED = "deduped"  # a unique task's duplicate: .delay() said it was not enqueued
UNSENT = "unsent"  # nothing was sent (a broadcast no daemon received)
UNCERTAIN = "uncertain"  # the send raised: it may or may not have reached Redis


@dataclass
class Sent:
    tid: int
    feature: str
    what: str  # a short description (task, options, malformation)
    expect: str = RUN
    task_id: str | None = None  # results/unique id (meta), or the derived id of a cancelled plain task
    results: bool = False
    marker: bytes | None = None  # bytes that identify a malformed payload inside a failure record
    receivers: int = 0  # broadcasts: daemons that received it
    cancel: str | None = None  # the outcome of app.cancel for it
    due: float | None = None  # eta tasks: when it is due (unix seconds; this host's clock is Redis's)


@dataclass
class Ledger:
    sent: dict[int, Sent] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, item: Sent) -> Sent:
        self.sent[item.tid] = item
        return item


#: malformed metas (issue 19, defect 1): a results meta without id, a TTL of the wrong type, a unique that is not a
#: string, an absurd TTL, meta that is not a map
BAD_METAS: list[tuple[str, Callable[[], Any]]] = [
    ("results without id", lambda: {"results": 60}),
    ("results TTL a string", lambda: {"id": new_id(), "results": "sixty"}),
    ("unique not a string", lambda: {"id": new_id(), "unique": 5}),
    ("results TTL 10**18", lambda: {"id": new_id(), "results": 10**18}),
    ("meta a list", lambda: [1, 2, 3]),
    ("meta a string", lambda: "meta"),
]


class Generator:
    def __init__(self, app: WakaQ, client: redis.Redis, rng: random.Random, features: frozenset[str]) -> None:
        self.app = app
        self.client = client
        self.rng = rng
        self.ledger = Ledger()
        self.cancels: list[tuple[float, int, bool]] = []  # (due, tid, terminate)
        self.next_tid = 1
        self.ops = sorted(features)

    def tid(self) -> int:
        self.next_tid += 1
        return self.next_tid

    def step(self) -> None:
        if self.ops:
            op = self.rng.choice(self.ops)
            getattr(self, f"op_{op}")()
        self.run_cancels()

    def _send(self, item: Sent, send: Callable[[], Any]) -> Any:
        self.ledger.add(item)
        try:
            return send()
        except Exception as e:  # NOTE: a send during a fault: the oracle does not count it as lost
            item.expect = UNCERTAIN
            self.ledger.errors.append(f"tid {item.tid} ({item.what}): {type(e).__name__}: {e}")
            return None

    def _task(self, name: str) -> Any:
        return self.app.tasks[name]

    # ---- operations, one per feature ----------------------------------------------------------------------

    def op_plain(self) -> None:
        t = self.tid()
        queue = self.rng.choice(["high", "default"])
        self._send(Sent(t, "plain", f"plain on {queue}"), lambda: self._task("plain").delay(t, queue=queue))

    def op_async(self) -> None:
        t = self.tid()
        if self.rng.random() < 0.5:
            self._send(Sent(t, "async", "aplain"), lambda: self._task("aplain").delay(t))
        else:
            s = round(self.rng.uniform(0.05, 0.5), 3)
            self._send(Sent(t, "async", f"aslow {s}s"), lambda: self._task("aslow").delay(t, s))

    def op_eta(self) -> None:
        t = self.tid()
        after = round(self.rng.uniform(0.2, 5.0), 3)
        if self.rng.random() < 0.5:
            eta: Any = timedelta(seconds=after)
            what = f"plain eta=timedelta({after}s)"
        else:
            eta = datetime.now(timezone.utc) + timedelta(seconds=after)
            if self.rng.random() < 0.5:
                eta = eta.replace(tzinfo=None)
            what = f"plain eta=datetime(+{after}s)"
        item = Sent(t, "eta", what, due=time.time() + after)
        self._send(item, lambda: self._task("plain").delay(t, "eta", eta=eta))

    def op_retry(self) -> None:
        t = self.tid()
        fails = self.rng.choice([0, 1, 2, 5])  # 5 > max_retries 3: exhausted, recorded failed
        self._send(Sent(t, "retry", f"flaky fails={fails}"), lambda: self._task("flaky").delay(t, fails))

    def op_results(self) -> None:
        t = self.tid()
        name = self.rng.choice(["stored", "astored"])
        item = Sent(t, "results", name, results=True)
        handle = self._send(item, lambda: self._task(name).delay(t))
        if isinstance(handle, TaskHandle):
            item.task_id = handle.id

    def op_unique(self) -> None:
        t = self.tid()
        key = f"k{self.rng.randrange(4)}"
        item = Sent(t, "unique", f"uniq unique_key={key}")
        handle = self._send(item, lambda: self._task("uniq").delay_with_options((t,), unique_key=key))
        if item.expect != UNCERTAIN:
            if isinstance(handle, TaskHandle):
                item.task_id = handle.id
            else:
                item.expect = DEDUPED

    def op_rate_queue(self) -> None:
        for _ in range(BURST):
            t = self.tid()
            item = Sent(t, "rate_queue", "plain on limited")
            self._send(item, lambda t=t: self._task("plain").delay(t, queue="limited"))

    def op_rate_task(self) -> None:
        queue = self.rng.choice(["default", "limited"])
        for _ in range(BURST):
            t = self.tid()
            item = Sent(t, "rate_task", f"throttled on {queue}")
            self._send(item, lambda t=t: self._task("throttled").delay(t, queue=queue))

    def burst(self, task: str, n: int) -> None:
        """`n` sends of a rate-limited task at once (before the "unlimit" fault)."""
        for _ in range(n):
            t = self.tid()
            self._send(Sent(t, "rate_task", f"{task} burst"), lambda t=t: self._task(task).delay(t, queue="default"))

    def op_cancel(self) -> None:
        self._cancellable(terminate=False, seconds=self.rng.uniform(0.1, 1.0), after=self.rng.uniform(0.0, 1.5))

    def op_terminate(self) -> None:
        self._cancellable(terminate=True, seconds=3.0, after=self.rng.uniform(0.3, 2.5))

    def _cancellable(self, terminate: bool, seconds: float, after: float) -> None:
        t = self.tid()
        seconds = round(seconds, 3)
        kind = self.rng.choice(["slow", "aslow", "stored"] if terminate else ["slow", "stored"])
        item = Sent(t, "terminate" if terminate else "cancel", f"{kind} {seconds}s", results=kind == "stored")
        if kind == "stored":
            handle = self._send(item, lambda: self._task("stored").delay(t, seconds))
            item.task_id = handle.id if isinstance(handle, TaskHandle) else None
        else:
            self._send(item, lambda: self._task(kind).delay(t, seconds))
            item.task_id = derived_id(_wakaq.encode_task(kind, [t, seconds], {}, 0))
        if item.task_id is not None:
            self.cancels.append((time.monotonic() + after, t, terminate))

    def op_broadcast(self) -> None:
        t = self.tid()
        item = Sent(t, "broadcast", "bcast")
        n = self._send(item, lambda: self._task("bcast").broadcast(t))
        if isinstance(n, int):
            item.receivers = n
            if n == 0:
                item.expect = UNSENT

    def op_garbage(self) -> None:
        t = self.tid()
        marker = f"cg{t};".encode()
        kind = self.rng.randrange(5)
        if kind == 0:
            raw, what = b"\xd9\xff" + marker + bytes(self.rng.randrange(256) for _ in range(8)), "truncated str"
        elif kind == 1:
            raw, what = _wakaq.packb([1, 2, marker.decode()]), "msgpack list"
        elif kind == 2:
            raw, what = _wakaq.packb({"name": f"nosuch{t}", "args": marker.decode()}), "map, unknown task"
        elif kind == 3:
            raw, what = _wakaq.packb({"name": "plain", "args": marker.decode(), "kwargs": 5}), "map, args a str"
        else:
            raw, what = _wakaq.encode_task(f"nosuch{t}", [marker.decode()], {}, 0), "a task of no registered name"
        queue = self.rng.choice(["high", "default"])
        item = Sent(t, "garbage", f"{what} on {queue}", marker=marker)
        self._send(item, lambda: self.client.rpush(self.app.keys.queue(queue), raw))

    def op_bad_meta(self) -> None:
        t = self.tid()
        what, make = self.rng.choice(BAD_METAS)
        marker = f"cm{t};".encode()
        # NOTE: packed by hand (packb keeps a dict's order: the layout of encode_task), since encode_task may refuse
        # the meta; the marker in the args finds the payload in a failure record even when it does not decode
        raw = _wakaq.packb({"name": "plain", "args": [t, marker.decode()], "kwargs": {}, "retry": 0, "meta": make()})
        item = Sent(t, "bad_meta", what, marker=marker)
        self._send(item, lambda: self.client.rpush(self.app.keys.queue("default"), raw))

    # ---- cancels ------------------------------------------------------------------------------------------

    def run_cancels(self, everything: bool = False) -> None:
        now = time.monotonic()
        due = [c for c in self.cancels if everything or c[0] <= now]
        self.cancels = [c for c in self.cancels if c not in due]
        for _, t, terminate in due:
            item = self.ledger.sent[t]
            assert item.task_id is not None
            try:
                item.cancel = str(self.app.cancel(item.task_id, terminate=terminate))
            except Exception as e:  # NOTE: a cancel during a fault
                item.cancel = f"error {type(e).__name__}"
