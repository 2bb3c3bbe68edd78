"""App for the admin command tests (tests/test_cli.py)."""

import os

from wakaq import Queue, WakaQ

app = WakaQ(
    queues=[(0, "high"), Queue("low", priority=5), "default"],
    url=os.environ.get("WAKAQ_TEST_URL", "redis://127.0.0.1:1/0"),
    socket_timeout=2,
    socket_connect_timeout=2,
)


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(queue="high")
def urgent() -> None:
    pass


not_an_app = {"queues": ["default"]}
