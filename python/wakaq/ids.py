"""Task ids: 32 lowercase hex characters (128 random bits, as a random UUID has), carried in the payload meta as
`meta["id"]`."""

from __future__ import annotations

import os


def new_id() -> str:
    """A fresh task id. NOTE: `os.urandom`, not `uuid.uuid4()`: the same randomness without importing `uuid` (and
    `platform`) into every `import wakaq`."""
    return os.urandom(16).hex()
