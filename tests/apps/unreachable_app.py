"""An app whose Redis is a closed loopback port (WAKAQ_UNREACHABLE_URL), for the error path of the CLI."""

import os

from wakaq import WakaQ

app = WakaQ(
    queues=["default"],
    url=os.environ["WAKAQ_UNREACHABLE_URL"],
    socket_timeout=1,
    socket_connect_timeout=1,
)
