"""Task ids: 32 lowercase hex characters (a random UUID), carried in the payload meta as `meta["id"]`."""

from __future__ import annotations

import uuid


def new_id() -> str:
    """A fresh task id."""
    return uuid.uuid4().hex
