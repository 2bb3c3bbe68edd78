"""Task ids: 32 lowercase hex characters (128 random bits, as a random UUID has), carried in the payload meta as
`meta["id"]`."""

from __future__ import annotations

import os


def new_id() -> str:
    """A fresh task id. NOTE: `os.urandom`, not `uuid.uuid4()`: the same randomness without importing `uuid` (and
    `platform`) into every `import wakaq`."""
    return os.urandom(16).hex()


#: a workflow's id is this prefix and a task id (wakaq.workflow); its steps' ids are "<workflow id>-<node>"
WORKFLOW_PREFIX = "w"


def new_workflow_id() -> str:
    return WORKFLOW_PREFIX + new_id()


def is_workflow_id(value: str) -> bool:
    """Whether `value` names a workflow (so `app.cancel` cancels the whole workflow)."""
    return len(value) == 33 and value.startswith(WORKFLOW_PREFIX)
