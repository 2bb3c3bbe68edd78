"""App for the Sentry tests (tests/contrib/test_sentry.py): the real sentry-sdk with wakaq's integration, sending
to a transport that appends every envelope item to a file (`WAKAQ_TEST_ENVELOPES`) instead of the network.

Only a process with that variable (the worker, the producer script) initialises Sentry; the test process imports the
module to push tasks without it."""

from __future__ import annotations

import json
import os
from typing import Any

from tests.apps.common import worker_options
from wakaq import WakaQ

wakaq = WakaQ(queues=["default"], wait_timeout=0.5, retry_backoff=0.1, retry_jitter=False, **worker_options())


def init_sentry(path: str) -> None:
    import sentry_sdk
    from sentry_sdk.transport import Transport

    from wakaq.contrib.sentry import WakaqIntegration

    class FileTransport(Transport):
        """Every envelope item as a JSON line: {"type": ..., "payload": the item's JSON}."""

        def capture_envelope(self, envelope: Any) -> None:
            with open(path, "a", encoding="utf-8") as out:
                for item in envelope.items:
                    try:
                        payload = json.loads(item.payload.get_bytes())
                    except ValueError:
                        payload = None
                    out.write(json.dumps({"type": item.type, "payload": payload}) + "\n")

    sentry_sdk.init(
        dsn="http://public@127.0.0.1:9/1",  # NOTE: never contacted: the transport above replaces the network
        transport=FileTransport,
        integrations=[WakaqIntegration()],
        traces_sample_rate=1.0,
    )


if os.environ.get("WAKAQ_TEST_ENVELOPES"):
    init_sentry(os.environ["WAKAQ_TEST_ENVELOPES"])


@wakaq.task
def boom(message: str) -> None:
    raise KeyError(message)


@wakaq.task(retry_on=TimeoutError, max_retries=1)
def slow_then_boom(key: str) -> None:
    raise TimeoutError(f"slow {key}")


@wakaq.task
async def aboom(message: str) -> None:
    raise RuntimeError(message)
