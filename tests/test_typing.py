"""`Task.delay` (and `adelay`) is type-checked against the decorated function (ParamSpec), checked with mypy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SAMPLE = """
from datetime import timedelta
from wakaq import Task, WakaQ

app = WakaQ(queues=["default"])

@app.task
def add(x: int, y: int) -> int:
    return x + y

@app.task(queue="default", soft_timeout=5)
async def fetch(url: str) -> None: ...

@app.task
def keyed(unique_key: str) -> None: ...

t: Task[[int, int], int] = add
r: int = add(1, 2)
add.delay(1, 2)
add.delay(1, y=2)
add.delay(1, 2, queue="default")
add.delay(1, 2, eta=timedelta(seconds=10))
fetch.delay("https://example.com")
keyed.delay(unique_key="k")
add.delay_with_options((1, 2), unique_key="k")
n: int = add.broadcast(1, 2)
add.delay(1, "two")  # E1
add.delay(1)  # E2
add.broadcast("x", 2)  # E3
add.delay(1, 2, unique_key="k")  # E4


async def produce() -> None:
    await add.adelay(1, 2)
    await add.adelay(1, 2, queue="default", eta=5)
    await add.adelay_with_options((1, 2), unique_key="k")
    many: int = await add.adelay_many([((1, 2), {})])
    daemons: int = await add.abroadcast(1, 2)
    await add.adelay(1, "two")  # E5
    await add.abroadcast("x", 2)  # E6
    await fetch.adelay(3)  # E7
"""


@pytest.mark.slow
def test_delay_is_checked_against_the_function(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(SAMPLE)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--follow-imports=silent", str(sample)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    lines = SAMPLE.splitlines()
    flagged = sorted({lines[int(e.split(":")[1]) - 1].split("# ")[-1] for e in errors})
    assert flagged == ["E1", "E2", "E3", "E4", "E5", "E6", "E7"], result.stdout
