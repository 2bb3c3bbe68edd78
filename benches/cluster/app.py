"""The app of `benches/cluster/run.py`: one no-op task, on the URL in BENCH_URL (one Redis or a cluster)."""

from __future__ import annotations

import os

from wakaq import WakaQ

app = WakaQ(
    url=os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0"),
    queues=["bench"],
    concurrency=2,
    worker_log_level="WARNING",
)


@app.task
def noop(i: int) -> None:
    del i
