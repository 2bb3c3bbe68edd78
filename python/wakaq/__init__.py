"""wakaq: a Redis-backed background task queue with WakaQ's API and a Rust core."""

from wakaq._wakaq import __version__

__all__ = ["__version__"]
