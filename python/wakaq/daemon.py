"""`wakaq-worker`: build the daemon's settings from the app once (`_wakaq.Settings`, frozen, validated in Rust) and
hand over to the Rust parent loop; its children's Consumers take the same object."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from wakaq import _wakaq
from wakaq.config import to_start_method
from wakaq.exceptions import WakaQError
from wakaq.ratelimit import consumer_limits
from wakaq.worker import child_main

if TYPE_CHECKING:
    from wakaq.app import WakaQ

#: extra time a graceful stop grants beyond the largest hard timeout (log flushing, acks)
SHUTDOWN_MARGIN = 5.0
HEARTBEAT_INTERVAL = 2.0


def daemon_id() -> str:
    """Unique per daemon run and readable: host, pid and a random suffix (pids repeat across hosts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _largest_hard_timeout(app: WakaQ) -> float | None:
    """The longest a running task may take, or None when some task has no hard timeout."""
    longest = 0.0
    for task in app.tasks.values():
        queue = task.queue or app.default_queue
        hard: timedelta | None = task.hard_timeout or queue.hard_timeout or app.hard_timeout
        if hard is None:
            return None
        longest = max(longest, hard.total_seconds())
    return longest


def supervisor_config(app: WakaQ, ident: str) -> dict[str, Any]:
    """Every setting of a worker daemon and its children, as `_wakaq.Settings` takes them (docs/internals.md)."""
    queues = app.worker_queues
    queue_rates, task_rates = consumer_limits(queues, app.tasks.values())
    longest = _largest_hard_timeout(app)
    return {
        "concurrency": app.concurrency,
        "max_mem_percent": app.max_mem_percent,
        "log_file": app.worker_log_file,
        "log_level": app.worker_log_level,
        "wait_timeout": app.wait_timeout,
        "daemon_id": ident,
        "hostname": socket.gethostname(),
        "heartbeat_interval": min(HEARTBEAT_INTERVAL, app.heartbeat_timeout / 3),
        "heartbeat_timeout": app.heartbeat_timeout,
        "shutdown_timeout": None if longest is None else longest + SHUTDOWN_MARGIN,
        "url": app.url,
        "prefix": app.keys.prefix,
        "queues": [q.name for q in queues],
        "task_names": sorted(app.tasks),
        "limited_tasks": sorted(name for name, task in app.tasks.items() if task.rate_limit),
        "queue_rates": queue_rates,
        "task_rates": task_rates,
        "conc_limits": sorted((t.name, t.concurrency.limit) for t in app.tasks.values() if t.concurrency),
        "socket_timeout": app.socket_timeout,
        "connect_timeout": app.socket_connect_timeout,
        **app.tls_options,
    }


def spawn_options(app_path: str, ident: str, config: dict[str, Any]) -> dict[str, Any]:
    """The config keys of spawn mode: the command that starts a child and what it needs to know, in one JSON
    value the parent passes in the child's environment (not argv: the config holds the Redis URL)."""
    spawn_env = {"app": app_path, "daemon_id": ident, "sys_path": sys.path, "config": config}
    # NOTE: the parent's interpreter options (-O, -X dev, -W ...), passed on as multiprocessing's spawn does.
    flags: list[str] = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    return {
        "start_method": "spawn",
        "spawn_command": [sys.executable, *flags, "-m", "wakaq._spawned"],
        "spawn_env": json.dumps(spawn_env),
    }


def run_worker(app: WakaQ, *, start_method: str | None = None, app_path: str | None = None) -> int:
    """Run the worker daemon until SIGINT/SIGTERM/SIGQUIT; returns the exit code.

    `start_method` overrides the app's; spawn mode needs `app_path` (the `--app` import path), which each
    child imports.
    """
    method = to_start_method(start_method or app.start_method)
    ident = daemon_id()
    config = supervisor_config(app, ident)
    if method == "spawn":
        if not app_path:
            raise WakaQError("start_method 'spawn' needs the app's import path (wakaq-worker --app ...)")
        if not sys.executable:
            raise WakaQError("start_method 'spawn' needs sys.executable, the interpreter to start children with")
        config = {**config, **spawn_options(app_path, ident, config)}
    settings = _wakaq.Settings(config)
    return _wakaq.run_worker(settings, child_main(app, settings))
