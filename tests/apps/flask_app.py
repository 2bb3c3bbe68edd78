"""App for the Flask integration tests (tests/contrib/test_flask.py): a real Flask app whose tasks use
`current_app` and `g`. WAKAQ_TEST_FLASK=0 leaves `init_app` out (the control: the same tasks without a context)."""

from __future__ import annotations

import asyncio
import os

from flask import Flask, current_app, g

from tests.apps.common import Events, worker_options
from wakaq import WakaQ
from wakaq.contrib.flask import WakaQFlask

flask_app = Flask("wakaq_flask_test")
flask_app.config["GREETING"] = "hello from the Flask config"

wakaq = WakaQ(queues=["default"], wait_timeout=0.5, store_results=True, **worker_options())
if os.environ.get("WAKAQ_TEST_FLASK", "1") == "1":
    WakaQFlask(flask_app, wakaq)

record = Events(wakaq).record


@flask_app.teardown_appcontext
def count_teardown(error: BaseException | None) -> None:
    record("teardown", seen=getattr(g, "seen", None))


@wakaq.task
def greeting() -> str:
    return str(current_app.config["GREETING"])


@wakaq.task
async def async_greeting() -> str:
    await asyncio.sleep(0.01)
    return f"{current_app.config['GREETING']} (async)"


@wakaq.task
def mark_g(tag: str) -> str | None:
    """Returns what an earlier task left in `g` (None in a fresh context), then leaves `tag` there."""
    before = getattr(g, "seen", None)
    g.seen = tag
    return before
