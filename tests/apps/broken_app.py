"""An app module that fails while importing: its configuration is invalid."""

from wakaq import WakaQ

app = WakaQ(queues=["default"], soft_timeout=10, hard_timeout=5)
