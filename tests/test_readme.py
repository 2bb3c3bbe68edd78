"""Our README's first example (an app module and a producer script) runs as written: importing the app sends
nothing, the producer's tasks run on a real worker; and WakaQ's README example, producer side, runs unchanged
against a real Redis and leaves the expected payloads."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.keyspace import KEYS, pose_as_daemon
from tests.workers import StartWorker, wait_until
from wakaq import _wakaq


def decoded(elements: list[bytes]) -> list[tuple[str, list[Any], dict[str, Any]]]:
    out = []
    for element in elements:
        _, payload = _wakaq.split_element(element)
        name, args, kwargs, _ = _wakaq.decode_task(payload)
        out.append((name, args, kwargs))
    return out


@pytest.fixture
def readme(redis_url: str) -> Any:
    import tests.apps.readme_app as module

    return importlib.reload(module)  # a fresh app bound to this test's Redis


def test_readme_app_builds(readme: Any) -> None:
    app = readme.wakaq
    assert [q.name for q in app.queues] == [
        "a-high-priority-queue",
        "a-medium-priority-queue",
        "a-low-priority-queue",
        "another-queue",
        "default-lowest-priority-queue",
    ]
    assert set(app.tasks) == {"mytask", "a_cpu_intensive_task", "an_io_intensive_task", "anothertask"}
    app.validate_schedules()


def test_readme_producer(readme: Any, rclient: redis.Redis) -> None:
    before = time.time()
    readme.produce()
    after = time.time()
    assert decoded(rclient.lrange(KEYS.queue("a-medium-priority-queue"), 0, -1)) == [("mytask", [1, 1], {})]
    assert decoded(rclient.lrange(KEYS.queue("a-high-priority-queue"), 0, -1)) == [("mytask", [1, 1], {})]
    assert decoded(rclient.lrange(KEYS.queue("default-lowest-priority-queue"), 0, -1)) == [
        ("anothertask", [], {}),
        ("an_io_intensive_task", [], {}),
    ]
    ((member, score),) = rclient.zrange(KEYS.eta("default-lowest-priority-queue"), 0, -1, withscores=True)
    assert _wakaq.decode_task(member)[:3] == ("anothertask", [], {})
    assert before + 10 - 0.01 <= score <= after + 10 + 0.01


def test_readme_broadcast_reaches_every_worker(readme: Any, rclient: redis.Redis) -> None:
    pose_as_daemon(rclient, "listener:1:aa")
    assert readme.mytask.broadcast(3, 4) == 1
    (element,) = rclient.lrange(KEYS.broadcast_queue("listener:1:aa"), 0, -1)
    assert _wakaq.decode_task(element)[:3] == ("mytask", [3, 4], {})


def test_readme_delay_many(readme: Any, rclient: redis.Redis) -> None:
    assert readme.mytask.delay_many([((i, i), {}) for i in range(50)]) == 50
    assert decoded(rclient.lrange(KEYS.queue("a-medium-priority-queue"), 0, -1)) == [
        ("mytask", [i, i], {}) for i in range(50)
    ]


def test_unsupported_argument_raises_type_error_at_delay(readme: Any, rclient: redis.Redis) -> None:
    with pytest.raises(TypeError):
        readme.mytask.delay(object(), 1)
    assert rclient.llen(KEYS.queue("a-medium-priority-queue")) == 0


def test_benchmark_table_is_generated_from_results() -> None:
    """README's benchmark table is what benches/e2e/readme_table.py makes of benches/RESULTS.md (run
    `python benches/e2e/readme_table.py` after editing RESULTS.md; `make bench-e2e` does it)."""
    from benches.e2e import readme_table

    results = readme_table.RESULTS_MD.read_text()
    assert readme_table.block(results) in readme_table.README.read_text()
    _systems, rows = readme_table.parse(results)
    assert rows["enqueue: single .delay()"][0] in readme_table.block(results)


def test_benchmark_table_gives_a_word_no_unit() -> None:
    """A leg that lost tasks reads "lost" in RESULTS.md; the README shows "lost", not "lost s"."""
    from benches.e2e import readme_table

    results = "\n".join(
        [
            "| metric | unit | a 1 | b 2 | a/b |",
            "|---|---|---|---|---|",
            "| eta: worker start to all run | s | 1.44 [1.21-1.45] | lost | |",
            "| latency p50 (enqueue to start) | ms | 0.32 [0.3-0.4] | lost | |",
            "| latency p99 | ms | 0.67 [0.5-0.7] | 0.82 [0.5-0.9] | |",
        ]
    )
    block = readme_table.block(results)
    assert "| due eta tasks, worker start to all run | 1.44 s | lost |" in block
    assert "| latency p50 / p99, enqueue to start | 0.32 / 0.67 ms | lost |" in block


# ---- our README's first example, as written -----------------------------------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"


def _first_example(tmp: Path) -> None:
    """Writes the README's first two python blocks, `yourapp.py` and `produce.py`, into `tmp`."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    app, producer = blocks[0], blocks[1]
    assert "from yourapp import" in producer and 'if __name__ == "__main__":' in producer
    (tmp / "yourapp.py").write_text(app)
    (tmp / "produce.py").write_text(producer)


def _info(tmp: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "wakaq", "info", "--app=yourapp.wakaq"], cwd=tmp, capture_output=True, timeout=30
    )
    assert out.returncode == 0, out.stderr.decode()
    info: dict[str, Any] = json.loads(out.stdout)
    return info


@pytest.mark.timeout(90)
def test_readme_first_example_runs_as_written(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start_worker: StartWorker
) -> None:
    _first_example(tmp_path)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    info = _info(tmp_path)  # importing the app (as every command does) sends nothing
    assert {q["pending_tasks"] + q["pending_eta_tasks"] for q in info["queues"].values()} == {0}
    produced = subprocess.run([sys.executable, "produce.py"], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert produced.returncode == 0, produced.stderr
    assert "broadcast reached 0 worker daemons" in produced.stdout  # none running yet: it reaches nobody
    info = _info(tmp_path)
    assert info["queues"]["high"]["pending_tasks"] == 1
    assert info["queues"]["default"]["pending_tasks"] == 1
    assert info["queues"]["high"]["pending_eta_tasks"] == 1
    # NOTE: the example's worker logs to stderr, which Worker keeps in its .out file (no log file to wait on)
    worker = start_worker("yourapp.wakaq", wait=False)
    out = worker.out
    wait_until(
        lambda: out.read_text().splitlines().count("3") >= 3,
        40,
        0.1,
        what="three add(1, 2) printed by the worker (one after its 10 s eta)",
    )
    assert "Traceback" not in out.read_text()
