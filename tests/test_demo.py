"""`make demo`: the commands it prints work as printed while it runs, and SIGTERM stops every process it started
(redis-server, the worker and its children, the scheduler, the web server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from tests.workers import wait_until

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parent.parent
HEADER = "try these in another terminal"


def printed_commands(out: Path) -> list[str]:
    lines = out.read_text(errors="replace").splitlines()
    if not any(line.startswith(HEADER) for line in lines):
        return []
    start = next(i for i, line in enumerate(lines) if line.startswith(HEADER)) + 1
    found = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        found.append(line.strip())
    return found


def run_printed(line: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", line], cwd=ROOT, capture_output=True, text=True, timeout=30)


def family(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE or not proc.is_running()
    except psutil.NoSuchProcess:
        return True


def watch_stops_on_ctrl_c(line: str) -> None:
    watch = subprocess.Popen(
        ["bash", "-c", line], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        assert watch.stdout is not None
        first = watch.stdout.read1(4096)  # type: ignore[attr-defined]
        assert b"Ctrl-C to quit" in first, first
        os.killpg(watch.pid, signal.SIGINT)
        assert watch.wait(10) == 0
    finally:
        if watch.poll() is None:
            os.killpg(watch.pid, signal.SIGKILL)
            watch.wait(5)
        if watch.stdout:
            watch.stdout.close()


def test_printed_commands_work_and_sigterm_leaves_no_process(tmp_path: Path) -> None:
    out = tmp_path / "demo.out"
    env = {k: v for k, v in os.environ.items() if k != "WAKAQ_URL"}
    env["PYTHONUNBUFFERED"] = "1"
    with out.open("wb") as log:
        demo = subprocess.Popen(
            [sys.executable, "demo/run.py", "--stay"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    started: list[psutil.Process] = []
    try:
        commands = wait_until(lambda: printed_commands(out), 60, 0.1, what=f"the printed commands:\n{out.read_text()}")
        info, watch, failed, metrics = commands
        assert info.endswith("wakaq-info --app=demo.app.wakaq") and watch.endswith("--watch")
        result = run_printed(info)
        assert result.returncode == 0, result.stderr
        assert set(json.loads(result.stdout)["queues"]) == {"high", "slow", "default"}
        wait_until(lambda: json.loads(run_printed(info).stdout)["workers"] == 1, 30, 0.2, what="the worker alive")
        result = run_printed(failed)
        assert result.returncode == 0, result.stderr
        json.loads(result.stdout)
        result = run_printed(metrics)
        assert result.returncode == 0 and "wakaq_tasks_done_total" in result.stdout, result
        watch_stops_on_ctrl_c(watch)

        def everyone() -> list[psutil.Process]:
            procs = family(demo.pid)
            names = " ".join(" ".join(p.cmdline()) for p in procs if not gone(p))
            want = ("redis-server", "wakaq worker", "wakaq scheduler", "wakaq web")
            return procs if all(w in names for w in want) and len(procs) >= 6 else []

        started = wait_until(everyone, 30, 0.2, what="redis-server, worker with 2 children, scheduler, web server")
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(60) == 143
        left = [p for p in started if not gone(p)]
        assert not left, [p.cmdline() for p in left]
        assert "stopped everything the demo started" in out.read_text()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(5)
        for p in started:
            if not gone(p):
                p.kill()
