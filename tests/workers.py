"""Running real `wakaq-worker` processes in tests, and waiting for things with deadlines."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import redis

T = TypeVar("T")

APP = "tests.apps.worker_app.wakaq"


class StartScheduler(Protocol):
    """The `start_scheduler` fixture (tests/conftest.py): starts a `Scheduler` of `app` (an import path), stopped
    when the test ends; options as `StartWorker`'s."""

    def __call__(self, app: str, *, url: str | None = None, name: str = ..., **options: Any) -> Scheduler: ...


class StartWorker(Protocol):
    """The `start_worker` fixture (tests/conftest.py): starts a `Worker`, by default waits for its children, and
    stops it when the test ends. Unnamed options become `WAKAQ_TEST_<NAME>` variables the test apps read."""

    def __call__(
        self,
        app: str | None = None,
        *,
        url: str | None = None,
        name: str = ...,
        concurrency: int = ...,
        wait: bool = ...,
        ready_timeout: float = ...,
        **options: Any,
    ) -> Worker: ...


def wait_until(check: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def events(client: redis.Redis, task: str | None = None) -> list[dict[str, Any]]:
    found = [json.loads(raw) for raw in client.lrange("events", 0, -1)]
    return [e for e in found if task is None or e["task"] == task]


def is_spawned(pid: int) -> bool:
    """`pid` runs `python [interpreter flags] -m wakaq._spawned ...` (exec'd, not a forked copy of the parent)."""
    argv = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    return "-m" in argv and argv[argv.index("-m") + 1] == "wakaq._spawned"


def child_pids(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


class Daemon:
    """A `python -m wakaq <command>` subprocess (a worker or a scheduler) with its log and output in files; always
    stopped by `stop()`. `options` become WAKAQ_TEST_<NAME> variables, which the test apps read."""

    command = "worker"

    def __init__(
        self,
        tmp: Path,
        url: str,
        name: str | None = None,
        app: str = APP,
        prefix: list[str] | None = None,
        args: tuple[str, ...] = (),
        **options: Any,
    ) -> None:
        """`prefix` goes before the command, e.g. `ip netns exec <ns>` (which execs: the pid stays the daemon's);
        `args` after it (extra flags of the command)."""
        name = name or self.command
        self.log = tmp / f"{name}.log"
        env = dict(os.environ, WAKAQ_TEST_URL=url, WAKAQ_TEST_LOG=str(self.log))
        for key, value in options.items():
            env[f"WAKAQ_TEST_{key.upper()}"] = str(value)
        self.out = tmp / f"{name}.out"
        self.output = self.out.open("wb")
        self.proc = subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", "wakaq", self.command, "--app", app, *args],
            env=env,
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def text(self) -> str:
        """The log file, then what the process printed."""
        return "\n".join(p.read_text(errors="replace") for p in (self.log, self.out) if p.exists())

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"wakaq {self.command} exited with {self.proc.returncode}:\n{self.text()[-3000:]}")
        return True

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait_exit(self, timeout: float = 20.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"{self.command} did not exit within {timeout}s:\n{self.log_text()[-3000:]}") from e

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout` (its children too); the exit code (-9 when it had to be killed)."""
        pids = [self.pid, *self.children()]
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.wait(5)
        self.output.close()
        return self.proc.returncode

    def children(self) -> list[int]:
        return []


class Scheduler(Daemon):
    """A `python -m wakaq scheduler` subprocess."""

    command = "scheduler"


class Worker(Daemon):
    """A `python -m wakaq worker` subprocess."""

    def children(self) -> list[int]:
        """Live worker children: forked by the supervisor (per its log) and still children of the daemon."""
        forked = {int(pid) for pid in re.findall(r"forked child (\d+)", self.log_text())}
        return [pid for pid in child_pids(self.pid) if pid in forked]

    def start_methods(self) -> dict[int, str]:
        """How the supervisor started each child (pid -> "fork" or "spawn"), per its log."""
        found = re.findall(r"forked child (\d+) \(slot \d+, (spawn)?", self.log_text())
        return {int(pid): "spawn" if spawn else "fork" for pid, spawn in found}

    def wait_ready(self, children: int = 1, timeout: float = 15.0) -> list[int]:
        def ready() -> list[int] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log_text()}")
            pids = self.children()
            return pids if len(pids) >= children else None

        return wait_until(ready, timeout, what=f"{children} worker children")
