"""A WakaQ 4.0.4 app (the real package, from PyPI): imported only in WakaQ's own venv (.tmp/wakaq-venv, made by
`make test-wakaq-compat`), by `upstream.py` and by WakaQ's `wakaq-worker --app tests.compat.wakaq_app.wakaq`.
Its queues and task match tests/apps/compat_app.py, as two fleets of one deployment would."""

from __future__ import annotations

import os
from urllib.parse import urlparse

from tests.compat import values
from wakaq import WakaQ  # NOTE: WakaQ 4.0.4 here, not this repository's package

URL = os.environ["WAKAQ_TEST_URL"]
_parts = urlparse(URL)

wakaq = WakaQ(
    queues=[(0, "high"), "default"],
    host=_parts.hostname or "127.0.0.1",
    port=_parts.port or 6379,
    concurrency=int(os.environ.get("WAKAQ_TEST_CONCURRENCY", "2")),
    wait_timeout=0.2,
    worker_log_file=os.environ.get("WAKAQ_TEST_LOG") or None,
)


@wakaq.task
def record(*args, **kwargs):
    values.record(URL, args, kwargs)
