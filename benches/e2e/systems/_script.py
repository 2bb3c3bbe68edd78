"""Console scripts of the interpreter running an adapter (its venv's bin/), else from PATH."""

from __future__ import annotations

import os
import shutil
import sys


def script(name: str) -> str:
    beside = os.path.join(os.path.dirname(sys.executable), name)
    return beside if os.path.exists(beside) else (shutil.which(name) or name)


def launcher(count: int, command: list[str]) -> list[str]:
    """`count` copies of `command` as one worker (for systems whose worker is one process: arq)."""
    return [sys.executable, os.path.join(os.path.dirname(os.path.dirname(__file__)), "multi.py"), str(count), *command]
