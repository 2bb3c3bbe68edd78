"""Redis goes away: restarted twice mid-run (SIGTERM, then SIGKILL) while producers, workers and a scheduler
keep going; and unavailable for 20 s (frozen, then down). Each scenario runs its own redis-server with
`appendonly yes`, `appendfsync always`, restarted on the same port and data directory."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.faults import driver
from tests.faults.app import build
from tests.redis_server import RedisServer
from tests.workers import StartScheduler, StartWorker, wait_until
from wakaq import WakaQ

pytestmark = pytest.mark.timeout(120)

SOCKET_TIMEOUT = 1.0
#: a producer call during an outage must fail within its socket timeouts (connect + read) plus this
MARGIN = 1.0


@pytest.fixture
def client(aof_redis: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(aof_redis.url, socket_timeout=2, socket_connect_timeout=2)
    try:
        yield c
    finally:
        c.close()


def _producer_app(url: str) -> WakaQ:
    return build(url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT)


@dataclass
class Producer:
    """Sends `work(i)` one call at a time from a thread; remembers which calls returned and which raised."""

    app: WakaQ
    ms: float = 2.0
    sent: list[int] = field(default_factory=list)
    raised: list[tuple[int, str, float]] = field(default_factory=list)  # id, exception type, seconds taken
    hangs: list[tuple[int, float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    next_id: int = 0

    def start(self) -> Producer:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        work = self.app.tasks["work"]
        while not self.stop.is_set():
            i, self.next_id = self.next_id, self.next_id + 1
            t0 = time.monotonic()
            try:
                work.delay(i, self.ms)
            except ConnectionError as e:
                self.raised.append((i, type(e).__name__, time.monotonic() - t0))
                time.sleep(0.05)
            else:
                self.sent.append(i)
                time.sleep(0.002)

    def finish(self) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(2 * SOCKET_TIMEOUT + MARGIN + 5)
        assert not self.thread.is_alive(), "the producer hangs"


def _check_producer(p: Producer) -> None:
    assert p.raised, "the producer saw the outage"
    assert {kind for _, kind, _ in p.raised} == {"BrokerError"}, p.raised[:5]
    slowest = max(took for _, _, took in p.raised)
    assert slowest < 2 * SOCKET_TIMEOUT + MARGIN, f"a failing .delay() took {slowest:.2f}s"


def test_redis_restarts_mid_run(
    aof_redis: RedisServer, client: redis.Redis, start_worker: StartWorker, start_scheduler: StartScheduler
) -> None:
    """Restart redis-server twice while tasks flow: a graceful restart, then a kill -9 (appendfsync always
    keeps every acknowledged write). Workers and the scheduler reconnect and continue; the producer gets a
    prompt ConnectionError while Redis is away; every task that .delay() accepted runs exactly once."""
    started = time.monotonic()
    url = aof_redis.url
    worker = start_worker(url=url, concurrency=2, socket_timeout=SOCKET_TIMEOUT)
    sched = start_scheduler("tests.faults.app.wakaq", url=url, cron="* * * * * *", socket_timeout=SOCKET_TIMEOUT)
    producer = Producer(_producer_app(url))
    try:
        wait_until(lambda: client.hlen("ticks") >= 1, timeout=15, what="a first scheduled tick")
        producer.start()
        for kill in (False, True):
            target = client.hlen("runs") + 100
            wait_until(lambda t=target: client.hlen("runs") >= t, timeout=30, what="tasks to run")
            aof_redis.stop(kill=kill)
            time.sleep(1.0)  # NOTE: an outage of a known length: the producer keeps trying meanwhile
            aof_redis.start()
        back = time.time()
        wait_until(lambda: driver.latest_tick(client) > back + 1, timeout=15, what="the scheduler to fire again")
        wait_until(lambda: len(producer.sent) > 200 and client.hlen("runs") > 0, timeout=20, what="more tasks")
        producer.finish()
        driver.wait_drained(client, lambda: driver.done_count(client, len(producer.sent)), timeout=45)
        assert sched.alive(), "the scheduler survived"
    finally:
        producer.stop.set()
        sched.stop()
    acc = driver.account(client, producer.sent)
    maybe = {i for i, _, _ in producer.raised}
    note = f"{len(producer.raised)} .delay() calls refused during the outages, max {_slowest(producer):.2f}s"
    driver.record(acc.row("redis-server restarted twice", started, note))
    assert acc.lost == set(), f"lost: {sorted(acc.lost)[:20]}"
    assert acc.failed == {}
    assert acc.duplicates == set(), "no worker died: nothing runs twice"
    assert not set(acc.runs) - acc.sent - maybe, "only sent tasks ran"
    _check_producer(producer)
    assert worker.proc.poll() is None and driver.died_children(worker.log_text()) == set()
    log = sched.log_text()
    assert log.count("Redis is unreachable") <= 2 and "Redis is reachable again" in log


def _slowest(p: Producer) -> float:
    return max((took for _, _, took in p.raised), default=0.0)


def _cpu(pids: list[int]) -> float:
    return sum(driver.cpu_seconds(p) for p in pids)


def test_redis_unavailable_for_20s(
    aof_redis: RedisServer, client: redis.Redis, start_worker: StartWorker, tmp_path: Path
) -> None:
    """Redis frozen (SIGSTOP: connections hang) for 5 s, then down for 15 s. The daemon warns once per process,
    does not spin or crash-loop, and runs a new task within 2 s of Redis answering again."""
    started = time.monotonic()
    url = aof_redis.url
    worker = start_worker(url=url, concurrency=2, socket_timeout=SOCKET_TIMEOUT)
    pids = [worker.pid, *worker.children()]
    app = _producer_app(url)
    work = app.tasks["work"]
    work.delay_many(((i, 0.0), {}) for i in range(100))
    wait_until(lambda: driver.done_count(client, 100), timeout=20, what="the first 100 tasks")
    time.sleep(0.2)
    log_before = worker.log_text()
    producer = Producer(app, ms=0.0)
    producer.next_id = 1000
    assert aof_redis.proc is not None
    outage = time.monotonic()
    aof_redis.proc.send_signal(signal.SIGSTOP)
    try:
        producer.start()
        time.sleep(1.0)
        cpu0, t0 = _cpu(pids), time.monotonic()
        time.sleep(4.0)
    finally:
        aof_redis.proc.send_signal(signal.SIGKILL)
        aof_redis.proc.send_signal(signal.SIGCONT)
        aof_redis.stop()
    time.sleep(max(0.0, outage + 19.0 - time.monotonic()))
    cpu1, t1 = _cpu(pids), time.monotonic()
    time.sleep(max(0.0, outage + 20.0 - time.monotonic()))
    producer.finish()
    aof_redis.start()
    back = time.monotonic()
    probe = 999_999
    work.delay(probe, queue="faults")
    wait_until(lambda: driver.runs(client).get(probe), timeout=10, what="the probe")
    resumed = time.monotonic() - back
    # the parent (requeues, eta promotion, broadcasts) notices too, within its longest backoff (2 s)
    wait_until(lambda: "redis available again" in worker.log_text()[len(log_before) :], timeout=5, what="parent")
    wait_until(lambda: "pub/sub subscribed again" in worker.log_text()[len(log_before) :], timeout=5, what="pub/sub")
    parent_back = time.monotonic() - back

    work.delay_many(((i, 0.0), {}) for i in range(100, 200))
    sent = [*range(200), probe]
    driver.wait_drained(client, lambda: driver.done_count(client, len(sent)), timeout=30)
    acc = driver.account(client, sent)
    busy = (cpu1 - cpu0) / (t1 - t0)
    during = worker.log_text()[len(log_before) :]
    child_warnings = during.count("retrying until it is back")
    parent_warnings = [
        line for line in during.splitlines() if "WARNING" in line and "retrying until it is back" not in line
    ]
    note = (
        f"tasks resumed {resumed:.2f}s after redis returned, the parent {parent_back:.2f}s; daemon CPU {busy:.1%}"
        f" of a core while waiting; slowest refused .delay() {_slowest(producer):.2f}s"
    )
    driver.record(acc.row("redis unavailable for 20 s", started, note))
    assert acc.lost == set() and acc.failed == {} and acc.duplicates == set()
    assert producer.sent == [], "nothing accepted while Redis was away"
    _check_producer(producer)
    assert child_warnings == 2, f"one warning per child per outage:\n{during[-3000:]}"
    assert len(parent_warnings) <= 2, parent_warnings  # the coordinator, and pub/sub
    assert busy < 0.10, f"the daemon used {busy:.1%} of a core while Redis was away"
    assert resumed < 2.0, f"the first task after the outage ran {resumed:.2f}s after Redis came back"
    assert parent_back < 3.5, f"the parent reconnected {parent_back:.2f}s after Redis came back"
    assert worker.proc.poll() is None and sorted(worker.children()) == sorted(pids[1:]), "no child died"
