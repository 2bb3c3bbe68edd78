"""The worker side of the benchmark: each worker process's count of finished tasks, flushed to Redis.

Imported inside every system's worker, so it uses only the standard library (a minimal RESP client, not
redis-py: importing redis-py takes about 60 ms, which would be charged to the start-up of a system that does not
itself need it). Each worker process calls `progress.start(url)` from its start-up hook; task bodies call
`progress.done(i)` with the task's id (or `progress.started(sent)` for latency samples). A daemon thread flushes
the in-memory count and ids every 10 ms to the bookkeeping Redis (a second server, BENCH_PROGRESS_URL), the same
for every system, so the count costs the queue under test nothing per task.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any
from urllib.parse import urlparse

KEY_DONE = "bench:done"  # string: tasks finished, all worker processes together
KEY_IDN = "bench:idn"  # string: finished tasks that carry an id (0 <= id < N); duplicates count again
KEY_IDS = "bench:ids"  # bitmap: bit i set when a task with id i finished (BITCOUNT = distinct ids)
KEY_FIRST = "bench:first"  # hash: worker pid -> unix time its first task finished
KEY_LAST = "bench:last"  # hash: worker pid -> unix time its latest task finished
KEY_READY = "bench:ready"  # hash: worker pid -> unix time its start-up hook ran
KEY_LAT = "bench:lat"  # list: enqueue-to-start latencies (seconds), one per latency task
KEY_IO = "bench:io"  # string (on the Redis under test): the counter drain-io tasks INCR themselves

FLUSH_INTERVAL = 0.01
QUEUE = "bench"
ASYNC_SLEEP = 0.01  # seconds each async task awaits
BITFIELD_OPS = 500  # ids per BITFIELD command in a flush


def progress_url() -> str:
    """The bookkeeping Redis; falls back to the Redis under test when no second server was given."""
    return os.environ.get("BENCH_PROGRESS_URL") or os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0")


class RespError(Exception):
    """Redis answered with an error."""


class Resp:
    """A minimal Redis client: pipelines of commands over one socket, replies parsed (RESP2)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        parts = urlparse(url)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.db = int(parts.path.lstrip("/") or 0)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._file: Any = None

    def execute(self, commands: list[list[Any]]) -> list[Any]:
        """Send every command, then read every reply; the connection is dropped on any socket error."""
        try:
            if self._sock is None:
                self._connect()
            assert self._sock is not None
            self._sock.sendall(b"".join(_encode(c) for c in commands))
            return [self._reply() for _ in commands]
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = self._file = None

    def _connect(self) -> None:
        self._sock = socket.create_connection(self.address, timeout=self.timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._file = self._sock.makefile("rb")
        if self.db:
            self._sock.sendall(_encode(["SELECT", self.db]))
            self._reply()

    def _reply(self) -> Any:
        line = self._file.readline()
        if not line:
            raise ConnectionError("connection closed by Redis")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RespError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self._file.read(size + 2)[:-2]
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._reply() for _ in range(size)]
        raise ConnectionError(f"unexpected reply {line[:40]!r}")


def _encode(command: list[Any]) -> bytes:
    out = [b"*%d\r\n" % len(command)]
    for arg in command:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Progress:
    """Per worker process: finished-task count, task ids and latency samples in memory, flushed by a daemon
    thread (or at once with BENCH_PROGRESS_SYNC=1, for workers that run each task in a short-lived fork)."""

    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.ids: list[int] = []
        self.samples: list[float] = []
        self.url = ""
        self.sync = os.environ.get("BENCH_PROGRESS_SYNC") == "1"
        self._lock = threading.Lock()  # NOTE: Dramatiq runs tasks on several threads of one process
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._client: Resp | None = None
        self._io: Any = None

    def start(self, url: str = "") -> None:
        """Called once in each worker process (after fork) from its start-up hook; idempotent. `url` is the
        Redis under test (tasks doing I/O use it); the bookkeeping goes to `progress_url()`."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self.url = url or os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0")
        self._io = None
        self._client = Resp(progress_url())
        self._client.execute([["HSET", KEY_READY, str(self._pid), repr(time.time())]])
        if not self.sync:
            self._thread = threading.Thread(target=self._flush_forever, name="bench-flush", daemon=True)
            self._thread.start()

    def done(self, i: int = -1) -> None:
        if self._pid != os.getpid():
            self.start()  # systems without a per-process start-up hook (RQ): start on the first task
        now = time.time()
        with self._lock:
            if not self.count:
                self.first = now
            self.last = now
            self.count += 1
            if i >= 0:
                self.ids.append(i)
        if self.sync:
            self._flush_once(0)

    def started(self, sent: float) -> None:
        """A latency task began: record enqueue-to-start, then count it."""
        self.samples.append(time.time() - sent)
        self.done()

    def io(self) -> Any:
        """This process's own redis-py client to the Redis under test, for tasks that do Redis I/O themselves
        (the drain-io task body; redis-py is imported on the first such task, as the task's own dependency)."""
        if self._pid != os.getpid():
            self.start()
        if self._io is None:
            import redis

            self._io = redis.Redis.from_url(self.url)
        return self._io

    def _flush_forever(self) -> None:
        flushed = 0
        while True:
            time.sleep(FLUSH_INTERVAL)
            flushed = self._flush_once(flushed)

    def _flush_once(self, flushed: int) -> int:
        """Send what finished since `flushed` tasks; returns the new flushed count (unchanged on an error)."""
        assert self._client is not None
        with self._lock:
            count, first, last = self.count, self.first, self.last
            ids, self.ids = self.ids, []
            samples, self.samples = self.samples, []
        if count == flushed and not ids:
            return flushed
        pid = str(os.getpid())
        commands: list[list[str | int]] = [["HSETNX", KEY_FIRST, pid, repr(first)], ["HSET", KEY_LAST, pid, repr(last)]]
        if samples:
            commands.append(["RPUSH", KEY_LAT, *(repr(s) for s in samples)])
        for k in range(0, len(ids), BITFIELD_OPS):
            ops: list[str | int] = []
            for i in ids[k : k + BITFIELD_OPS]:
                ops += ["SET", "u1", i, 1]
            commands.append(["BITFIELD", KEY_IDS, *ops])
        if ids:
            commands.append(["INCRBY", KEY_IDN, len(ids)])
        if self.sync:
            count, flushed = 1, 0  # one task per call: add one
        commands.append(["INCRBY", KEY_DONE, count - flushed])  # NOTE: last, so the rest is there once it counts
        try:
            self._client.execute(commands)
        except (OSError, RespError):
            with self._lock:
                self.ids[:0] = ids
                self.samples[:0] = samples
            return flushed
        return count


progress = Progress()
