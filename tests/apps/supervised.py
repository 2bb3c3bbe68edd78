"""A worker for tests/test_supervisor.py: `run_worker` with a small Python child loop and no Redis.

SUP_MODE picks the child's behaviour; SUP_CONFIG (JSON) is merged into the config dict.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from wakaq import _wakaq

MODE = os.environ.get("SUP_MODE", "idle")


def child_main(slot: int) -> int:
    state = {"stop": False, "soft": False}
    pid = os.getpid()

    def on_term(signum: int, frame: object) -> None:
        print(f"child {slot} pid {pid} got SIGTERM", flush=True)
        state["stop"] = True

    def on_quit(signum: int, frame: object) -> None:
        print(f"SOFT-TIMEOUT child {slot} pid {pid}", flush=True)
        state["soft"] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGQUIT, on_quit)
    print(f"child {slot} pid {pid}", flush=True)

    if MODE == "crash":
        sys.stdout.write(f"partial line from {pid}")
        sys.exit(3)
    if MODE == "raise":
        raise RuntimeError(f"boom from {pid}")
    if MODE in ("soft", "hard"):
        _wakaq.task_started(1, 0.3, 1.0)
        while not state["soft"] or MODE == "hard":
            time.sleep(0.01)
        _wakaq.task_finished()
        print(f"child {slot} finished task 1", flush=True)
    if MODE == "async":
        # An async task's hard deadline, reported the way the real child reports it.
        _wakaq.async_deadline(5, time.monotonic() + 0.3)
        while True:
            time.sleep(0.05)
    if MODE == "long":
        # A task that ignores the graceful stop: only a SIGKILL ends it.
        _wakaq.task_started(1, 0, 0)
        print(f"child {slot} running long task", flush=True)
        while True:
            time.sleep(0.05)
    while not state["stop"]:
        time.sleep(0.02)
    print(f"child {slot} pid {pid} exiting", flush=True)
    return 0


def main() -> int:
    config = {"concurrency": 2, "url": None, "log_level": 10, "heartbeat_interval": 0.5}
    config.update(json.loads(os.environ.get("SUP_CONFIG", "{}")))
    return _wakaq.run_worker(_wakaq.Settings(config), child_main)


if __name__ == "__main__":
    sys.exit(main())
