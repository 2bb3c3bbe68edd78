"""Ctrl-C stops our commands even when they were started with SIGINT ignored.

A process started in the background by a shell without job control (`make test &`, `nohup`, some CI runners)
inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler: every command that relies on Ctrl-C
must install its own (cli.py `_ctrl_c_interrupts`).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workers import wait_until

pytestmark = pytest.mark.timeout(60)

APP = "tests.apps.worker_app.wakaq"


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    ("command", "ready"),
    [
        (["info", "--watch", "--interval", "0.2"], "Ctrl-C to quit"),
        (["web", "--port", "0"], "dashboard at"),
    ],
    ids=["info-watch", "web"],
)
def test_ctrl_c_stops_a_command_started_with_sigint_ignored(
    redis_url: str, tmp_path: Path, command: list[str], ready: str
) -> None:
    log = tmp_path / "out.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wakaq", command[0], "--app", APP, *command[1:]],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_ignore_sigint,  # NOTE: what a shell without job control does for `cmd &`
        )
    try:
        wait_until(lambda: ready in log.read_text(errors="replace"), 20, 0.05, what=f"{command[0]} ready")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert "Traceback" not in log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
