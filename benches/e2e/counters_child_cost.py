"""Per-task cost of the task counters inside a real supervised child: `timeit` of the calls a sync task makes
(`task_started` + `task_finished`) without and with a counter cell, run in a child forked by `run_worker`
(no Redis), so the counters write to a real shared region.

    make build-release && .venv/bin/python benches/e2e/counters_child_cost.py
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

from wakaq import _wakaq

N = 2_000_000


def child_main(out: Path) -> Callable[[int], int]:
    def main(slot: int) -> int:
        cell = _wakaq.counter_cell("q", "t")
        calls = {"ts": _wakaq.task_started, "tf": _wakaq.task_finished}
        lines = []
        for _ in range(3):
            base = timeit.timeit("ts(1, 0.0, 0.0); tf()", globals=calls, number=N) / N
            counted = timeit.timeit(f"ts(1, 0.0, 0.0, {cell}); tf(True)", globals=calls, number=N) / N
            lines.append(
                f"slot only {base * 1e9:.1f} ns, slot + counters {counted * 1e9:.1f} ns: "
                f"+{(counted - base) * 1e9:.1f} ns per task"
            )
        out.write_text("\n".join(lines) + "\n")
        os.kill(os.getppid(), signal.SIGTERM)  # one measurement: stop the daemon instead of reforking
        return 0

    return main


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cost.txt"
        config = {"concurrency": 1, "queues": ["q"], "task_names": ["t"], "log_level": 40}
        _wakaq.run_worker(_wakaq.Settings(config), child_main(out))
        print(out.read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
